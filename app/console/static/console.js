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
