"""conveyor's event bus against FastStream's Redis Streams subscriber, same server, same run.

    python -m bench.events_peers --url redis://127.0.0.1:PORT/0 [--events N] [--repeat R]

``scripts/bench-events`` starts a throwaway redis-server and runs this. Each
measurement is one child process (``bench.events_runners``) on a freshly
FLUSHALLed server; FastStream runs from its own virtualenv. Medians over R
repeats, then conveyor's ratio to FastStream per scenario.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "batch": "published and handled, batches of 500",
    "single": "published in batches of 500, handled one by one",
}


def python_of(lib: str, venvs: Path) -> str:
    return sys.executable if lib == "conveyor" else str(venvs / lib / "bin" / "python")


def measure(lib: str, scenario: str, url: str, events: int, venvs: Path) -> float:
    redis.Redis.from_url(url).flushall()
    options = ["--url", url, "--events", str(events)]
    proc = subprocess.run(
        [python_of(lib, venvs), "-m", "bench.events_runners", lib, scenario, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{lib} {scenario} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return events / float(result["seconds"])


def version_of(lib: str, venvs: Path) -> str:
    if lib == "conveyor":
        return f"conveyor {metadata.version('conveyor')}, redis-py {metadata.version('redis')}"
    code = "from importlib import metadata as m; print(m.version('faststream'), m.version('redis'))"
    out = subprocess.run(
        [python_of(lib, venvs), "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return f"faststream {out[0]}, redis-py {out[1]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", "-r", type=int, default=3)
    parser.add_argument("--venvs", type=Path, default=ROOT / "bench" / ".scratch" / "venvs")
    args = parser.parse_args()
    libs = ["conveyor", "faststream"]
    server = redis.Redis.from_url(args.url).info("server")["redis_version"]
    print(f"# events: N={args.events}, R={args.repeat} (medians), redis-server {server},")
    versions = "; ".join(version_of(lib, args.venvs) for lib in libs)
    print(f"# Python {platform.python_version()}, {versions}")
    print()
    print("| scenario | conveyor events/s | FastStream events/s | ratio |")
    print("|---|---:|---:|---:|")
    for scenario, title in SCENARIOS.items():
        rates = {
            lib: statistics.median(
                measure(lib, scenario, args.url, args.events, args.venvs)
                for _ in range(args.repeat)
            )
            for lib in libs
        }
        ratio = rates["conveyor"] / rates["faststream"]
        print(
            f"| {title} | {rates['conveyor']:,.0f} | {rates['faststream']:,.0f} | {ratio:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
