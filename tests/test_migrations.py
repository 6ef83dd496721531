"""The schema comes only from migrations: they must build exactly what the models describe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, select, text

from app import models  # noqa: F401 - registers the tables on Base.metadata
from app.db import Base, create_sync_engine
from app.schema import alembic_config
from tests.conftest import Backend


def test_migrated_database_matches_the_models(backend: Backend, engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migrations_go_down_and_up_again(backend: Backend, engine: Engine) -> None:
    config = alembic_config(backend.settings())
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    test_migrated_database_matches_the_models(backend, engine)


def test_replicas_starting_together_migrate_one_after_the_other(
    backend: Backend, fresh_database_url: str, tmp_path: Path
) -> None:
    env = os.environ | {"STEMHOOK_DATABASE_URL": fresh_database_url}
    command_line = [sys.executable, "-m", "app", "migrate"]
    runs = [
        subprocess.Popen(command_line, cwd=tmp_path, env=env, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outcomes = [(run.communicate(timeout=60)[1], run.returncode) for run in runs]
    failures = [stderr.decode() for stderr, code in outcomes if code != 0]

    assert failures == []
    engine = create_sync_engine(Backend(backend.name, fresh_database_url).settings())
    try:
        test_migrated_database_matches_the_models(backend, engine)
    finally:
        engine.dispose()


def test_upgrading_keeps_existing_rows(backend: Backend, fresh_database_url: str) -> None:
    config, engine = _at_revision(backend, fresh_database_url, "0001")
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO delivery (received_at, endpoint, outcome, headers, body_size,"
                    " body) VALUES ('2026-01-01 00:00:00', 'auto', 'accepted', '{}', 2, :body)"
                ),
                {"body": b"{}"},
            )
        command.upgrade(config, "head")
        with engine.connect() as connection:
            row = connection.execute(text("SELECT body, replay_of FROM delivery")).one()
        assert (bytes(row.body), row.replay_of) == (b"{}", None)
    finally:
        engine.dispose()


def test_outputs_move_into_their_job_in_order_and_back(
    backend: Backend, fresh_database_url: str
) -> None:
    config, engine = _at_revision(backend, fresh_database_url, "0002")
    output_rows = "SELECT job_pk, position, role, object, md5 FROM job_output ORDER BY id"
    try:
        with engine.begin() as connection:
            _insert_delivery(connection, 1)
            for pk, job_id in ((1, "with"), (2, "without")):
                _insert_job(connection, pk, job_id)
            # Stored out of position order: the order that counts is the position.
            for position, role, md5 in ((1, "accompaniment", None), (0, "vocals", "abc")):
                connection.execute(
                    text(
                        "INSERT INTO job_output (job_pk, position, role, object, md5)"
                        " VALUES (1, :position, :role, :object, :md5)"
                    ),
                    {"position": position, "role": role, "object": f"o/{role}", "md5": md5},
                )
        command.upgrade(config, "head")
        with engine.connect() as connection:
            outputs = connection.execute(
                select(models.Job.job_id, models.Job.outputs).order_by(models.Job.id)
            ).all()
        unset = dict.fromkeys(("url", "bucket", "region", "content_id", "destination"))
        unset["file_name"] = None
        assert [tuple(row) for row in outputs] == [
            (
                "with",
                [
                    {"role": "vocals", "object": "o/vocals", "md5": "abc", **unset},
                    {"role": "accompaniment", "object": "o/accompaniment", "md5": None, **unset},
                ],
            ),
            ("without", None),
        ]

        command.downgrade(config, "0002")
        with engine.connect() as connection:
            restored = [tuple(row) for row in connection.execute(text(output_rows))]
        assert restored == [
            (1, 0, "vocals", "o/vocals", "abc"),
            (1, 1, "accompaniment", "o/accompaniment", None),
        ]
    finally:
        engine.dispose()


SPARSE_LOOKUPS = {
    "ix_job_custom_id": "SELECT id FROM job WHERE custom_id = :value",
    "ix_job_user_data": "SELECT id FROM job WHERE user_data = :value",
    "ix_delivery_replay_of": "SELECT id FROM delivery WHERE replay_of = :value",
}


@pytest.mark.parametrize(("index", "lookup"), SPARSE_LOOKUPS.items())
def test_partial_indexes_serve_the_lookups_by_value(
    backend: Backend, engine: Engine, index: str, lookup: str
) -> None:
    """They index only rows with a value, and each database must still see that an equality
    look-up with a bound value can use them."""
    value = 7 if "replay_of" in lookup else "x"
    definitions = {
        "sqlite": "SELECT sql FROM sqlite_master WHERE name = :index",
        "postgresql": "SELECT indexdef FROM pg_indexes WHERE indexname = :index",
    }
    with engine.connect() as connection:
        definition = connection.execute(text(definitions[backend.name]), {"index": index}).scalar()
        assert "IS NOT NULL" in str(definition)
        if backend.name == "sqlite":
            plan = connection.execute(text(f"EXPLAIN QUERY PLAN {lookup}"), {"value": value})
            used = " ".join(str(row[-1]) for row in plan)
        else:
            # The tables are empty: without this, a sequential scan is cheapest whatever the index.
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            plan = connection.execute(text(f"EXPLAIN {lookup}"), {"value": value})
            used = " ".join(str(row[0]) for row in plan)
    assert index in used


def test_rows_keep_their_links_across_the_delivery_job_rebuild(
    backend: Backend, fresh_database_url: str
) -> None:
    """Migration 0004 rebuilds delivery_job on SQLite (WITHOUT ROWID): up and down again, its
    rows and what they link stay."""
    config, engine = _at_revision(backend, fresh_database_url, "0003")
    links = "SELECT delivery_id, job_pk, duplicate FROM delivery_job ORDER BY delivery_id"
    try:
        with engine.begin() as connection:
            for delivery_id in (1, 2):
                _insert_delivery(connection, delivery_id)
            _insert_job(connection, 1, "t", custom_id="mine")
            connection.execute(
                text(
                    "INSERT INTO delivery_job (delivery_id, job_pk, duplicate)"
                    " VALUES (1, 1, false), (2, 1, true)"
                )
            )
        for revision in ("head", "0003", "head"):
            if revision == "head":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
            with engine.connect() as connection:
                rows = [tuple(row) for row in connection.execute(text(links))]
                found = connection.execute(
                    text("SELECT id FROM job WHERE custom_id = 'mine'")
                ).scalars()
                assert (rows, list(found)) == ([(1, 1, False), (2, 1, True)], [1])
    finally:
        engine.dispose()


def test_watches_begin_for_unfinished_jobs_and_the_job_table_copy_keeps_its_children(
    backend: Backend, fresh_database_url: str
) -> None:
    """Migration 0010 copies the job table on SQLite (its delivery ids become nullable) while
    events, links and files point at it, and watches the unfinished jobs; down again, jobs
    without a delivery go and the rest stays."""
    config, engine = _at_revision(backend, fresh_database_url, "0009")
    children = (
        "SELECT (SELECT count(*) FROM job_event), (SELECT count(*) FROM delivery_job),"
        " (SELECT count(*) FROM job_file)"
    )
    try:
        with engine.begin() as connection:
            _insert_delivery(connection, 1)
            _insert_job(connection, 1, "done")
            _insert_job(connection, 2, "running", state="running")
            connection.execute(
                text(
                    "INSERT INTO job_event (job_pk, delivery_id, to_state, at)"
                    " VALUES (1, 1, 'succeeded', '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO delivery_job (delivery_id, job_pk, duplicate)"
                    " VALUES (1, 1, false), (1, 2, false)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO job_file (job_pk, position, url, status, attempts)"
                    " VALUES (1, 0, 'https://files.invalid/a.mp3', 'pending', 0)"
                )
            )
        command.upgrade(config, "head")
        with engine.begin() as connection:
            assert tuple(connection.execute(text(children)).one()) == (1, 2, 1)
            watches = connection.execute(
                text("SELECT job_pk, status, run_after, give_up_at FROM job_watch")
            ).all()
            # First heard of long before its 48 hours: given up at once, not polled at the upgrade.
            assert [(pk, status) for pk, status, _, _ in watches] == [(2, "gave_up")]
            [(_, _, run_after, give_up_at)] = watches
            assert (run_after, str(give_up_at)[:19]) == (None, "2026-01-03 00:00:00")
            connection.execute(
                text(
                    "INSERT INTO job (id, provider, job_id, kind, state, provider_state,"
                    " deliveries, first_received_at, last_received_at) VALUES (3, 'suno',"
                    " 'registered',"
                    " 'expected', 'submitted', '', 0, '2026-01-02 00:00:00',"
                    " '2026-01-02 00:00:00')"
                )
            )
        command.downgrade(config, "0009")
        with engine.connect() as connection:
            assert tuple(connection.execute(text(children)).one()) == (1, 2, 1)
            jobs = connection.execute(text("SELECT job_id FROM job ORDER BY id")).scalars()
            assert list(jobs) == ["done", "running"]
    finally:
        engine.dispose()


def test_watches_take_their_jobs_provider(backend: Backend, fresh_database_url: str) -> None:
    """Migration 0013 copies each job's provider onto its watch, which the claim index needs."""
    config, engine = _at_revision(backend, fresh_database_url, "0012")
    try:
        with engine.begin() as connection:
            for pk, provider in ((1, "suno"), (2, "tencent-ci")):
                connection.execute(
                    text(
                        "INSERT INTO job (id, provider, job_id, kind, state, provider_state,"
                        " deliveries, first_received_at, last_received_at) VALUES (:pk,"
                        " :provider, :job_id, 'unknown', 'submitted', '', 0,"
                        " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                    ),
                    {"pk": pk, "provider": provider, "job_id": f"j{pk}"},
                )
                connection.execute(
                    text(
                        "INSERT INTO job_watch (job_pk, status, give_up_at, run_after) VALUES"
                        " (:pk, 'waiting', '2026-01-03 00:00:00', '2026-01-01 00:10:00')"
                    ),
                    {"pk": pk},
                )
        command.upgrade(config, "head")
        with engine.connect() as connection:
            watches = connection.execute(text("SELECT job_pk, provider FROM job_watch ORDER BY 1"))
            assert [tuple(row) for row in watches] == [(1, "suno"), (2, "tencent-ci")]
    finally:
        engine.dispose()


def test_claims_are_kept_on_their_links_and_unconfirmed_deliveries_go_down_as_rejected(
    backend: Backend, fresh_database_url: str
) -> None:
    """Migration 0014 adds the state a held callback claims to its link, in place; down again,
    a delivery still unconfirmed becomes rejected (the version before knows no such outcome),
    with the reason, and every link stays."""
    config, engine = _at_revision(backend, fresh_database_url, "0014")
    try:
        with engine.begin() as connection:
            _insert_delivery(connection, 1)
            _insert_delivery(connection, 2)
            connection.execute(text("UPDATE delivery SET outcome = 'unconfirmed' WHERE id = 2"))
            _insert_job(connection, 1, "held", state="submitted")
            connection.execute(
                text(
                    "INSERT INTO delivery_job (delivery_id, job_pk, duplicate, claimed_state)"
                    " VALUES (1, 1, false, NULL), (2, 1, true, 'succeeded')"
                )
            )
        command.downgrade(config, "0013")
        with engine.connect() as connection:
            outcomes = connection.execute(
                text("SELECT id, outcome, error FROM delivery ORDER BY id")
            ).all()
            links = connection.execute(text("SELECT count(*) FROM delivery_job")).scalar_one()
        assert [(row.id, row.outcome) for row in outcomes] == [(1, "accepted"), (2, "rejected")]
        assert outcomes[0].error is None and "unconfirmed" in outcomes[1].error
        assert links == 2
        command.upgrade(config, "head")
    finally:
        engine.dispose()


def _at_revision(backend: Backend, url: str, revision: str) -> tuple[Config, Engine]:
    """A fresh database of the backend's kind migrated up to `revision`: its Alembic config and
    an engine on it."""
    settings = Backend(backend.name, url).settings()
    config = alembic_config(settings)
    command.upgrade(config, revision)
    return config, create_sync_engine(settings)


def _insert_delivery(connection: Connection, delivery_id: int) -> None:
    connection.execute(
        text(
            "INSERT INTO delivery (id, received_at, endpoint, outcome, headers, body_size)"
            " VALUES (:id, '2026-01-01 00:00:00', 'auto', 'accepted', '{}', 0)"
        ),
        {"id": delivery_id},
    )


def _insert_job(
    connection: Connection,
    pk: int,
    job_id: str,
    *,
    custom_id: str | None = None,
    state: str = "succeeded",
) -> None:
    """A job (succeeded unless told) first and last touched by delivery 1, as the first schema
    has it."""
    connection.execute(
        text(
            "INSERT INTO job (id, provider, job_id, kind, state, provider_state, custom_id,"
            " deliveries, first_received_at, last_received_at, last_delivery_id,"
            " state_delivery_id) VALUES (:pk, 'tencent-ci', :job_id, 'tts', :state,"
            " 'Success', :custom_id, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1, 1)"
        ),
        {"pk": pk, "job_id": job_id, "custom_id": custom_id, "state": state},
    )
