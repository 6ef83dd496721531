"""Real databases for the storage tests: SQLite and PostgreSQL, built by the migrations.

Each test session gets its own SQLite file and its own PostgreSQL database (so concurrent runs
on one server never meet); tables are emptied between tests. When PostgreSQL is unreachable
its tests are skipped on a developer machine and fail in CI (CI=true).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import hypothesis
import psycopg
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import Engine, text

from app.config import Settings
from app.db import create_sync_engine
from app.main import create_app
from app.schema import upgrade_to_head
from tests.proxy import FaultyProxy

API_TOKEN = "test-token-0123456789abcdef"
PG_ADMIN_DSN = os.environ.get("STEMHOOK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = (
    "job_watch",
    "job_file",
    "job_event",
    "delivery_job",
    "job",
    "delivery",
    "signature_use",
    "purge_state",
    "ci_listing",
)
# How long a provider waits for an answer before it gives up and retries (Tencent's and Suno's
# 15 s): a bound where real time is the point, generous against a loaded machine. The faster
# figures stemhook aims at (BENCHMARKS.md) are measured, not asserted.
PROVIDER_PATIENCE_S = 15
# The longest write timeout allowed, for every test that does not choose its own: a write is
# answered 503 where a test takes the database away, never because the machine is loaded.
TEST_WRITE_TIMEOUT_S = 10


def pytest_configure(config: pytest.Config) -> None:
    # The suite configures the service itself; a developer's STEMHOOK_* must not leak in.
    for name in [
        name for name in os.environ if name.startswith("STEMHOOK_") and "TEST" not in name
    ]:
        del os.environ[name]
    # Fixtures carry real providers' URLs: no test fetches them. The tests of mirroring turn it
    # on, with URLs of a file server on loopback.
    os.environ["STEMHOOK_MIRROR"] = "false"
    # Nor does any poll reach a provider: a test that configures credentials polls a fake one
    # on loopback, and these names are refused without a lookup (RFC 6761) if one forgets.
    os.environ["STEMHOOK_SUNO_API_BASE"] = "https://suno-api.invalid"
    os.environ["STEMHOOK_MEDIA_LAB_API_BASE"] = "https://media-lab-api.invalid/release/job"
    # No run's outcome may hang on the machine's load: no per-example time limit, and no health
    # check on how fast examples are made. In CI a red run stops a landing, so property tests
    # (and schemathesis) also try the same examples every time; developers' runs explore.
    unhurried = {"deadline": None, "suppress_health_check": [hypothesis.HealthCheck.too_slow]}
    hypothesis.settings.register_profile("dev", **unhurried)
    hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True, **unhurried)
    hypothesis.settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="also run the tests marked long")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked postgres_only (sqlite_only) are not generated for the other backend at all
    (not even as skips); those marked long (minutes each) only with --long. Those marked
    `servers` share one pytest-xdist group: one worker runs them one after another."""
    only = {"sqlite": "postgres_only", "postgresql": "sqlite_only"}
    long_ones = bool(config.getoption("--long"))
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        excluded = backend in only and item.get_closest_marker(only[backend]) is not None
        excluded = excluded or (not long_ones and item.get_closest_marker("long") is not None)
        (dropped if excluded else kept).append(item)
        if item.get_closest_marker("servers") is not None:
            item.add_marker(pytest.mark.xdist_group("servers"))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@dataclass(frozen=True)
class Backend:
    name: str
    url: str

    def settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": self.url,
            "api_tokens": API_TOKEN,
            "write_timeout_s": TEST_WRITE_TIMEOUT_S,
        }
        return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def _postgres_database() -> Iterator[str]:
    name = f"stemhook_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL unreachable at {PG_ADMIN_DSN}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "stemhook.db"
        urls: Iterator[str] = iter([f"sqlite:///{path}"])
    else:
        urls = _postgres_database()
    url = next(urls)
    found = Backend(request.param, url)
    upgrade_to_head(found.settings())
    yield found
    next(urls, None)


@pytest.fixture
def fresh_database_url(backend: Backend, tmp_path: Path) -> Iterator[str]:
    """An empty database of the backend's kind, with no schema at all."""
    if backend.name == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def engine(backend: Backend) -> Iterator[Engine]:
    """A direct connection to the test database, for asserting what was really stored."""
    engine = create_sync_engine(backend.settings())
    yield engine
    with engine.begin() as connection:
        for table in TABLES:
            connection.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> None:
    """Every test on a backend leaves its tables empty (the engine fixture's teardown)."""
    if "backend" in request.fixturenames:
        request.getfixturevalue("engine")


@pytest.fixture
def settings(backend: Backend, engine: Engine) -> Settings:
    return backend.settings()


@contextmanager
def refusing_job(engine: Engine, backend: Backend, job_id: str) -> Iterator[None]:
    """While inside, the real database refuses to store the job `job_id` (a trigger aborts
    it): how a delivery becomes orphaned, and stops being once the cause is gone."""
    quoted = job_id.replace("'", "''")
    create, drop = {
        "sqlite": (
            [
                f"CREATE TRIGGER refuse_job BEFORE INSERT ON job WHEN NEW.job_id = '{quoted}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
            ],
            ["DROP TRIGGER refuse_job"],
        ),
        "postgresql": (
            [
                "CREATE FUNCTION refuse_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.job_id = '{quoted}' THEN RAISE EXCEPTION 'refused by test trigger';"
                " END IF; RETURN NEW; END $$",
                "CREATE TRIGGER refuse_job BEFORE INSERT ON job FOR EACH ROW "
                "EXECUTE FUNCTION refuse_job()",
            ],
            ["DROP TRIGGER refuse_job ON job", "DROP FUNCTION refuse_job()"],
        ),
    }[backend.name]
    with installed(engine, create, drop):
        yield


@contextmanager
def stalling_job(engine: Engine, backend: Backend, job_id: str) -> Iterator[None]:
    """While inside, storing the job `job_id` never ends by itself (a trigger keeps the database
    busy until the statement is cancelled or interrupted)."""
    quoted = job_id.replace("'", "''")
    create, drop = {
        # 1,000^4 rows to count: SQLite's interrupt stops it.
        "sqlite": (
            [
                "CREATE TABLE stall (n INTEGER)",
                "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000)"
                " INSERT INTO stall SELECT n FROM c",
                f"CREATE TRIGGER stall_job BEFORE INSERT ON job WHEN NEW.job_id = '{quoted}'"
                " BEGIN SELECT count(*) FROM stall a, stall b, stall c, stall d; END",
            ],
            ["DROP TRIGGER stall_job", "DROP TABLE stall"],
        ),
        "postgresql": (
            [
                "CREATE FUNCTION stall_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.job_id = '{quoted}' THEN PERFORM pg_sleep(3600); END IF;"
                " RETURN NEW; END $$",
                "CREATE TRIGGER stall_job BEFORE INSERT ON job FOR EACH ROW "
                "EXECUTE FUNCTION stall_job()",
            ],
            ["DROP TRIGGER stall_job ON job", "DROP FUNCTION stall_job()"],
        ),
    }[backend.name]
    with installed(engine, create, drop):
        yield


@contextmanager
def installed(engine: Engine, create: list[str], drop: list[str]) -> Iterator[None]:
    """The `create` statements run before, the `drop` ones after, each set in a transaction."""
    with engine.begin() as connection:
        for statement in create:
            connection.execute(text(statement))
    try:
        yield
    finally:
        with engine.begin() as connection:
            for statement in drop:
                connection.execute(text(statement))


@pytest.fixture
def proxy(backend: Backend) -> Iterator[FaultyProxy]:
    """A FaultyProxy in front of the backend's PostgreSQL server (tests/proxy.py)."""
    upstream_port = int(backend.url.split(":")[-1].split("/")[0])
    opened = FaultyProxy(("127.0.0.1", upstream_port))
    yield opened
    opened.close()


async def open_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=("203.0.113.7", 4242))
        async with httpx.AsyncClient(transport=transport, base_url="http://stemhook") as client:
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for opened in open_client(settings):
        yield opened


FIXTURES = Path(__file__).parent / "fixtures"
