"""The polling benchmark's figures as a markdown section: printed, and with --output placed in a
report between its markers (bench/ingest/report.py's POLLING)."""

from __future__ import annotations

from bench.beside import tables
from bench.ingest.facts import Context
from bench.ingest.report import POLLING
from bench.polling.runs import REGISTERING_CLIENTS, Outcome, Plan, PollRate


def section(outcomes: list[Outcome], plan: Plan, context: Context) -> str:
    return POLLING.wrap(
        "\n".join(
            [
                _intro(outcomes, plan, context),
                _rates(outcomes, plan),
                _ingest(outcomes, plan),
                _latency(outcomes),
            ]
        )
    )


def _intro(outcomes: list[Outcome], plan: Plan, context: Context) -> str:
    registered = "; ".join(
        f"{o.backend.label} {o.registered_s:.1f} s ({plan.watches / o.registered_s:,.0f}/s)"
        for o in outcomes
    )
    return "\n".join(
        [
            f"Written by `{context.command}` on {context.date} at commit `{context.commit}`.",
            "Everything on loopback: `stemhook serve` (1 worker, its default settings but Suno's"
            " API key and base, fetches admitted to 127.0.0.1) on a fresh database per backend"
            " (SQLite at synchronous=FULL, or PostgreSQL), polling a fake Suno record-info on"
            " 127.0.0.1 (bench/polling/provider.py) that answers every task PENDING: each poll"
            " is stored as a delivery that changes nothing, and its watch is due again 15–30 s"
            f" later. {plan.watches:,} jobs are registered through"
            f" `PUT /v1/jobs/suno/<id>/expect` from {REGISTERING_CLIENTS} clients at once"
            f" ({registered}). How each figure is taken: [bench/README.md](bench/README.md).",
            "",
            f"Machine: {context.machine}. Shared with other work, so these move with its load:"
            f" load average at {'; at '.join(context.loads)}.",
            "",
        ]
    )


def _rates(outcomes: list[Outcome], plan: Plan) -> str:
    rows = [_rate_row(o.backend.label, r) for o in outcomes for r in o.rates]
    return "\n".join(
        [
            "### Polls per second",
            "",
            "Every open watch made due at once (one UPDATE); polls counted as their watches are"
            f" settled, from the first one on, for up to {plan.window_s:g} s (or until each"
            " watch was polled once), each concurrency on a server of its own. CPU per poll"
            " over the same span: the background process (the poller, and the mirror idle"
            " beside it), stemhook's other processes, PostgreSQL's server (when on this"
            " machine; its backends of other databases left out), the fake provider.",
            "",
            "| backend | STEMHOOK_POLL_CONCURRENCY | polls | seconds | polls/s | background"
            " process µs/poll | rest of stemhook µs/poll | PostgreSQL µs/poll | fake provider"
            " µs/poll |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def _rate_row(backend: str, r: PollRate) -> str:
    database = "—" if r.database_cpu_s is None else f"{r.us_per_poll(r.database_cpu_s):,.0f}"
    return (
        f"| {backend} | {r.concurrency} | {r.polls:,} | {r.seconds:.1f} | {r.rate:,.1f} |"
        f" {r.us_per_poll(r.background_cpu_s):,.0f} | {r.us_per_poll(r.rest_cpu_s):,.0f} |"
        f" {database} | {r.us_per_poll(r.provider_cpu_s):,.0f} |"
    )


def _ingest(outcomes: list[Outcome], plan: Plan) -> str:
    rounds = plan.ingest
    return "\n".join(
        [
            f"### Ingest while {plan.watches:,} polls are due",
            "",
            f"{rounds.family.label} callbacks (final: they write no watch) from wrk, saturating"
            f" runs of {rounds.duration_s:g} s from {rounds.connections} connections on the server"
            " that polls: in each round one run while every watch is due and polled (*polls"
            " due*) and two while none is (*none due*, a and b), in an order that rotates from"
            " round to round. Ratios are taken within a round (polls due ÷ the mean of the two"
            f" none due runs), median (min–max) over {rounds.rounds} rounds. The ratio of the two"
            " none due runs is the noise: polling moves ingest beyond noise only where polls"
            " due ÷ none due falls outside its range.",
            "",
            *tables([(o.backend.label, o.ingest) for o in outcomes], "polls"),
            "",
        ]
    )


def _latency(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        for p in o.paced:
            paced = p.load.paced
            assert paced is not None
            rows.append(
                f"| {o.backend.label} | {p.kind} | {p.asked:,.0f} | {paced.p50_ms:.1f} |"
                f" {paced.p90_ms:.1f} | {paced.p99_ms:.1f} | {paced.max_ms:.1f} |"
                f" {p.machine.longest_hiccup_ms:.1f} | {p.polls / p.load.duration_s:,.1f} |"
            )
    return "\n".join(
        [
            "### Latency at a fixed rate",
            "",
            "The same callbacks paced by wrk at half the median none due rate (bench/ingest/lua.py"
            " timetable, latency counted from when each request was due), once while every watch"
            " is due and once while none is, in ms. The longest hiccup is the longest a 1 ms sleep"
            " of the benchmark's overslept (bench/ingest/hiccups.py): a latency no longer than it"
            " may be the machine's.",
            "",
            "| backend | window | req/s | p50 | p90 | p99 | max | longest hiccup | polls/s |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
