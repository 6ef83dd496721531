"""The `stemhook` command: serve, migrate, replay, purge, init-env."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

from app.config import (
    MIN_TOKEN_LENGTH,
    Settings,
    format_duration,
    get_settings,
    parse_duration,
)
from app.db import create_sync_engine
from app.file_retention import purge_files
from app.held_writes import HeldWritesProtocol
from app.ingest.intake import Outcome
from app.logs import json_lines, log_config
from app.metrics import MULTIPROCESS_DIR
from app.replay import UNAVAILABLE, replay_stored
from app.retention import purge_bodies
from app.schema import upgrade_to_head
from app.storage.factory import open_store

TOKEN_VARIABLE = "STEMHOOK_API_TOKENS"
ENV_FILE = ".env"  # where Settings reads it: the working directory


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="stemhook", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply pending migrations, then serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(run=lambda _args: upgrade_to_head(get_settings()))

    purge = commands.add_parser(
        "purge",
        help="drop the raw bodies of old deliveries (jobs and events stay), and when asked the"
        " stored copies of old output files",
    )
    purge.add_argument(
        "--deliveries-older-than",
        type=parse_duration,
        metavar="AGE",
        help="drop the bodies of deliveries received longer ago, e.g. 30d, 12h",
    )
    purge.add_argument(
        "--files-older-than",
        type=parse_duration,
        metavar="AGE",
        help="remove the stored copies of output files stored longer ago, e.g. 90d",
    )
    purge.set_defaults(run=lambda args: _purge(args, purge))

    replay = commands.add_parser(
        "replay", help="run today's parsers again on stored deliveries (e.g. the rejected ones)"
    )
    replay.add_argument(
        "--outcome",
        action="append",
        choices=[
            Outcome.REJECTED,
            Outcome.ORPHANED,
            Outcome.UNCONFIRMED,
            Outcome.ACCEPTED,
            Outcome.DUPLICATE,
        ],
        required=True,
        help="which stored deliveries to replay; repeat for several",
    )
    replay.add_argument(
        "--since", type=_aware_time, help="only deliveries received at or after this ISO time"
    )
    replay.add_argument(
        "--again", action="store_true", help="also those a replay already turned into jobs"
    )
    replay.set_defaults(run=_replay)

    init_env = commands.add_parser(
        "init-env", help=f"put a random {TOKEN_VARIABLE} into .env unless one is configured"
    )
    init_env.set_defaults(run=lambda _args: _init_env(Path(ENV_FILE)))

    args = parser.parse_args(argv)
    args.run(args)


def _serve(args: argparse.Namespace) -> None:
    settings = get_settings()
    _guard_callbacks(args.host, settings)
    upgrade_to_head(settings)
    if args.workers > 1:
        _share_metrics_between_workers()
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=HeldWritesProtocol,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        root_path=settings.root_path,
        # Per-request logging belongs to the application (app/logs.py), once per request.
        access_log=False,
        log_config=log_config(json=json_lines(), level=settings.log_level),
    )


def _guard_callbacks(host: str, settings: Settings) -> None:
    """Fail closed: callbacks without a token only where no one else can reach them (loopback),
    or where the operator said so; anyone who can post a callback can forge a job's result."""
    if settings.callback_token is not None:
        return
    if not (is_loopback(host) or settings.allow_unauthenticated_callbacks):
        raise SystemExit(
            f"stemhook: refusing to serve on {host} without a callback token: anyone who can"
            " reach it could post forged callbacks. Set STEMHOOK_CALLBACK_TOKEN (at least"
            f" {MIN_TOKEN_LENGTH} characters, e.g. `openssl rand -hex 24`) and add"
            " ?token=<it> to every callback URL, or set"
            " STEMHOOK_ALLOW_UNAUTHENTICATED_CALLBACKS=true to accept unauthenticated callbacks."
        )
    print(
        f"stemhook: warning: callbacks on {host} are accepted without a token"
        " (STEMHOOK_CALLBACK_TOKEN is not set)",
        file=sys.stderr,
    )


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine: 127.0.0.0/8, ::1 or localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # another host name: it may resolve to anything
        return False


def _share_metrics_between_workers() -> None:
    """Workers are separate processes: each counts into a shared directory, and a scrape
    answered by any of them reports the sum. It must be set before the workers start."""
    if MULTIPROCESS_DIR not in os.environ:
        os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="stemhook-metrics-")


def _purge(args: argparse.Namespace, usage: argparse.ArgumentParser) -> None:
    bodies, files = args.deliveries_older_than, args.files_older_than
    if bodies is None and files is None:
        usage.error(
            "say what to purge: --deliveries-older-than AGE, --files-older-than AGE, or both"
        )
    settings = get_settings()
    engine = create_sync_engine(settings)
    try:
        if bodies is not None:
            purged = purge_bodies(engine, older_than=bodies)
            if purged is None:
                print("Another process is purging now; nothing done.")
            else:
                print(f"Dropped the bodies of {purged} deliveries older than {bodies}.")
        if files is not None:
            removed = purge_files(engine, open_store(settings), older_than=files)
            if removed is None:
                print("Another process is removing stored files now; none removed.")
            else:
                print(f"Removed {removed} stored files older than {format_duration(files)}.")
    finally:
        engine.dispose()


def _replay(args: argparse.Namespace) -> None:
    results = asyncio.run(
        replay_stored(
            get_settings(),
            outcomes=tuple(Outcome(outcome) for outcome in args.outcome),
            since=args.since,
            again=args.again,
        )
    )
    total = sum(results.values())
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(results.items()))
    print(f"Replayed {total} deliveries" + (f": {summary}." if total else "."))
    if results[UNAVAILABLE]:
        # A script running the replay learns that some of it is still to do.
        raise SystemExit("The database stayed unavailable for some deliveries: replay again later.")


def _aware_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _init_env(path: Path) -> None:
    """Out of the box the API must not be anonymous: make a token and say what it is."""
    if get_settings().api_tokens:
        print(f"API token already configured ({TOKEN_VARIABLE}).")
        return
    token = secrets.token_urlsafe(32)
    existing = path.read_text() if path.exists() else ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    path.write_text(f"{existing}{separator}{TOKEN_VARIABLE}={token}\n")
    path.chmod(0o600)
    get_settings.cache_clear()
    print(f"Created an API token in {path}: {token}")
    print(f"Use it as: curl -H 'Authorization: Bearer {token}' http://127.0.0.1:8000/v1/jobs/...")
