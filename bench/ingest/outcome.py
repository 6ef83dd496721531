"""Everything one run produced, as the report needs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.ingest.facts import Facts
from bench.ingest.parsers import ParserCost
from bench.ingest.payloads import Family
from bench.ingest.profile import Profile
from bench.ingest.run import Ledger, Plan, Run


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    facts: Facts
    command: str
    scope: str  # "full", or what --quick and the filters left out
    runs: list[Run]  # each target's best run of each round (run.peaks): what the tables show
    sweep: list[Run]  # every run, at every connection count
    ledgers: list[Ledger]
    parser_costs: list[ParserCost]
    profile: Profile | None
    profile_family: Family | None
    workdir: Path
