"""A real ``conveyor serve`` process on a free loopback port, for the service tests.

The server's stderr (every log line it writes: conveyor's JSON lines and
uvicorn's own) goes to a file the tests read.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tests.redis_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "cvk_web-service-tests-operator-token-not-a-secret"
"""An operator key of the web tests' service (its digest is configured, as in production)."""
ADMIN_KEYS = "tests:operator:" + hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()


class ServiceProcess:
    """One ``conveyor serve APP`` subprocess."""

    def __init__(
        self,
        app_path: str,
        log_path: Path,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "conveyor", "serve", app_path, "--port", str(self.port)]
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [*command, *args], cwd=ROOT, env=environment, stdout=self._log, stderr=self._log
        )

    def wait_until_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"conveyor serve exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/livez", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"conveyor serve did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log().splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        """conveyor's structured log lines (uvicorn's own plain lines left out)."""
        found = []
        for line in self.log_lines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@contextmanager
def running_service(
    app_path: str,
    log_path: Path,
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[ServiceProcess]:
    server = ServiceProcess(app_path, log_path, args=args, env=env)
    try:
        server.wait_until_up()
        yield server
    finally:
        server.kill()
