"""Metrics of several processes as one: prometheus_client's multiprocess mode.

``conveyor serve --workers N`` and ``conveyor worker --processes N`` point
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before their processes start
(:func:`metrics_directory`), so every process writes its counters and
histograms to files there, and whichever process answers a scrape sums them
(:func:`all_processes_text`). Counters of a process that died (a crashed
worker that was restarted) stay in their files, so totals never go back.
Gauges are taken from the answering process's registry (those that describe
the store are read from the store at scrape time, so they are the same
whichever process answers), but for the gauges named ``summed``, which count
something per live process and are summed over live processes.

Why this mode rather than one registry per process: one scrape target for N
processes, totals that survive a process's crash and restart, and the same
mechanism for both commands. What it costs: metric writes go to memory-mapped
files, and collectors that compute values at scrape time (the cache's and the
rate limits' statistics) describe the answering process only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The shared metrics directory of this process, if it runs in multiprocess mode."""
    return os.environ.get(MULTIPROCESS_ENV) or None


@contextlib.contextmanager
def metrics_directory(shared: bool = True) -> Iterator[None]:
    """A fresh multiprocess-metrics directory for the processes started inside (removed
    at exit); nothing when metrics are not ``shared``, or when a directory is set already."""
    if not shared or multiprocess_dir():
        yield
        return
    path = tempfile.mkdtemp(prefix="conveyor-metrics-")
    os.environ[MULTIPROCESS_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def all_processes_text(
    registry: CollectorRegistry, path: str, summed: frozenset[str] = frozenset()
) -> bytes:
    """``registry`` in the Prometheus text format, its counters and histograms (and the
    ``summed`` gauges) replaced by their sums over every process writing to ``path``."""
    combined = CollectorRegistry(auto_describe=False)
    combined.register(_AllProcesses(registry, path, summed))
    return generate_latest(combined)


class _AllProcesses(Collector):
    def __init__(self, registry: CollectorRegistry, path: str, summed: frozenset[str]) -> None:
        self.registry = registry
        self.summed = summed
        self.shared = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        shared = {f.name: f for f in self.shared.collect()}  # type: ignore[no-untyped-call]
        for family in self.registry.collect():
            found = shared.get(family.name)
            use_shared = found is not None and (
                family.type != "gauge" or family.name in self.summed
            )
            yield found if use_shared and found is not None else family


def forget_this_process() -> None:
    """In multiprocess mode, drop this process's live gauges (it is exiting)."""
    path = multiprocess_dir()
    if path and os.path.isdir(path):
        mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]
