"""A real PostgreSQL server for the PostgreSQL store and the outbox and audit tests.

``initdb`` into a temporary directory (trust auth, fsync off), then
``postgres`` on a free loopback port. As root the server runs as the
``postgres`` user (PostgreSQL refuses to run as root). ``scripts/test``
installs the server package when it is missing.

The store under test lives in schema ``conveyor_test`` of database
``conveyor``; :meth:`PostgresServer.empty_store` empties every one of its tables
before a test (a few DELETEs in one round trip: a fresh database from a template
or a TRUNCATE of every table costs 70-100 ms a test, measured).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from tests.redis_servers import free_port

START_TIMEOUT = 30.0
STORE_SCHEMA = "conveyor_test"


class PostgresNotInstalledError(RuntimeError):
    pass


def postgres_bin(name: str) -> str:
    found = shutil.which(name)
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:  # Debian's versioned binaries (the PATH ones may be wrappers)
        return candidates[0]
    if found is None:
        raise PostgresNotInstalledError(
            f"{name} not found; run scripts/test (it installs postgresql) or install it"
        )
    return found


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class PostgresServer:
    def __init__(self, directory: Path, settings: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.settings = settings or {}
        """Extra server settings (``-c name=value``), e.g. for a benchmark."""
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: psycopg.Connection[Any] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def store_url(self, schema: str = STORE_SCHEMA) -> str:
        """The URL of a conveyor store in ``schema`` of the ``conveyor`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/conveyor?schema={schema}"

    def empty_store(self, schema: str = STORE_SCHEMA) -> str:
        """Delete every row of the store in ``schema`` (made by its first open); its URL."""
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.store_dsn, autocommit=True)
        tables = self._admin.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s"
            " AND tablename <> 'schema_version'",
            (schema,),
        ).fetchall()
        if tables:
            # A lock held this long means a previous test left a connection behind.
            self._admin.execute("SET lock_timeout = '10s'")
            # The job counts last: deleting jobs appends their moves (the counting triggers).
            names = sorted((name for (name,) in tables), key=lambda n: n.startswith("job_count"))
            statements = "; ".join(f"DELETE FROM {schema}.{name}" for name in names)
            self._admin.execute(statements)
        return self.store_url(schema)

    def drop_schema(self, schema: str) -> None:
        with psycopg.connect(self.store_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    @property
    def store_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/conveyor"

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            _as_server_user(
                [postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
            ),
            check=True,
            capture_output=True,
        )
        self.port = free_port()
        with open(self.directory / "postgres.log", "wb") as log:
            self.process = self._spawn(data, log)
        self._wait_ready()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE conveyor")

    def _spawn(self, data: Path, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            _as_server_user(
                [
                    postgres_bin("postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.directory),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "full_page_writes=off",
                    *[
                        arg
                        for name, value in self.settings.items()
                        for arg in ("-c", f"{name}={value}")
                    ],
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with psycopg.connect(self.dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "PostgreSQL did not start: "
                        + (self.directory / "postgres.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def reset(self) -> None:
        """Drop every table the previous test made."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


@contextlib.contextmanager
def running_postgres(settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    """A server in a new directory under the system temp dir (the server user must reach it)."""
    directory = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
    server = PostgresServer(directory, settings)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
