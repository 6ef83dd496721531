"""One real stemhook, served under a path prefix, and deploy/nginx.conf in a real nginx in front.

stemhook believes forwarded headers from 127.0.0.1 only, where nginx connects from; the tests'
client connects from 127.0.0.2, another loopback address, so the address nginx saw can be told
apart from nginx's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import API_TOKEN
from tests.deploy.nginx import nginx_binary, running_nginx
from tests.reliability.support import server_env
from tests.servers import running_server

ROOT_PATH = "/stemhook"
CALLBACK_TOKEN = "callback-token-0123456789"
CLIENT_ADDR = "127.0.0.2"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture(scope="session")
def stemhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of `stemhook serve` itself."""
    workdir = tmp_path_factory.mktemp("stemhook")
    env = server_env(
        f"sqlite:///{workdir / 'stemhook.db'}",
        forwarded_allow_ips="127.0.0.1",
        root_path=ROOT_PATH,
        callback_token=CALLBACK_TOKEN,
    )
    with running_server(env, workdir) as url:
        yield url


@pytest.fixture(scope="session")
def nginx() -> str:
    return nginx_binary()


@pytest.fixture(scope="session")
def proxy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of the proxy's configuration, pid file and logs."""
    return tmp_path_factory.mktemp("nginx")


@pytest.fixture(scope="session")
def proxy(nginx: str, stemhook: str, proxy_run: Path) -> Iterator[str]:
    """The URL of stemhook through nginx, prefix included."""
    with running_nginx(proxy_run, upstream=urlsplit(stemhook).netloc, root_path=ROOT_PATH) as url:
        yield url + ROOT_PATH


@pytest.fixture
def proxy_log(proxy_run: Path) -> Path:
    """What nginx wrote to its standard output and error: the access and error logs."""
    return proxy_run / "nginx.out"


@pytest.fixture
def sender() -> Iterator[httpx.Client]:
    """A callback sender whose connections come from CLIENT_ADDR."""
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDR)
    with httpx.Client(transport=transport, timeout=30) as opened:
        yield opened
