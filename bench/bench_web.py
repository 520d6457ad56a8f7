"""Requests/s of one small JSON endpoint: bare FastAPI, conveyor's stack, the glued stack,
and the HTTP cost of a rate-limit check, conveyor's against slowapi's.

    .venv/bin/python -m bench.bench_web [--duration 10] [--connections 32] [--rounds 3]
        [--loop auto|asyncio|uvloop] [--http auto|h11|httptools] [--no-access-log]
        [--stacks all|service|ratelimit|NAME,NAME...]

Each stack (bench/web_apps.py) is served by one uvicorn process on a free
loopback port and loaded by ``wrk`` (one thread, ``--connections`` keep-alive
connections) for ``--duration`` seconds after a 2 s warm-up; the stacks take
turns within each round (the order rotates every round) and the median of the
rounds is reported with the ratios. Every stack writes one access-log line per
request to a file (uvicorn's access log for bare and glued; conveyor's own,
with uvicorn's off), unless ``--no-access-log``. A stack whose answer is
wrong or that returns any non-2xx response fails the run.

Goals (DESIGN, issue 11): conveyor >= 0.85 x bare and >= 1.2 x glued.

The rate-limit stacks (issue 12, bench/web_apps.py) add one GCRA policy that
every request passes: conveyor's on its memory store and on Redis, slowapi's
on memory and on Redis (a throwaway redis-server on a free loopback port,
started here). The report gives their requests/s, conveyor's over slowapi's
on each store, and what the check adds to a request (1/rps with the limit
minus 1/rps of the same stack without it: conveyor's stack for conveyor,
bare FastAPI for slowapi; a single server process is saturated, so 1/rps is
its time per request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.redis_servers import free_port, running_server

SERVICE = ("bare", "conveyor", "glued")
RATE_LIMITS = ("conveyor_gcra_memory", "conveyor_gcra_redis", "slowapi_memory", "slowapi_redis")
STACKS = SERVICE + RATE_LIMITS
GROUPS = {
    "all": STACKS,
    "service": SERVICE,
    "ratelimit": ("bare", "conveyor", *RATE_LIMITS),
}
ROOT = Path(__file__).resolve().parent.parent
GZIP = "Accept-Encoding: gzip, deflate"
"""What clients (browsers, httpx, requests) send."""
EXPECTED = {"id": 42, "name": "widget", "price": 9.99, "tags": ["a", "b"]}


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    log_lines: int


@dataclass
class Stack:
    name: str
    runs: list[Run] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return float(statistics.median(getattr(r, attribute) for r in self.runs))


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        print("bench_web: wrk is needed (Debian package wrk; scripts/test installs it)")
        return 1
    chosen = GROUPS.get(args.stacks) or tuple(args.stacks.split(","))
    unknown = set(chosen) - set(STACKS)
    if unknown:
        print(f"bench_web: unknown stacks {sorted(unknown)} (known: {', '.join(STACKS)})")
        return 1
    stacks = {name: Stack(name) for name in chosen}
    work = Path(tempfile.mkdtemp(prefix="conveyor-bench-web-"))
    print(describe(args))
    try:
        with contextlib.ExitStack() as cleanup:
            env = {}
            if any(name.endswith("_redis") for name in chosen):
                redis = cleanup.enter_context(running_server(directory=work / "redis"))
                env["BENCH_REDIS_URL"] = redis.url
            if args.in_process:
                report_in_process(asyncio.run(in_process(chosen, env)))
                return 0
            _run_rounds(args, chosen, stacks, work, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(stacks)
    return 0


def _run_rounds(
    args: argparse.Namespace,
    chosen: tuple[str, ...],
    stacks: dict[str, Stack],
    work: Path,
    env: dict[str, str],
) -> None:
    for round_no in range(args.rounds):
        shift = round_no % len(chosen)
        for name in chosen[shift:] + chosen[:shift]:
            run = measure(name, args, work / f"{name}-{round_no}.log", env)
            stacks[name].runs.append(run)
            print(
                f"round {round_no + 1} {name:<20} {run.rps:>9,.0f} req/s"
                f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
                f"  ({run.requests:,} requests, {run.log_lines:,} log lines)"
            )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    parser.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"])
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="call each stack's ASGI app directly instead (no server, no wrk): per request,"
        " the fastest of 40 interleaved batches of 200, access logs at WARNING",
    )
    parser.add_argument(
        "--stacks",
        default="all",
        help=f"all, service, ratelimit, or names from {', '.join(STACKS)} (comma-separated)",
    )
    return parser.parse_args()


def describe(args: argparse.Namespace) -> str:
    import uvicorn

    try:
        import uvloop  # noqa: F401

        has_uvloop = True
    except ImportError:
        has_uvloop = False
    try:
        import httptools  # noqa: F401

        has_httptools = True
    except ImportError:
        has_httptools = False
    return (
        f"uvicorn {uvicorn.__version__} --loop {args.loop} --http {args.http}"
        f" (uvloop {'installed' if has_uvloop else 'absent'},"
        f" httptools {'installed' if has_httptools else 'absent'});"
        f" wrk -t1 -c{args.connections} -d{args.duration}s; {args.rounds} rounds;"
        f" access log {'on' if args.access_log else 'off'}; {os.cpu_count()} CPUs"
    )


def measure(name: str, args: argparse.Namespace, log_path: Path, extra_env: dict[str, str]) -> Run:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", f"bench.web_apps:{name}", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--loop", args.loop, "--http", args.http,
        "--log-level", "info",
    ]  # fmt: skip
    if name.startswith("conveyor") or not args.access_log:
        command.append("--no-access-log")
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra_env}
    if not args.access_log:
        env["CONVEYOR_LOG_LEVEL"] = "WARNING"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            url = f"http://127.0.0.1:{port}/items/42"
            check_answer(name, url, server, log_path)
            wrk(url, args.connections, 2)
            before = count_lines(log_path)
            output = wrk(url, args.connections, args.duration)
            time.sleep(0.2)
            logged = count_lines(log_path) - before
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    return parse_wrk(output, logged)


def check_answer(name: str, url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = json.loads(response.read())
                headers = response.headers
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log_path.read_text()}") from None
            time.sleep(0.1)
    if body != EXPECTED:
        raise RuntimeError(f"{name} answered {body!r}")
    if name.startswith(("conveyor", "glued")) and "x-request-id" not in headers:
        raise RuntimeError(f"{name} sent no X-Request-ID")
    if name.startswith("conveyor_gcra") and "ratelimit" not in headers:
        raise RuntimeError(f"{name} sent no RateLimit header")
    if name.startswith("slowapi") and "x-ratelimit-limit" not in headers:
        raise RuntimeError(f"{name} sent no X-RateLimit-Limit header")


def wrk(url: str, connections: int, seconds: int) -> str:
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", GZIP, url],
        capture_output=True,
        text=True,
        check=True,
    )
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk saw errors:\n{done.stdout}")
    return done.stdout


def parse_wrk(output: str, logged: int) -> Run:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    total = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    return Run(rps, _latency(output, "50%"), _latency(output, "99%"), total, logged)


def _latency(output: str, percentile: str) -> float:
    match = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)\b", output)
    if match is None:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]
    return float(match[1]) * scale


def count_lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file)


async def in_process(chosen: tuple[str, ...], env: dict[str, str]) -> dict[str, float]:
    """Seconds per request of each stack, its ASGI app called directly: the fastest of
    interleaved batches, so a busy machine slows every stack alike and matters less."""
    os.environ.update(env)
    os.environ["CONVEYOR_LOG_LEVEL"] = "WARNING"
    from bench import web_apps

    apps = {name: getattr(web_apps, name)() for name in chosen}
    request = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/items/42", "raw_path": b"/items/42", "root_path": "",
        "query_string": b"", "headers": [(b"accept-encoding", b"gzip, deflate")],
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    best = dict.fromkeys(chosen, float("inf"))
    async with contextlib.AsyncExitStack() as lifespans:
        for app in apps.values():  # stores open, logging configured, as under a server
            await lifespans.enter_async_context(app.router.lifespan_context(app))
        for _ in range(40):
            for name, app in apps.items():
                started = time.perf_counter()
                for _ in range(200):
                    await app(dict(request), receive, send)
                best[name] = min(best[name], (time.perf_counter() - started) / 200)
    if set(statuses) != {200}:
        raise RuntimeError(f"the stacks answered {sorted(set(statuses))}")
    return best


def report_in_process(best: dict[str, float]) -> None:
    print()
    for name, seconds in best.items():
        print(f"{name:<21} {seconds * 1e6:7.1f} us a request")
    for limited, base in (
        ("conveyor_gcra_memory", "conveyor"),
        ("conveyor_gcra_redis", "conveyor"),
        ("slowapi_memory", "bare"),
        ("slowapi_redis", "bare"),
    ):
        if limited in best and base in best:
            added = (best[limited] - best[base]) * 1e6
            print(f"  {limited:<21} adds {added:6.1f} us a request (over {base})")


def report(stacks: dict[str, Stack]) -> None:
    rps = {name: stack.median("rps") for name, stack in stacks.items()}
    print()
    print("median req/s  " + "  ".join(f"{name} {value:,.0f}" for name, value in rps.items()))
    if {"bare", "conveyor", "glued"} <= set(rps):
        print(f"conveyor / bare  = {rps['conveyor'] / rps['bare']:.2f}  (goal >= 0.85)")
        print(f"conveyor / glued = {rps['conveyor'] / rps['glued']:.2f}  (goal >= 1.20)")
    for store in ("memory", "redis"):
        ours, theirs = f"conveyor_gcra_{store}", f"slowapi_{store}"
        if ours in rps and theirs in rps:
            print(f"rate limit on {store}: conveyor / slowapi = {rps[ours] / rps[theirs]:.2f}")
        for limited, base in ((ours, "conveyor"), (theirs, "bare")):
            if limited in rps and base in rps:
                added = 1e6 / rps[limited] - 1e6 / rps[base]
                print(f"  {limited:<21} adds {added:6.1f} us a request (over {base})")


if __name__ == "__main__":
    sys.exit(main())
