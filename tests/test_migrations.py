"""The schema comes only from migrations: they must build exactly what the models describe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select, text

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
    settings = Backend(backend.name, fresh_database_url).settings()
    config = alembic_config(settings)
    command.upgrade(config, "0001")
    engine = create_sync_engine(settings)
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
    settings = Backend(backend.name, fresh_database_url).settings()
    config = alembic_config(settings)
    command.upgrade(config, "0002")
    engine = create_sync_engine(settings)
    output_rows = "SELECT job_pk, position, role, object, md5 FROM job_output ORDER BY id"
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO delivery (id, received_at, endpoint, outcome, headers,"
                    " body_size) VALUES (1, '2026-01-01 00:00:00', 'auto', 'accepted', '{}', 0)"
                )
            )
            for pk, job_id in ((1, "with"), (2, "without")):
                connection.execute(
                    text(
                        "INSERT INTO job (id, provider, job_id, kind, state, provider_state,"
                        " deliveries, first_received_at, last_received_at, last_delivery_id,"
                        " state_delivery_id) VALUES (:pk, 'tencent-ci', :job_id, 'tts',"
                        " 'succeeded', 'Success', 1, '2026-01-01 00:00:00',"
                        " '2026-01-01 00:00:00', 1, 1)"
                    ),
                    {"pk": pk, "job_id": job_id},
                )
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
