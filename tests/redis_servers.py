"""Real Redis servers for the tests: a standalone server and a 3-master cluster.

Every server runs ``redis-server`` on a free loopback port, from a config
generated in its own temporary directory (persistence off unless asked for),
and is stopped with SIGTERM, then SIGKILL. Nothing here uses a fixed port, so
several test runs can share a machine. ``scripts/test`` installs redis-server.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 30.0
START_ATTEMPTS = 5  # a port found free may be taken before redis-server binds it

BASE_CONFIG = {
    "bind": "127.0.0.1",
    "protected-mode": "no",
    "daemonize": "no",
    "save": '""',
    "appendonly": "no",
}


class RedisNotInstalledError(RuntimeError):
    pass


class RedisStartError(RuntimeError):
    pass


def redis_binary(name: str = "redis-server") -> str:
    path = shutil.which(name)
    if path is None:
        raise RedisNotInstalledError(
            f"{name} is not on PATH; the Redis tests start real servers."
            " Run scripts/test (it installs redis-server) or install it yourself,"
            " e.g. apt-get install redis-server."
        )
    return path


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, have the kernel SIGKILL a server when the test process dies.

    A test run killed from outside (a CI timeout, pytest-timeout's os._exit)
    skips its teardown; this keeps it from leaving servers behind. The signal
    fires when the *thread* that started the server ends, and the fixtures
    start servers from the main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)

    return set_death_signal


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, with its config and log in ``directory``."""

    def __init__(self, directory: Path, config: dict[str, str] | None = None) -> None:
        self.directory = directory
        self.config = {**BASE_CONFIG, **(config or {})}
        self.ports: tuple[int, ...] = ()
        self.process: subprocess.Popen[bytes] | None = None
        self._client: redis.Redis | None = None

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def logfile(self) -> Path:
        return self.directory / "redis.log"

    def client(self) -> redis.Redis:
        """A sync client to this server (kept, closed when the server stops)."""
        if self._client is None:
            self._client = redis.Redis(
                host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5
            )
        return self._client

    def start(self, ports: tuple[int, ...] | None = None) -> None:
        """Start on ``ports`` (client port [, cluster bus port]), or on free ones.

        Free ports are retried if another process grabs one first; given
        ports (a restart on the same port) are retried for a while.
        """
        for attempt in range(START_ATTEMPTS):
            chosen = ports or tuple(free_port() for _ in range(self._ports_needed()))
            try:
                self._start_on(chosen)
                return
            except RedisStartError:
                if attempt == START_ATTEMPTS - 1 or "Address already in use" not in self.log():
                    raise
                time.sleep(0.2)

    def _ports_needed(self) -> int:
        return 2 if self.config.get("cluster-enabled") == "yes" else 1

    def _start_on(self, ports: tuple[int, ...]) -> None:
        self.ports = ports
        config = {**self.config, "port": str(self.port)}
        if len(ports) > 1:
            config["cluster-port"] = str(ports[1])
        self.directory.mkdir(parents=True, exist_ok=True)
        config_path = self.directory / "redis.conf"
        lines = [f"{key} {value}" for key, value in config.items()]
        lines += [f'dir "{self.directory}"', f'logfile "{self.logfile}"']
        config_path.write_text("\n".join(lines) + "\n")
        self.logfile.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [redis_binary(), str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(),
        )
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        probe = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1
        )
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RedisStartError(
                        f"redis-server on port {self.port} exited with"
                        f" {self.process.returncode}:\n{self.log()}"
                    )
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if probe.ping():
                        return
                if time.monotonic() > deadline:
                    self.kill()
                    raise RedisStartError(
                        f"redis-server on port {self.port} did not answer PING:\n{self.log()}"
                    )
                time.sleep(0.02)
        finally:
            probe.close()

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return "(no log file)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time; waits for the process."""
        self._close_client()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)  # in case a test froze it
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL (a crash): nothing is flushed. Waits for the process."""
        self._close_client()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    def restart(self, *, crash: bool = True) -> None:
        """Kill (or stop) the server and start it again on the same port(s)."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start(self.ports)

    def freeze(self) -> None:
        """SIGSTOP: the port accepts connections but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def flush(self) -> None:
        self.client().flushall()

    def _close_client(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()


class RedisCluster:
    """Three masters, no replicas, slots spread by ``redis-cli --cluster create``."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                {
                    "cluster-enabled": "yes",
                    "cluster-config-file": f'"{directory / f"node{i}" / "nodes.conf"}"',
                    "cluster-node-timeout": "2000",
                },
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self._wait_until_ok()
        except BaseException:
            self.stop()
            raise

    def _create(self) -> None:
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        options = ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(
            [redis_binary("redis-cli"), "--cluster", "create", *addresses, *options],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CLUSTER_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RedisStartError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")

    def _wait_until_ok(self) -> None:
        deadline = time.monotonic() + CLUSTER_TIMEOUT
        while not all(self._node_ready(node) for node in self.nodes):
            if time.monotonic() > deadline:
                states = {n.port: _cluster_info(n) for n in self.nodes}
                raise RedisStartError(f"the cluster did not reach cluster_state:ok: {states}")
            time.sleep(0.05)

    def _node_ready(self, node: RedisServer) -> bool:
        info = _cluster_info(node)
        return (
            info.get("cluster_state") == "ok"
            and info.get("cluster_slots_ok") == "16384"
            and info.get("cluster_known_nodes") == str(len(self.nodes))
        )

    def flush(self) -> None:
        for node in self.nodes:
            node.flush()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _cluster_info(node: RedisServer) -> dict[str, str]:
    """CLUSTER INFO of ``node`` as a dict of strings (redis-py parses it; raw text is split)."""
    raw = node.client().cluster("INFO")
    if isinstance(raw, dict):
        return {str(key): str(value) for key, value in raw.items()}
    if not isinstance(raw, bytes | str):
        raise RedisStartError(f"unexpected CLUSTER INFO reply from port {node.port}: {raw!r}")
    text = raw.decode() if isinstance(raw, bytes) else raw
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


@contextlib.contextmanager
def running_server(
    config: dict[str, str] | None = None, directory: Path | None = None
) -> Iterator[RedisServer]:
    """A started standalone server, stopped (and its temp dir removed) on exit."""
    owned = directory is None
    server = RedisServer(directory or _temp_dir("conveyor-redis-"), config)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if owned:
            shutil.rmtree(server.directory, ignore_errors=True)


@contextlib.contextmanager
def running_cluster(directory: Path | None = None) -> Iterator[RedisCluster]:
    """A started 3-master cluster, stopped (and its temp dir removed) on exit."""
    owned = directory is None
    root = directory or _temp_dir("conveyor-redis-cluster-")
    cluster = RedisCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if owned:
            shutil.rmtree(root, ignore_errors=True)
