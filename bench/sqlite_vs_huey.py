"""Conveyor's embedded SQLite store against Huey's ``SqliteHuey``, in the same run.

    python -m bench.sqlite_vs_huey [--jobs N] [--one-by-one M] [--concurrency C]
                                   [--low-concurrency L] [--repeat R]

Every measurement uses a fresh directory from ``tempfile.mkdtemp`` (on disk,
not tmpfs, unless ``--dir`` says otherwise) and no-op task bodies. Each
repeat runs, in alternating order between repeats:

- conveyor, bulk enqueue + drain: ``app.enqueue_many`` of N calls, then
  ``app.work(burst=True, concurrency=C)`` until it returns;
- conveyor, the same with ``sqlite_synchronous="FULL"`` (Huey's durability);
- conveyor, one-by-one enqueue: M times ``await noop.enqueue(i)``;
- Huey, enqueue + drain: N calls of ``noop(i)`` (Huey has no bulk enqueue),
  then an in-process thread consumer with C workers until the Nth task has
  executed;
- Huey, one-by-one enqueue of M tasks on a fresh file;
- both drains again at the low concurrency L (default 1: one job at a time),
  each on a fresh file with N jobs enqueued first (not timed).

The table shows the median rate of each row over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

DRAIN_TIMEOUT_S = 600.0
GOAL_RATIO = 2.0
LOW_GOAL_RATIO = 1.0
SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}

# Row keys, in table order.
BULK, ONE_BY_ONE, DRAIN, DRAIN_FULL, DRAIN_LOW = "bulk", "one", "drain", "drain_full", "drain_low"


class BenchError(RuntimeError):
    """A run did not do what it was asked to (wrong counts, timeout)."""


@dataclass(frozen=True, slots=True)
class Options:
    jobs: int
    one_by_one: int
    concurrency: int
    low_concurrency: int
    repeat: int
    directory: str | None
    profile: bool


# -- helpers -----------------------------------------------------------------------


@contextlib.contextmanager
def fresh_dir(base: str | None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def filesystem_of(path: str) -> str:
    """The mount point and filesystem type that hold ``path`` (from /proc/mounts)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                _device, mount_point, fs_type, *_ = line.split()
                inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, kind = mount_point, fs_type
    except OSError:
        return "unknown"
    return f"{kind} (mounted at {best})"


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def synchronous_name(value: int) -> str:
    return f"{SYNCHRONOUS_NAMES.get(value, '?')} ({value})"


# -- conveyor --------------------------------------------------------------------


def conveyor_app(db: Path, synchronous: str = "NORMAL") -> tuple[Any, Any]:
    from conveyor import Conveyor

    app = Conveyor(f"sqlite:///{db}", log_level="WARNING", sqlite_synchronous=synchronous)

    @app.task(name="bench.noop")
    async def noop(i: int) -> None:
        return None

    return app, noop


async def conveyor_pragma(app: Any, name: str) -> int:
    """A PRAGMA as seen by the store's own connection (on its thread)."""
    db = app.store.db
    row = await db.run(lambda: db.conn.execute(f"PRAGMA {name}").fetchone())
    return int(row[0])


async def conveyor_enqueue_and_drain(
    db: Path, n: int, concurrency: int, synchronous: str, profile: bool = False
) -> tuple[float, float, str]:
    """Seconds to enqueue ``n`` jobs in one ``enqueue_many``, and to drain them."""
    app, noop = conveyor_app(db, synchronous)
    await app.open()  # schema creation is not timed (Huey's happens in its constructor)
    pragma = synchronous_name(await conveyor_pragma(app, "synchronous"))

    start = time.perf_counter()
    await app.enqueue_many([noop.call(i) for i in range(n)])
    enqueue_s = time.perf_counter() - start

    profilers = await start_profilers(app) if profile else None
    start = time.perf_counter()
    stats = await app.work(burst=True, concurrency=concurrency)
    drain_s = time.perf_counter() - start
    if profilers is not None:
        await stop_profilers(app, profilers, n / drain_s)

    counts = await app.jobs.counts()
    await app.close()
    check_conveyor_drain(stats, counts, n, app.settings.keep_completed)
    return enqueue_s, drain_s, pragma


def check_conveyor_drain(stats: Any, counts: dict[str, Any], n: int, keep: int) -> None:
    from conveyor import JobState

    problems = []
    if stats.completed != n:
        problems.append(f"stats.completed={stats.completed}, expected {n}")
    if stats.failed or stats.retried or stats.cancelled or stats.lost or stats.released:
        problems.append(f"unexpected stats {stats}")
    queue = counts.get("default", {})
    unfinished = (JobState.WAITING, JobState.SCHEDULED, JobState.ACTIVE)
    left = {state.value: queue.get(state, 0) for state in unfinished}
    if any(left.values()):
        problems.append(f"jobs left unfinished in the store: {left}")
    if queue.get(JobState.FAILED, 0):
        problems.append(f"{queue[JobState.FAILED]} failed jobs in the store")
    # Retention keeps the newest ``keep_completed`` completed jobs per queue, trimming
    # once per keep // 10 finishes, so up to keep + keep // 10 may be held.
    kept = queue.get(JobState.COMPLETED, 0)
    if not min(n, keep) <= kept <= min(n, keep + keep // 10):
        problems.append(f"store holds {kept} completed jobs, expected about {min(n, keep)}")
    if problems:
        raise BenchError("conveyor drain: " + "; ".join(problems))


async def conveyor_one_by_one(db: Path, m: int) -> float:
    """Seconds to enqueue ``m`` jobs with one ``await noop.enqueue(i)`` each."""
    from conveyor import JobState

    app, noop = conveyor_app(db)
    await app.open()
    start = time.perf_counter()
    for i in range(m):
        await noop.enqueue(i)
    elapsed = time.perf_counter() - start
    counts = await app.jobs.counts()
    await app.close()
    waiting = counts.get("default", {}).get(JobState.WAITING, 0)
    if waiting != m:
        raise BenchError(f"conveyor one-by-one: {waiting} jobs waiting, expected {m}")
    return elapsed


async def start_profilers(app: Any) -> tuple[Any, Any]:
    from pyinstrument import Profiler

    loop_profiler = Profiler(interval=0.0005)
    db_profiler = Profiler(interval=0.0005, async_mode="disabled")
    await app.store.db.run(db_profiler.start)  # pyinstrument profiles the thread it starts in
    loop_profiler.start()
    return loop_profiler, db_profiler


async def stop_profilers(app: Any, profilers: tuple[Any, Any], rate: float) -> None:
    loop_profiler, db_profiler = profilers
    loop_profiler.stop()
    await app.store.db.run(db_profiler.stop)
    print(f"\n== profile of one conveyor drain ({rate:,.0f} jobs/s with profilers on) ==")
    for title, profiler in (("event-loop thread", loop_profiler), ("SQLite thread", db_profiler)):
        print(f"\n-- {title} --")
        print(profiler.output_text(unicode=False, color=False))


# -- huey --------------------------------------------------------------------------


@dataclass
class HueyRun:
    huey: Any
    noop: Any
    done: threading.Event
    executed: list[int]  # [completed, errors], updated under ``lock``
    lock: threading.Lock


def huey_instance(db: Path, expected: int) -> HueyRun:
    from huey import SqliteHuey
    from huey import signals as huey_signals

    huey = SqliteHuey("bench", filename=str(db))  # Huey's defaults otherwise
    run = HueyRun(huey, None, threading.Event(), [0, 0], threading.Lock())

    @huey.task(name="bench.noop")
    def noop(i: int) -> None:
        return None

    @huey.signal(huey_signals.SIGNAL_COMPLETE, huey_signals.SIGNAL_ERROR)
    def on_finished(signal_name: str, task: Any, *args: Any, **kwargs: Any) -> None:
        with run.lock:
            run.executed[0 if signal_name == huey_signals.SIGNAL_COMPLETE else 1] += 1
            if sum(run.executed) >= expected:
                run.done.set()

    run.noop = noop
    return run


def huey_pragma(huey: Any, name: str) -> int:
    with huey.storage.db() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return int(cursor.fetchone()[0])


def huey_enqueue_and_drain(db: Path, n: int, concurrency: int) -> tuple[float, float, str]:
    """Seconds to enqueue ``n`` tasks (one call each), and for C threads to run them all."""
    run = huey_instance(db, n)
    pragma = synchronous_name(huey_pragma(run.huey, "synchronous"))

    start = time.perf_counter()
    for i in range(n):
        run.noop(i)
    enqueue_s = time.perf_counter() - start
    if run.huey.pending_count() != n:
        raise BenchError(f"huey enqueue: {run.huey.pending_count()} pending, expected {n}")

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {sig: signal.getsignal(sig) for sig in handled}  # the consumer installs its own
    start = time.perf_counter()
    consumer = run.huey.create_consumer(workers=concurrency, worker_type="thread", periodic=False)
    consumer.start()
    finished = run.done.wait(DRAIN_TIMEOUT_S)
    drain_s = time.perf_counter() - start
    consumer.stop(graceful=True)
    for sig, handler in saved.items():
        signal.signal(sig, handler)

    completed, errors = run.executed
    pending = run.huey.pending_count()
    run.huey.storage.close()
    if not finished or completed != n or errors or pending:
        raise BenchError(
            f"huey drain: finished={finished} completed={completed} errors={errors}"
            f" pending={pending}, expected {n} completed"
        )
    return enqueue_s, drain_s, pragma


def huey_one_by_one(db: Path, m: int) -> float:
    run = huey_instance(db, m)
    start = time.perf_counter()
    for i in range(m):
        run.noop(i)
    elapsed = time.perf_counter() - start
    pending = run.huey.pending_count()
    run.huey.storage.close()
    if pending != m:
        raise BenchError(f"huey one-by-one: {pending} pending, expected {m}")
    return elapsed


# -- the run -----------------------------------------------------------------------


@dataclass
class Results:
    rates: dict[tuple[str, str], list[float]]  # (system, row) -> jobs/s per repeat
    notes: dict[str, str]

    def add(self, system: str, row: str, jobs: int, seconds: float) -> None:
        self.rates.setdefault((system, row), []).append(jobs / seconds)

    def median(self, system: str, row: str) -> float | None:
        values = self.rates.get((system, row))
        return statistics.median(values) if values else None


def measurements(opts: Options, results: Results) -> list[Callable[[], None]]:
    n, m, c, low = opts.jobs, opts.one_by_one, opts.concurrency, opts.low_concurrency

    def conveyor_default() -> None:
        with fresh_dir(opts.directory) as d:
            enq, drain, pragma = asyncio.run(conveyor_enqueue_and_drain(d / "c.db", n, c, "NORMAL"))
        results.add("conveyor", BULK, n, enq)
        results.add("conveyor", DRAIN, n, drain)
        results.notes["conveyor_sync"] = pragma

    def conveyor_full() -> None:
        with fresh_dir(opts.directory) as d:
            _enq, drain, pragma = asyncio.run(conveyor_enqueue_and_drain(d / "c.db", n, c, "FULL"))
        results.add("conveyor", DRAIN_FULL, n, drain)
        results.notes["conveyor_full_sync"] = pragma

    def conveyor_single() -> None:
        with fresh_dir(opts.directory) as d:
            results.add("conveyor", ONE_BY_ONE, m, asyncio.run(conveyor_one_by_one(d / "c.db", m)))

    def huey_drain() -> None:
        with fresh_dir(opts.directory) as d:
            enq, drain, pragma = huey_enqueue_and_drain(d / "huey.db", n, c)
        results.add("huey", BULK, n, enq)
        results.add("huey", DRAIN, n, drain)
        results.notes["huey_sync"] = pragma

    def huey_single() -> None:
        with fresh_dir(opts.directory) as d:
            results.add("huey", ONE_BY_ONE, m, huey_one_by_one(d / "huey.db", m))

    def conveyor_low() -> None:
        with fresh_dir(opts.directory) as d:
            _enq, drain, _ = asyncio.run(conveyor_enqueue_and_drain(d / "c.db", n, low, "NORMAL"))
        results.add("conveyor", DRAIN_LOW, n, drain)

    def huey_low() -> None:
        with fresh_dir(opts.directory) as d:
            _enq, drain, _ = huey_enqueue_and_drain(d / "huey.db", n, low)
        results.add("huey", DRAIN_LOW, n, drain)

    steps = [conveyor_default, huey_drain, conveyor_full, conveyor_single, huey_single]
    return steps + ([conveyor_low, huey_low] if low else [])


def run(opts: Options) -> Results:
    results = Results({}, {})
    steps = measurements(opts, results)
    for r in range(opts.repeat):
        order = steps if r % 2 == 0 else steps[::-1]  # alternate who runs first
        for step in order:
            gc.collect()
            step()
        print(f"  repeat {r + 1}/{opts.repeat} done", flush=True)
    return results


def print_machine(opts: Options) -> None:
    base = opts.directory or tempfile.gettempdir()
    try:
        cpus = f"{os.cpu_count()} (usable by this process: {len(os.sched_getaffinity(0))})"
    except AttributeError:
        cpus = str(os.cpu_count())
    print("machine")
    print(f"  platform   {platform.platform()} ({platform.machine()})")
    print(f"  cpus       {cpus}")
    print(f"  python     {platform.python_version()} ({sys.executable})")
    print(f"  sqlite     {sqlite3.sqlite_version}")
    print(f"  packages   conveyor {version_of('conveyor')}, huey {version_of('huey')}")
    print(f"  temp files {base} on {filesystem_of(os.path.realpath(base))}")


def print_table(opts: Options, results: Results) -> float | None:
    n, m, c = opts.jobs, opts.one_by_one, opts.concurrency
    notes = results.notes
    rows = [
        (BULK, f"enqueue, bulk (N={n:,}) [1]"),
        (ONE_BY_ONE, f"enqueue, one by one (M={m:,})"),
        (DRAIN, f"drain (N={n:,}, C={c}) [2]"),
        (DRAIN_FULL, "drain, conveyor synchronous=FULL [3]"),
    ]
    if opts.low_concurrency:
        rows.append((DRAIN_LOW, f"drain (N={n:,}, C={opts.low_concurrency}) [2]"))
    header = (
        f"{'measurement':<40} {'conveyor jobs/s':>16} {'huey jobs/s':>12} {'conveyor/huey':>14}"
    )
    print(f"\nresults: median of {opts.repeat} repeat(s), jobs per second (higher is better)")
    print(header)
    print("-" * len(header))
    for key, label in rows:
        ours = results.median("conveyor", key)
        theirs = results.median("huey", DRAIN if key == DRAIN_FULL else key)
        ratio = f"{ours / theirs:.2f}x" if ours and theirs else "-"
        print(f"{label:<40} {fmt(ours):>16} {fmt(theirs):>12} {ratio:>14}")
    conveyor_sync = notes.get("conveyor_sync")
    full_sync = notes.get("conveyor_full_sync")
    huey_sync = notes.get("huey_sync")
    print(
        "\n[1] conveyor: one app.enqueue_many of N calls (one transaction). Huey has no bulk"
        "\n    enqueue: its column is N calls of noop(i), one transaction each."
        f"\n[2] conveyor sqlite_synchronous=NORMAL (PRAGMA synchronous {conveyor_sync});"
        f"\n    huey SqliteHuey defaults (PRAGMA synchronous {huey_sync}); WAL for both."
        f"\n[3] conveyor sqlite_synchronous=FULL (PRAGMA synchronous {full_sync}) against the"
        "\n    same huey drain: both fsync the WAL at every commit."
    )
    print("\nper repeat (jobs/s):")
    for (system, key), values in sorted(results.rates.items()):
        print(f"  {system:<9} {key:<11} " + "  ".join(fmt(v) for v in values))
    return ratio_of(results, DRAIN)


def ratio_of(results: Results, row: str) -> float | None:
    ours, theirs = results.median("conveyor", row), results.median("huey", row)
    return ours / theirs if ours and theirs else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sqlite_vs_huey",
        description="Conveyor's SQLite store against Huey's SqliteHuey, same run, same machine.",
    )
    parser.add_argument("--jobs", "-n", type=int, default=20_000, help="jobs to drain (N)")
    parser.add_argument(
        "--one-by-one", "-m", type=int, default=5_000, help="jobs enqueued one by one (M)"
    )
    parser.add_argument("--concurrency", "-c", type=int, default=10, help="C, for both systems")
    parser.add_argument(
        "--low-concurrency",
        "-l",
        type=int,
        default=1,
        help="L: the drains again at this concurrency (0: not)",
    )
    parser.add_argument("--repeat", "-r", type=int, default=3, help="repeats; medians reported")
    parser.add_argument("--dir", dest="directory", help="where the temp files go (default TMPDIR)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, profile one more conveyor drain with pyinstrument",
    )
    ns = parser.parse_args(argv)
    if min(ns.jobs, ns.one_by_one, ns.concurrency, ns.repeat) < 1 or ns.low_concurrency < 0:
        parser.error("--jobs, --one-by-one, --concurrency and --repeat must be >= 1")
    return Options(
        ns.jobs,
        ns.one_by_one,
        ns.concurrency,
        ns.low_concurrency,
        ns.repeat,
        ns.directory,
        ns.profile,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    print_machine(opts)
    print(
        f"\nN={opts.jobs:,} no-op jobs, one-by-one M={opts.one_by_one:,},"
        f" concurrency C={opts.concurrency} (and L={opts.low_concurrency}),"
        f" repeats R={opts.repeat}",
        flush=True,
    )
    try:
        results = run(opts)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ratio = print_table(opts, results)
    if ratio is not None:
        met = "MET" if ratio >= GOAL_RATIO else "NOT MET"
        print(
            f"\ngoal: conveyor drain >= {GOAL_RATIO:g}x huey drain in the same run:"
            f" {ratio:.2f}x -> {met}"
        )
    low = ratio_of(results, DRAIN_LOW)
    if low is not None:
        met = "MET" if low >= LOW_GOAL_RATIO else "NOT MET"
        print(
            f"goal: conveyor drain at C={opts.low_concurrency} >= {LOW_GOAL_RATIO:g}x huey's:"
            f" {low:.2f}x -> {met}"
        )
    if opts.profile:
        with fresh_dir(opts.directory) as d:
            asyncio.run(
                conveyor_enqueue_and_drain(
                    d / "c.db", opts.jobs, opts.concurrency, "NORMAL", profile=True
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
