"""Conveyor's Redis store against arq, SAQ, RQ, taskiq-redis and BullMQ (Python and
Node), on the same redis-server in the same run.

    python -m bench.redis_peers --url redis://127.0.0.1:PORT/0 [--jobs N] [--repeat R]
        [--rate R] [--seconds S] [--memory-jobs M | --million] [--libs a,b,...]

``scripts/bench-redis`` starts a throwaway redis-server and runs this. Every
measurement is one child process (``bench.redis_peers_runners``, or
``bench/node/bullmq_runner.cjs`` for BullMQ-Node) on a freshly FLUSHALLed server:

- enqueue, one by one: N sequential enqueue calls, timed;
- enqueue, bulk: one batch call for N jobs where the library has one;
- drain at C=10 and C=50: N jobs enqueued untimed, then one in-process worker with
  concurrency C, timed from just before the worker is created until all N are done;
- pickup latency: a worker (C=10) in one process, a producer in another enqueueing
  at a fixed rate for S seconds with ``ts = perf_counter()`` in the job's args; the
  job body records ``perf_counter() - ts``;
- Redis memory: ``used_memory`` after M jobs were enqueued and processed under each
  library's default retention;
- Redis memory per waiting job: ``used_memory`` before and after W jobs, each with a
  400-character string argument, were bulk-added (and left waiting).

Medians over R repeats are shown per library, then conveyor's ratio to each peer.
Peers run from their own virtualenvs (``--venvs``), because their redis-py pins
conflict with each other and with conveyor's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
NODE_RUNNER = ROOT / "bench" / "node" / "bullmq_runner.cjs"

# Column order. arq-50ms is arq with poll_delay=0.05; it shares arq's virtualenv.
LIBRARIES = ["conveyor", "arq", "arq-50ms", "saq", "rq", "taskiq", "bullmq-py", "bullmq-node"]
VENV_OF = {"arq-50ms": "arq"}
DISTRIBUTIONS = {  # what to print versions of, per virtualenv
    "conveyor": ["conveyor", "redis", "hiredis", "msgspec"],
    "arq": ["arq", "redis", "hiredis"],
    "saq": ["saq", "redis", "hiredis"],
    "rq": ["rq", "redis", "hiredis"],
    "taskiq": ["taskiq", "taskiq-redis", "redis", "hiredis"],
    "bullmq-py": ["bullmq", "redis", "hiredis"],
}
# Libraries with a batch enqueue call, so the waiting-memory row can bulk-add.
WAITING_LIBS = ["conveyor", "bullmq-py", "bullmq-node"]
# Libraries whose memory run is skipped by default, and why.
MEMORY_SKIP = {"arq": "same keys as arq-50ms (poll_delay does not change retention)"}

ENQUEUE_ONE, ENQUEUE_BULK, LATENCY_P50, LATENCY_P99 = "one", "bulk", "p50", "p99"


def drain_row(c: int) -> str:
    return f"drain{c}"


class BenchError(RuntimeError):
    """A child failed its checks, timed out or printed no result."""


@dataclass(frozen=True)
class Options:
    url: str
    libs: list[str]
    jobs: int
    concurrency: list[int]
    latency_concurrency: int
    rate: float
    seconds: float
    repeat: int
    memory_jobs: int
    memory_libs: list[str]
    memory_concurrency: int
    waiting_jobs: int
    waiting_libs: list[str]
    venvs: Path
    node_modules: Path
    timeout: float


@dataclass
class Results:
    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (lib, row)
    na: dict[tuple[str, str], str] = field(default_factory=dict)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    latency_rates: dict[str, list[float]] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    waiting: dict[str, dict[str, Any]] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)  # duplicates, leftovers

    def check(self, lib: str, what: str, out: dict[str, Any]) -> str:
        """Record jobs that ran twice or stayed unfinished; returns a progress suffix."""
        notes = []
        if out.get("duplicates"):
            notes.append(f"{out['duplicates']} job(s) ran twice")
        if out.get("unfinished"):
            notes.append(f"{out['unfinished']} job(s) still counted unfinished afterwards")
        if notes:
            self.anomalies.append(f"{lib} {what}: " + ", ".join(notes))
        return f" [{'; '.join(notes)}]" if notes else ""

    def add(self, lib: str, row: str, value: float) -> None:
        self.values.setdefault((lib, row), []).append(value)

    def median(self, lib: str, row: str) -> float | None:
        values = self.values.get((lib, row))
        return statistics.median(values) if values else None


# -- a minimal RESP client (the orchestrator needs no redis package) ------------------


class Resp:
    """FLUSHALL, INFO and DBSIZE over one socket."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 6379
        self.db = int(parts.path.lstrip("/") or 0)
        if not self.host.startswith("127.") and self.host not in ("localhost", "::1"):
            raise SystemExit(f"refusing a non-loopback Redis host: {self.host}")

    def command(self, *args: str) -> Any:
        with socket.create_connection((self.host, self.port), timeout=30) as sock:
            stream = sock.makefile("rb")
            if self.db:
                sock.sendall(encode("SELECT", str(self.db)))
                read_reply(stream)
            sock.sendall(encode(*args))
            return read_reply(stream)

    def flushall(self) -> None:
        self.command("FLUSHALL")

    def info(self, section: str) -> dict[str, str]:
        text = self.command("INFO", section).decode()
        pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
        return {key: value for key, value in pairs}

    def dbsize(self) -> int:
        return int(self.command("DBSIZE"))

    def config(self, name: str) -> str:
        reply = self.command("CONFIG", "GET", name)
        return reply[1].decode() if len(reply) > 1 else "?"


def encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_reply(stream: Any) -> Any:
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise BenchError(f"redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2]
    if kind == b"*":
        return [read_reply(stream) for _ in range(int(rest))]
    raise BenchError(f"unexpected reply {line!r}")


# -- children ------------------------------------------------------------------------


def child_command(opts: Options, lib: str, action: str, *extra: str) -> list[str]:
    args = [action, "--url", opts.url, *extra]
    if lib == "bullmq-node":
        return ["node", str(NODE_RUNNER), *args]
    python = sys.executable if lib == "conveyor" else str(venv_python(opts, lib))
    return [python, "-m", "bench.redis_peers_runners", lib, *args]


def venv_python(opts: Options, lib: str) -> Path:
    return opts.venvs / VENV_OF.get(lib, lib) / "bin" / "python"


def child_env(opts: Options) -> dict[str, str]:
    env = dict(os.environ, NODE_PATH=str(opts.node_modules), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)  # children import bench.* from ROOT (their cwd)
    return env


def parse_result(lib: str, action: str, stdout: str, stderr: str, code: int | None) -> Any:
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = " | ".join(stderr.strip().splitlines()[-3:])
    raise BenchError(f"{lib} {action}: exit code {code}, no result. {tail}")


def run_child(opts: Options, lib: str, action: str, *extra: str, timeout: float) -> Any:
    cmd = child_command(opts, lib, action, *extra)
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, env=child_env(opts), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{lib} {action}: killed after {timeout:.0f}s") from exc
    return parse_result(lib, action, done.stdout, done.stderr, done.returncode)


class Background:
    """A child whose stdout is read on a thread, so READY can be waited for."""

    def __init__(self, opts: Options, lib: str, action: str, *extra: str) -> None:
        self.lib, self.action = lib, action
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by kill())
        self.proc = subprocess.Popen(
            child_command(opts, lib, action, *extra),
            cwd=ROOT,
            env=child_env(opts),
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("READY"):
                self.ready.set()
        self.ready.set()  # also on exit, so a waiter never hangs

    def result(self, timeout: float) -> Any:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError(f"{self.lib} {self.action}: killed after {timeout:.0f}s") from None
        self.reader.join(5)
        self.stderr.seek(0)
        return parse_result(self.lib, self.action, "\n".join(self.lines), self.stderr.read(), code)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


# -- measurements ----------------------------------------------------------------------


def measure(opts: Options, results: Results, redis: Resp, lib: str, row: str) -> str:
    """One measurement of one library; returns a short progress note."""
    n = opts.jobs
    redis.flushall()
    t = opts.timeout
    if row == ENQUEUE_ONE:
        out = run_child(opts, lib, "enqueue-one", "--jobs", str(n), timeout=t)
        results.add(lib, row, n / out["seconds"])
        return f"{n / out['seconds']:,.0f} jobs/s"
    if row == ENQUEUE_BULK:
        out = run_child(opts, lib, "enqueue-bulk", "--jobs", str(n), timeout=t)
        if "na" in out:
            results.na[(lib, row)] = out["na"]
            return "n/a"
        results.add(lib, row, n / out["seconds"])
        return f"{n / out['seconds']:,.0f} jobs/s"
    if row.startswith("drain"):
        c = row[len("drain") :]
        out = run_child(opts, lib, "drain", "--jobs", str(n), "--concurrency", c, timeout=t)
        results.add(lib, row, n / out["seconds"])
        return f"{n / out['seconds']:,.0f} jobs/s" + results.check(lib, row, out)
    if row == "latency":
        served, rate = latency(opts, lib)
        p50, p99 = served["latency"]["p50"], served["latency"]["p99"]
        results.add(lib, LATENCY_P50, p50 * 1000)
        results.add(lib, LATENCY_P99, p99 * 1000)
        results.latency_rates.setdefault(lib, []).append(rate)
        note = results.check(lib, row, served)
        return f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms at {rate:,.0f} jobs/s{note}"
    raise BenchError(f"unknown row {row}")


def latency(opts: Options, lib: str) -> tuple[dict[str, Any], float]:
    """Worker and producer in two processes; returns (worker's result, achieved rate)."""
    k = round(opts.rate * opts.seconds)
    wait = opts.seconds + 120
    worker = Background(
        opts, lib, "serve", "--jobs", str(k), "--concurrency", str(opts.latency_concurrency),
        "--timeout", str(wait),
    )  # fmt: skip
    try:
        if not worker.ready.wait(60) or worker.proc.poll() is not None:
            worker.result(5)  # raises with the child's error
            raise BenchError(f"{lib} serve: worker never said READY")
        time.sleep(0.5)
        produced = run_child(
            opts, lib, "produce", "--jobs", str(k), "--rate", str(opts.rate), timeout=wait
        )
        served = worker.result(wait)
    finally:
        worker.kill()
    return served, produced["rate"]


def memory(opts: Options, results: Results, redis: Resp, lib: str) -> dict[str, Any]:
    m = opts.memory_jobs
    redis.flushall()
    before = int(redis.info("memory")["used_memory"])
    out = run_child(
        opts, lib, "drain", "--jobs", str(m), "--concurrency", str(opts.memory_concurrency),
        "--timeout", str(opts.timeout * 10), timeout=opts.timeout * 10 + 60,
    )  # fmt: skip
    results.check(lib, "memory", out)
    info = redis.info("memory")
    used = int(info["used_memory"])
    return {
        "used": used,
        "delta": used - before,
        "baseline": before,
        "keys": redis.dbsize(),
        "rate": m / out["seconds"],
    }


def waiting_memory(opts: Options, redis: Resp, lib: str) -> dict[str, Any]:
    """Redis memory taken by W waiting jobs with a 400-character argument, bulk-added.

    Read after the child has exited, so its connection's buffers are not counted.
    """
    w = opts.waiting_jobs
    redis.flushall()
    before = int(redis.info("memory")["used_memory"])
    out = run_child(opts, lib, "waiting-memory", "--jobs", str(w), timeout=opts.timeout)
    if "na" in out:
        return {"na": out["na"]}
    used = int(redis.info("memory")["used_memory"])
    return {"delta": used - before, "per_job": (used - before) / w, "keys": redis.dbsize()}


def rows_of(opts: Options) -> list[str]:
    return [ENQUEUE_ONE, ENQUEUE_BULK, *(drain_row(c) for c in opts.concurrency), "latency"]


def run(opts: Options, redis: Resp) -> Results:
    results = Results()
    for r in range(opts.repeat):
        libs = opts.libs[r % len(opts.libs) :] + opts.libs[: r % len(opts.libs)]  # rotate
        for row in rows_of(opts):
            for lib in libs:
                if (lib, row) in results.errors or (lib, row) in results.na:
                    continue
                try:
                    note = measure(opts, results, redis, lib, row)
                except BenchError as exc:
                    results.errors[(lib, row)] = str(exc)
                    note = f"FAILED: {exc}"
                print(f"  repeat {r + 1}/{opts.repeat}  {row:<8} {lib:<12} {note}", flush=True)
    for lib in opts.waiting_libs:
        try:
            results.waiting[lib] = got = waiting_memory(opts, redis, lib)
            note = got.get("na") or f"{got['per_job']:,.0f} bytes per waiting job"
        except BenchError as exc:
            results.errors[(lib, "waiting-memory")] = str(exc)
            note = f"FAILED: {exc}"
        print(f"  waiting  {lib:<12} {opts.waiting_jobs:,} jobs: {note}", flush=True)
    for lib in opts.memory_libs:
        print(f"  memory   {lib:<12} {opts.memory_jobs:,} jobs ...", flush=True)
        try:
            results.memory[lib] = memory(opts, results, redis, lib)
        except BenchError as exc:
            results.errors[(lib, "memory")] = str(exc)
            print(f"  memory   {lib:<12} FAILED: {exc}", flush=True)
    redis.flushall()
    return results


# -- output ----------------------------------------------------------------------------


def print_machine(opts: Options, redis: Resp) -> None:
    server = redis.info("server")
    try:
        cpus = f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})"
    except AttributeError:
        cpus = str(os.cpu_count())
    print("machine")
    print(f"  platform  {platform.platform()} ({platform.machine()}), cpus {cpus}")
    print(f"  cpu       {cpu_model()}")
    print(f"  python    {platform.python_version()} ({sys.executable})")
    print(f"  node      {node_version()}")
    print(
        f"  redis     redis-server {server.get('redis_version')} on {opts.url}"
        f" (save '{redis.config('save')}', appendonly {redis.config('appendonly')},"
        f" {server.get('multiplexing_api')}, {server.get('arch_bits')}-bit)"
    )
    print("versions")
    for lib in opts.libs:
        if lib == "bullmq-node":
            print(f"  {lib:<12} {node_package_versions(opts)}")
        elif lib not in VENV_OF:
            print(f"  {lib:<12} {python_versions(opts, lib)}")


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def node_version() -> str:
    try:
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not found"


def node_package_versions(opts: Options) -> str:
    found = []
    for name in ("bullmq", "ioredis"):
        try:
            package = json.loads((opts.node_modules / name / "package.json").read_text())
            found.append(f"{name} {package['version']}")
        except OSError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def python_versions(opts: Options, lib: str) -> str:
    python = sys.executable if lib == "conveyor" else str(venv_python(opts, lib))
    code = (
        "import json, sys, importlib.metadata as m\n"
        "def v(d):\n"
        "    try: return m.version(d)\n"
        "    except m.PackageNotFoundError: return 'not installed'\n"
        "print(json.dumps({d: v(d) for d in sys.argv[1:]}))"
    )
    try:
        out = subprocess.run(
            [python, "-c", code, *DISTRIBUTIONS[lib]], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"no interpreter at {python}"
    return ", ".join(f"{k} {v}" for k, v in json.loads(out).items())


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def cell(results: Results, lib: str, row: str, digits: int = 0) -> str:
    if (lib, row) in results.na:
        return "n/a"
    value = results.median(lib, row)
    if value is None and (lib, row) in results.errors:
        return "FAILED"
    if value is None and row in (LATENCY_P50, LATENCY_P99) and (lib, "latency") in results.errors:
        return "FAILED"
    mark = "*" if lib == "rq" and row.startswith("drain") else ""
    return fmt(value, digits) + mark


def print_tables(opts: Options, results: Results) -> None:
    n, k = opts.jobs, round(opts.rate * opts.seconds)
    labels = {
        ENQUEUE_ONE: f"enqueue one by one, N={n:,} (jobs/s)",
        ENQUEUE_BULK: f"enqueue bulk, N={n:,} (jobs/s)",
        **{drain_row(c): f"drain N={n:,}, C={c} (jobs/s)" for c in opts.concurrency},
        LATENCY_P50: f"pickup p50, {opts.rate:g}/s, C={opts.latency_concurrency} (ms)",
        LATENCY_P99: f"pickup p99, {k:,} jobs (ms)",
    }
    rows = [ENQUEUE_ONE, ENQUEUE_BULK, *(drain_row(c) for c in opts.concurrency)]
    rows += [LATENCY_P50, LATENCY_P99]
    libs = opts.libs
    width = max(len(label) for label in labels.values()) + 1
    header = f"{'measurement':<{width}}" + "".join(f"{lib:>12}" for lib in libs)
    print(f"\nresults: median of {opts.repeat} repeat(s); jobs/s higher is better, ms lower")
    print(header)
    print("-" * len(header))
    for row in rows:
        digits = 2 if row in (LATENCY_P50, LATENCY_P99) else 0
        cells = "".join(f"{cell(results, lib, row, digits):>12}" for lib in libs)
        print(f"{labels[row]:<{width}}{cells}")
    rates = "".join(f"{fmt(med(results.latency_rates.get(lib))):>12}" for lib in libs)
    print(f"{'  (producer rate achieved, jobs/s)':<{width}}{rates}")

    peers = [lib for lib in libs if lib != "conveyor"]
    if "conveyor" in libs and peers:
        print("\nconveyor relative to each peer (>1 means conveyor is better: rate ratio for")
        print("jobs/s rows, inverse latency ratio for ms rows)")
        header = f"{'measurement':<{width}}" + "".join(f"{'vs ' + lib:>15}" for lib in peers)
        print(header)
        print("-" * len(header))
        for row in rows:
            ours = results.median("conveyor", row)
            cells = ""
            for lib in peers:
                theirs = results.median(lib, row)
                if ours is None or theirs is None or not ours or not theirs:
                    text = "-"
                elif row in (LATENCY_P50, LATENCY_P99):
                    text = f"{theirs / ours:.2f}x"
                else:
                    text = f"{ours / theirs:.2f}x"
                cells += f"{text:>15}"
            print(f"{labels[row]:<{width}}{cells}")

    print("\nper repeat:")
    for (lib, row), values in sorted(results.values.items()):
        digits = 2 if row in (LATENCY_P50, LATENCY_P99) else 0
        print(f"  {lib:<12} {row:<8} " + "  ".join(fmt(v, digits) for v in values))
    for (lib, row), note in sorted(results.na.items()):
        print(f"  n/a: {lib} {row}: {note}")
    if "rq" in libs:
        print("  * RQ: SimpleWorker runs one job at a time in the worker process; C does not")
        print("    apply, both drain rows are measured at RQ's natural concurrency of 1.")


def med(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def print_memory(opts: Options, results: Results) -> None:
    if not opts.memory_libs:
        return
    m = opts.memory_jobs
    libs = opts.memory_libs
    print(
        f"\nRedis memory after {m:,} no-op jobs were enqueued and processed (drain at"
        f" C={opts.memory_concurrency}), each library's default retention; one run each"
    )
    header = f"{'':<34}" + "".join(f"{lib:>12}" for lib in libs)
    print(header)
    print("-" * len(header))

    def line(label: str, key: str, scale: float, digits: int) -> None:
        cells = ""
        for lib in libs:
            got = results.memory.get(lib)
            text = "FAILED" if got is None else fmt(got[key] / scale, digits)
            cells += f"{text:>12}"
        print(f"{label:<34}{cells}")

    line("used_memory (MB)", "used", 1e6, 1)
    line("  over the empty server (MB)", "delta", 1e6, 1)
    line("  per job (bytes)", "delta", m, 0)
    line("keys (DBSIZE)", "keys", 1, 0)
    line("drain rate on the way (jobs/s)", "rate", 1, 0)
    base = next(iter(results.memory.values()), {}).get("baseline")
    if base is not None:
        print(f"  (used_memory of the empty server after FLUSHALL: {base / 1e6:.1f} MB)")
        print("  MB = 10^6 bytes; per job = (used_memory - empty server) / M")
    for lib, why in MEMORY_SKIP.items():
        if lib in opts.libs and lib not in libs:
            print(f"  {lib}: not run, {why}")


def print_waiting(opts: Options, results: Results) -> None:
    if not opts.waiting_libs:
        return
    w = opts.waiting_jobs
    libs = opts.waiting_libs
    print(
        f"\nRedis memory per waiting job: {w:,} jobs, each with a 400-character string"
        " argument, bulk-added (used_memory after - before, / W); one run each"
    )
    print(f"{'':<34}" + "".join(f"{lib:>12}" for lib in libs))

    def cells(key: str, digits: int) -> str:
        out = ""
        for lib in libs:
            got = results.waiting.get(lib)
            text = "FAILED" if got is None else "n/a" if "na" in got else fmt(got[key], digits)
            out += f"{text:>12}"
        return out

    print(f"{'bytes per waiting job':<34}{cells('per_job', 0)}")
    print(f"{'keys (DBSIZE)':<34}{cells('keys', 0)}")
    ours = results.waiting.get("conveyor", {}).get("per_job")
    for lib in libs:
        theirs = results.waiting.get(lib, {}).get("per_job")
        if lib != "conveyor" and ours and theirs:
            print(f"  conveyor / {lib}: {ours / theirs:.2f}x the memory (< 1 is less)")


def print_errors(results: Results) -> None:
    if results.anomalies:
        print("\nnoted (not failures): every job ran, but")
        for note in results.anomalies:
            print(f"  {note}")
    if results.errors:
        print("\nfailures:")
        for (lib, row), message in sorted(results.errors.items()):
            print(f"  {lib} {row}: {message}")


# -- arguments -------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.redis_peers",
        description="conveyor's Redis store against its peers, same redis-server, same run",
    )
    parser.add_argument("--url", required=True, help="redis://127.0.0.1:PORT/0 (loopback)")
    parser.add_argument("--libs", default=",".join(LIBRARIES), help="comma-separated columns")
    parser.add_argument("--jobs", "-n", type=int, default=20_000, help="N")
    parser.add_argument("--concurrency", default="10,50", help="drain concurrencies")
    parser.add_argument("--latency-concurrency", type=int, default=10)
    parser.add_argument("--rate", type=float, default=500.0, help="latency: jobs per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="latency: producer runs S s")
    parser.add_argument("--repeat", "-r", type=int, default=3)
    parser.add_argument("--memory-jobs", type=int, default=100_000, help="M; 0 skips memory")
    parser.add_argument("--million", action="store_true", help="memory with M = 1,000,000")
    parser.add_argument(
        "--memory-libs",
        default=None,
        help="libraries for the memory run (default: all of --libs except plain arq)",
    )
    parser.add_argument("--memory-concurrency", type=int, default=50)
    parser.add_argument(
        "--waiting-jobs", type=int, default=10_000, help="W for memory per waiting job; 0 skips"
    )
    parser.add_argument(
        "--waiting-libs",
        default=None,
        help=f"libraries for memory per waiting job (default: those of --libs in {WAITING_LIBS})",
    )
    parser.add_argument("--venvs", default=str(ROOT / "bench" / ".scratch" / "venvs"))
    parser.add_argument("--node-modules", default=str(ROOT / "bench" / ".scratch" / "node_modules"))
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="per child (memory: 10x) seconds"
    )
    ns = parser.parse_args(argv)
    libs = [lib for lib in ns.libs.split(",") if lib]
    unknown = set(libs) - set(LIBRARIES)
    if unknown:
        parser.error(f"unknown libraries {sorted(unknown)}; known: {LIBRARIES}")
    memory_jobs = 1_000_000 if ns.million else ns.memory_jobs
    if ns.memory_libs is None:
        memory_libs = [lib for lib in libs if lib not in MEMORY_SKIP]
    else:
        memory_libs = [lib for lib in ns.memory_libs.split(",") if lib]
    if not memory_jobs:
        memory_libs = []
    if ns.waiting_libs is None:
        waiting_libs = [lib for lib in libs if lib in WAITING_LIBS]
    else:
        waiting_libs = [lib for lib in ns.waiting_libs.split(",") if lib]
    if not ns.waiting_jobs:
        waiting_libs = []
    concurrency = [int(c) for c in ns.concurrency.split(",") if c]
    if min(ns.jobs, ns.repeat, ns.latency_concurrency, *concurrency) < 1 or ns.rate <= 0:
        parser.error("--jobs, --repeat, concurrencies and --rate must be positive")
    return Options(
        url=ns.url,
        libs=libs,
        jobs=ns.jobs,
        concurrency=concurrency,
        latency_concurrency=ns.latency_concurrency,
        rate=ns.rate,
        seconds=ns.seconds,
        repeat=ns.repeat,
        memory_jobs=memory_jobs,
        memory_libs=memory_libs,
        memory_concurrency=ns.memory_concurrency,
        waiting_jobs=ns.waiting_jobs,
        waiting_libs=waiting_libs,
        venvs=Path(ns.venvs),
        node_modules=Path(ns.node_modules),
        timeout=ns.timeout,
    )


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    print(f"\n{label} took {time.perf_counter() - start:,.0f} s")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    redis = Resp(opts.url)
    print_machine(opts, redis)
    print(
        f"\nN={opts.jobs:,} no-op jobs; drain C={opts.concurrency}; latency"
        f" {opts.rate:g} jobs/s for {opts.seconds:g} s at C={opts.latency_concurrency};"
        f" repeats R={opts.repeat}; memory M={opts.memory_jobs:,} for"
        f" {', '.join(opts.memory_libs) or 'none'}",
        flush=True,
    )
    with timed("the run"):
        results = run(opts, redis)
    print_tables(opts, results)
    print_waiting(opts, results)
    print_memory(opts, results)
    print_errors(results)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
