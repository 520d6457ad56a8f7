"""The reference service (examples/service) as the e2e tests run it: a real
``conveyor serve examples.service:app`` on a free loopback port, its database,
files and conveyor store under the test's own directory."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx2 as httpx

from tests.web_server import ServiceProcess, running_service

APP = "examples.service:app"
T = TypeVar("T")


def service_env(root: Path, store_url: str | None = None, **settings: str) -> dict[str, str]:
    """The environment of a service whose every file lives under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    env = {
        "CONVEYOR_URL": store_url or f"sqlite:///{root / 'conveyor.db'}",
        "CONVEYOR_LOG_FORMAT": "json",
        "SERVICE_DATABASE_URL": f"sqlite+aiosqlite:///{root / 'service.db'}",
        "SERVICE_DATA_DIR": str(root / "data"),
    }
    env.update({f"SERVICE_{name.upper()}": value for name, value in settings.items()})
    return env


@contextmanager
def reference_service(
    root: Path, *, args: tuple[str, ...] = (), store_url: str | None = None, **settings: str
) -> Iterator[ServiceProcess]:
    with running_service(
        APP, root / "server.log", args=args, env=service_env(root, store_url, **settings)
    ) as server:
        yield server


def sign_up(client: httpx.Client, tier: str = "enterprise", name: str = "tester") -> dict[str, str]:
    """A new account on ``tier``; returns the headers that carry its key."""
    answer = client.post("/api/v1/accounts", json={"name": name, "tier": tier})
    assert answer.status_code == 201, answer.text
    return {"X-API-Key": answer.json()["apiKey"]}


def wait_for(
    read: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0, every: float = 0.05
) -> T:
    """Call ``read`` until ``done`` says yes about its answer; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout}s; last answer: {value!r}")
        time.sleep(every)


def json_of(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, f"{answer.status_code}: {answer.text}"
    return answer.json()
