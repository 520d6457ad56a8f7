"""Shared fixtures: every store the conformance suite runs against.

The Redis stores run against real servers that this session starts on free
loopback ports (tests/redis_servers.py): one standalone ``redis-server`` and
one 3-master Redis Cluster, each started the first time a test needs it and
stopped when the session ends. Every test gets an empty store (FLUSHALL on
the server, or on every cluster master, before the test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from tests.postgres_server import PostgresServer, running_postgres
from tests.redis_servers import RedisCluster, RedisServer, running_cluster, running_server
from tests.web_server import ADMIN_KEYS, ServiceProcess, running_service

STORES = ["memory", "sqlite", "redis", "redis-cluster"]
REDIS_STORES = {"redis", "redis-cluster"}

RedisDeployment = RedisServer | RedisCluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "redis: needs real Redis servers, started by the test session"
    )


def store_url_for(kind: str, tmp_path: Path, redis: RedisDeployment | None = None) -> str:
    """The URL of a store of ``kind``; a Redis kind needs its running ``redis`` deployment."""
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'conveyor.db'}"
    if kind in REDIS_STORES:
        if redis is None:
            raise ValueError(f"the {kind} store needs a running server (the store_url fixture)")
        return redis.url
    raise ValueError(kind)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One standalone redis-server for the session (started on first use)."""
    with running_server(directory=tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One 3-master Redis Cluster for the session (started on first use)."""
    with running_cluster(directory=tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared standalone server, emptied for this test."""
    redis_server.flush()
    return redis_server.url


def _redis_deployment(request: pytest.FixtureRequest, kind: str) -> RedisDeployment:
    fixture = "redis_server" if kind == "redis" else "redis_cluster"
    deployment: RedisDeployment = request.getfixturevalue(fixture)
    deployment.flush()
    return deployment


@pytest.fixture(
    params=[
        pytest.param(kind, marks=pytest.mark.redis) if kind in REDIS_STORES else kind
        for kind in STORES
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind: str = request.param
    redis = _redis_deployment(request, kind) if kind in REDIS_STORES else None
    return store_url_for(kind, tmp_path, redis)


AppFactory = Callable[..., Conveyor]


@pytest.fixture
async def make_app(store_url: str) -> AsyncIterator[AppFactory]:
    """Build apps on the store under test; all are closed after the test."""
    apps: list[Conveyor] = []

    def make(**settings: Any) -> Conveyor:
        settings.setdefault("log_level", "WARNING")
        app = Conveyor(store_url, **settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (started on first use)."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def web_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """``conveyor serve`` of the test billing service (tests/integration/web_service_app.py),
    one for the session (started on first use)."""
    log = tmp_path_factory.mktemp("web") / "server.log"
    env = {"CONVEYOR_ADMIN_KEYS": ADMIN_KEYS}
    with running_service("tests.integration.web_service_app:api", log, env=env) as server:
        yield server
