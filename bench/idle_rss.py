"""Resident memory of an idle conveyor worker, and a clean exit on SIGTERM.

    python -m bench.idle_rss [--idle SECONDS] [--mode both|cli|script]

For each mode, a child process runs a worker for an app with one task on a
fresh SQLite file:

- ``cli``: ``python -m conveyor worker benchapp:app`` (the ``conveyor worker``
  command; skipped with a note if this checkout has no such command);
- ``script``: ``python -c "asyncio.run(app.work(handle_signals=True))"``.

The worker counts as started once its heartbeat row is in the ``workers``
table. After ``--idle`` more seconds (default 3) with no jobs, VmRSS and
VmHWM (peak RSS) are read from ``/proc/PID/status`` and the CPU time used
while idle from ``/proc/PID/stat``. Then the child gets SIGTERM and must
exit with code 0 within ``--exit-timeout`` seconds (default 5).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GOAL_MB = 60.0
START_TIMEOUT_S = 30.0

APP_MODULE = """\
from conveyor import Conveyor

app = Conveyor({url!r}, log_level="WARNING")


@app.task
async def noop() -> None:
    return None
"""

SCRIPT = "import asyncio, benchapp; asyncio.run(benchapp.app.work(handle_signals=True))"


@dataclass(frozen=True, slots=True)
class Sample:
    mode: str
    rss_kb: int
    hwm_kb: int
    idle_cpu_pct: float
    exit_code: int | None
    exit_s: float | None
    output: str

    @property
    def clean_exit(self) -> bool:
        return self.exit_code == 0


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/PID/status, e.g. VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def heartbeats(db: Path) -> int:
    """Workers registered in the store (0 while the file or the table is missing)."""
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
        try:
            return int(conn.execute("SELECT count(*) FROM workers").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def command_for(mode: str) -> list[str]:
    if mode == "cli":
        return [sys.executable, "-m", "conveyor", "worker", "benchapp:app"]
    return [sys.executable, "-c", SCRIPT]


def cli_available() -> bool:
    try:
        from conveyor.cli import cli
    except ImportError:
        return False
    return "worker" in getattr(cli, "commands", {})


def measure(mode: str, idle_s: float, exit_timeout_s: float) -> Sample:
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-rss-"))
    db = workdir / "conveyor.db"
    (workdir / "benchapp.py").write_text(APP_MODULE.format(url=f"sqlite:///{db}"))
    env = {**os.environ, "PYTHONPATH": str(workdir)}
    proc = subprocess.Popen(
        command_for(mode),
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while heartbeats(db) == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.communicate()[0]
                raise RuntimeError(f"{mode} worker did not start (exit {proc.returncode}):\n{out}")
            time.sleep(0.05)
        cpu_before, since = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(idle_s)
        rss, hwm = status_kb(proc.pid, "VmRSS"), status_kb(proc.pid, "VmHWM")
        idle_cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - since) * 100

        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            output = proc.communicate(timeout=exit_timeout_s)[0]
            exit_code: int | None = proc.returncode
            exit_s: float | None = time.monotonic() - sent
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
            exit_code, exit_s = None, None
        return Sample(mode, rss, hwm, idle_cpu, exit_code, exit_s, output.strip())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def baseline_kb() -> int:
    """VmRSS of a bare interpreter, and of one that imported conveyor, for context."""
    code = "import conveyor, pathlib; print(pathlib.Path('/proc/self/status').read_text())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise KeyError("VmRSS")


def mb(kb: int) -> str:
    return f"{kb * 1024 / 1e6:.1f} MB ({kb / 1024:.1f} MiB)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_rss", description=__doc__)
    parser.add_argument("--idle", type=float, default=3.0, help="seconds idle before reading RSS")
    parser.add_argument(
        "--exit-timeout", type=float, default=5.0, help="seconds to exit after TERM"
    )
    parser.add_argument("--mode", choices=("both", "cli", "script"), default="both")
    args = parser.parse_args(argv)
    if not Path("/proc/self/status").exists():
        print("error: this benchmark reads /proc and needs Linux", file=sys.stderr)
        return 1

    modes = ["cli", "script"] if args.mode == "both" else [args.mode]
    if "cli" in modes and not cli_available():
        print("note: no `conveyor worker` command in this checkout; measuring the script only")
        modes = [m for m in modes if m != "cli"]
        if not modes:
            return 1

    print(f"python {sys.version.split()[0]}; idle {args.idle:g} s after the first heartbeat")
    print(f"for context: a bare `import conveyor` process has VmRSS {mb(baseline_kb())}")
    ok = True
    for mode in modes:
        try:
            s = measure(mode, args.idle, args.exit_timeout)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            ok = False
            continue
        verdict = "MET" if s.rss_kb * 1024 / 1e6 <= GOAL_MB else "NOT MET"
        exit_text = (
            f"exit code {s.exit_code} after {s.exit_s:.2f} s"
            if s.exit_s is not None
            else f"did not exit within {args.exit_timeout:g} s (killed)"
        )
        print(f"\n{mode}: {' '.join(command_for(mode)[1:])}")
        print(f"  idle VmRSS  {mb(s.rss_kb)}   (goal <= {GOAL_MB:g} MB: {verdict})")
        print(f"  VmHWM       {mb(s.hwm_kb)}")
        print(f"  idle CPU    {s.idle_cpu_pct:.1f}% of one core")
        print(f"  SIGTERM     {exit_text} -> {'clean' if s.clean_exit else 'NOT clean'}")
        if s.output:
            print("  output      " + s.output.replace("\n", "\n              "))
        ok = ok and s.clean_exit and verdict == "MET"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
