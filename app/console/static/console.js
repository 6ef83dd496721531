// stemhook's console: progressive enhancement only. Every page works without this file.
"use strict";

// A "Copy" button copies the text of the element its data-copy names.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.textContent).then(done, () => select(source));
  } else {
    select(source);
  }
});

// Without the clipboard (plain http to another host), the text is selected for Ctrl+C.
function select(element) {
  const range = document.createRange();
  range.selectNodeContents(element);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The parts of this page with these ids, replaced by those of the page at `url` as the server
// renders it now; false once that page is not one of them (signed out, gone).
async function renew(url, ids) {
  const answer = await fetch(url, { credentials: "same-origin" });
  if (!answer.ok || answer.redirected) return false;
  const page = new DOMParser().parseFromString(await answer.text(), "text/html");
  for (const id of ids) {
    const fresh = page.getElementById(id);
    const shown = document.getElementById(id);
    if (!fresh || !shown) return false;
    if (fresh.innerHTML !== shown.innerHTML) shown.replaceWith(document.adoptNode(fresh));
  }
  return true;
}

// A list with data-refresh="seconds" shows new and changed rows as they come, while the page is
// in view; its status line says when it last looked.
async function keepFresh(region) {
  const status = document.getElementById("live-status");
  const every = Number(region.dataset.refresh) * 1000;
  for (;;) {
    await pause(every);
    if (document.hidden) continue;
    try {
      if (!(await renew(location.href, [region.id]))) break;
      if (status) status.textContent = `Up to date at ${new Date().toLocaleTimeString()}.`;
    } catch {
      await pause(every);
    }
  }
  if (status) status.textContent = "No longer updating: reload the page.";
}

// The page of an unfinished job waits for it to finish (the server holds each request until
// the job is final or a while has passed), then shows it as it is.
async function awaitJob(job) {
  const status = document.getElementById("live-status");
  status.textContent = "Waiting for the job to finish…";
  for (let failures = 0; failures < 5; ) {
    try {
      const answer = await fetch(`${job.dataset.live}/wait`, { credentials: "same-origin" });
      const type = answer.headers.get("content-type") || "";
      if (!answer.ok || !type.startsWith("application/json")) throw new Error(answer.status);
      const now = await answer.json();
      failures = 0;
      if (now.state !== job.dataset.state || now.last_received_at !== job.dataset.received) {
        await renew(location.href, ["job"]);
        const renewed = document.getElementById("job");
        if (renewed.dataset.live) awaitJob(renewed);
        return;
      }
    } catch {
      failures += 1;
      await pause(2000 * failures);
    }
  }
  status.textContent = "No longer waiting: reload the page.";
}

for (const region of document.querySelectorAll("[data-refresh]")) keepFresh(region);
const job = document.querySelector("#job[data-live]");
if (job) awaitJob(job);
