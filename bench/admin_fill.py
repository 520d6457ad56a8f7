"""Fill a store the way a busy week of an application would, through the store's own steps.

For ``bench/bench_admin_reads.py``. Ten queues of three tasks each; one task of
each queue declares its ``customer_id`` and ``order.id`` searchable, so its
jobs carry the ``search_keys`` the client would extract (``customer_id=<n>``,
about 60 jobs per customer; ``order.id=O-<n>``, one each). Jobs are created
over the last seven days (time-ordered ids, as ``jobs/ids.py`` makes them)
and enqueued in bulk (``JobStore.enqueue``). Then, per queue, workers' steps
finish the oldest ones (``JobStore.exchange``: each call sends the outcomes of
the previous batch and claims the next): of every 45 claimed, 30 complete, 10
fail with one of five errors (type, message and a traceback, as
``jobs/outcome.py`` writes them), 3 are cancelled while running, 1 fails once
and is retried, and 1 keeps running. About half the jobs stay waiting and 5 %
are scheduled a day ahead. A week of minute history (outcomes, wait and run
buckets, rate-limit rejections by tier), an audit log and ten workers'
heartbeats complete the picture.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

from conveyor import Conveyor
from conveyor.observability.metrics import RUN_BUCKETS, WAIT_BUCKETS
from conveyor.stores.base import JobState, NewJob, Outcome, WorkerInfo
from conveyor.stores.history import HistoryRow

QUEUES = [
    "emails",
    "billing",
    "reports",
    "webhooks",
    "exports",
    "imports",
    "search-sync",
    "thumbnails",
    "sms",
    "ledger",
]
TASK_NAMES = ("deliver", "sync", "cleanup")
JOBS_PER_CUSTOMER = 60
DAY_MS = 86_400_000
BATCH = 5_000
CLAIM = 1_000

_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/tasks.py", line 88, in deliver\n'
    "    await client.send(message)\n"
    '  File "/srv/app/clients.py", line 214, in send\n'
    "    raise error\n"
)
ERRORS = [
    ("SmtpError", "mailbox full for customer {n}"),
    ("TimeoutError", "upstream api timed out after 30 seconds (attempt {n})"),
    ("ValueError", "invalid amount {n} in invoice"),
    ("ConnectionError", "connection refused by payments gateway node {n}"),
    ("KeyError", "missing field order_reference in webhook payload {n}"),
]
ERROR_WORDS = ["mailbox", "timed", "invoice", "refused", "payload", "gateway", "upstream"]


@dataclass
class Sample:
    """What the reads are asked about: values that exist in the filled store."""

    queues: list[str]
    tasks: list[str]
    ids: list[str] = field(default_factory=list)
    positions: list[tuple[int, str]] = field(default_factory=list)
    """(created_at, id) of random jobs: where deep pages start (a cursor need not be a job
    of the state listed: it is a place in the order)."""
    finished: list[str] = field(default_factory=list)
    customers: list[int] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    error_types: list[str] = field(default_factory=lambda: [t for t, _ in ERRORS])
    error_words: list[str] = field(default_factory=lambda: list(ERROR_WORDS))
    summary: str = ""


def _error(rng: random.Random, n: int) -> bytes:
    kind, message = ERRORS[n % len(ERRORS)]
    text = message.format(n=rng.randrange(10_000))
    return msgspec.json.encode(
        {"type": kind, "message": text, "traceback": f"{_TRACEBACK}{kind}: {text}\n"}
    )


def _new_jobs(
    queue: str, count: int, first: int, total: int, start: int, rng: random.Random
) -> Iterator[list[NewJob]]:
    """The jobs of ``queue``, in bulk batches, created evenly over the week."""
    span = 7 * DAY_MS
    batch: list[NewJob] = []
    for k in range(count):
        n = first + k * len(QUEUES)  # the store-wide index: created times interleave queues
        created_at = start + span * n // total
        task = TASK_NAMES[n % 3]
        keys: list[str] = []
        if task == "deliver":
            keys = [f"customer_id={n // (3 * JOBS_PER_CUSTOMER)}", f"order.id=O-{n}"]
        later = n % 20 == 7  # 5 %: scheduled a day ahead
        run_at = start + span + DAY_MS if later else created_at
        job_id = f"{created_at:012x}{rng.getrandbits(80):020x}"
        payload = msgspec.json.encode([[n // (3 * JOBS_PER_CUSTOMER)], {"order": {"id": n}}])
        name = f"{queue}.{task}"
        batch.append(NewJob(job_id, queue, name, payload, b"{}", 0, run_at, created_at, 1, keys))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def fill(app: Conveyor, total: int, seed: int) -> Sample:
    rng = random.Random(seed)
    await app.open()
    store = app.store
    now = app.clock.now_ms()
    start = now - 7 * DAY_MS
    sample = Sample(list(QUEUES), [f"{q}.{t}" for q in QUEUES for t in TASK_NAMES])
    per_queue = total // len(QUEUES)
    started = time.perf_counter()
    for first, queue in enumerate(QUEUES):
        for number, batch in enumerate(_new_jobs(queue, per_queue, first, total, start, rng)):
            await store.enqueue(batch)
            picked = rng.sample(batch, min(20, len(batch)))
            sample.ids += [j.id for j in picked]
            newer = batch[max(0, per_queue // 2 - number * BATCH) :]  # the half left waiting
            picked = rng.sample(newer, min(20, len(newer)))
            sample.positions += [(j.created_at, j.id) for j in picked]
    enqueued = time.perf_counter() - started
    customers = range(total // (3 * JOBS_PER_CUSTOMER))
    sample.customers = rng.sample(customers, min(500, len(customers)))
    sample.orders = [f"O-{n}" for n in rng.sample(range(0, total, 3), 500)]
    started = time.perf_counter()
    states = {state: 0 for state in JobState}
    for queue in QUEUES:
        await _work_queue(app, queue, int(per_queue * 0.45), rng, sample)
    worked = time.perf_counter() - started
    counts = await store.counts()
    for by_state in counts.values():
        for state, n in by_state.items():
            states[state] += n
    await _history(app, now, rng)
    await _audit_and_workers(app)
    mix = ", ".join(f"{s.value} {n:,}" for s, n in states.items() if n)
    finished = sum(states[s] for s in JobState if s.is_finished)
    sample.summary = (
        f"{sum(states.values()):,} jobs ({mix}); enqueue {total / enqueued:,.0f} jobs/s,"
        f" claims and outcomes {finished / worked:,.0f} jobs/s"
    )
    return sample


async def _work_queue(
    app: Conveyor, queue: str, claims: int, rng: random.Random, sample: Sample
) -> None:
    """Workers' steps on ``queue``: claim batches, send each batch's outcomes with the next."""
    store = app.store
    pending: list[Outcome] = []
    claimed_total = 0
    while True:
        want = CLAIM if claimed_total < claims else 0
        _, claimed = await store.exchange(pending, [queue], want, "bench-worker", 3_600_000)
        if not claimed and not pending:
            return
        claimed_total += len(claimed)
        now = app.clock.now_ms()
        pending = []
        for job in claimed:
            n = rng.randrange(45)
            if job.attempts > 1 or n < 30:
                state, error = JobState.COMPLETED, None
            elif n < 40:
                state, error = JobState.FAILED, _error(rng, n)
            elif n < 43:
                state, error = JobState.CANCELLED, None
            elif n == 43:  # fails once, runs again at once
                error = _error(rng, n)
                pending.append(
                    Outcome(job.id, job.token, queue, JobState.WAITING, now, None, error, now)
                )
                continue
            else:
                continue  # keeps running
            result = b'{"ok":true}' if state is JobState.COMPLETED else None
            expires_at = now + 30 * DAY_MS
            pending.append(
                Outcome(job.id, job.token, queue, state, now, result, error, expires_at=expires_at)
            )
            if len(sample.finished) < 2_000 and n % 7 == 0:
                sample.finished.append(job.id)


async def _history(app: Conveyor, now: int, rng: random.Random) -> None:
    """A week of minutes: outcomes per queue, a few wait and run buckets, rejections by tier."""
    minute_now = now // 60_000
    rows: list[HistoryRow] = []
    for minute in range(minute_now - 7 * 1440, minute_now + 1):
        for queue in QUEUES:
            rows.append(HistoryRow("jobs_completed", (queue,), minute, rng.randrange(50, 500)))
            rows.append(HistoryRow("jobs_failed", (queue,), minute, rng.randrange(0, 20)))
            rows.append(HistoryRow("jobs_retried", (queue,), minute, rng.randrange(0, 10)))
            for kind, edges, hit in (("job_wait", WAIT_BUCKETS, 4), ("job_run", RUN_BUCKETS, 5)):
                for edge in rng.sample(edges, hit):
                    count = rng.randrange(1, 200)
                    rows.append(HistoryRow(f"{kind}_bucket", (queue, str(edge)), minute, count))
        for tier in ("free", "pro"):
            rows.append(HistoryRow("ratelimit_rejected", (tier,), minute, rng.randrange(0, 50)))
        if len(rows) >= 20_000:
            await app.backend.history.add(rows)
            rows = []
    if rows:
        await app.backend.history.add(rows)


async def _audit_and_workers(app: Conveyor) -> None:
    for n in range(1_000):
        queue = QUEUES[n % len(QUEUES)]
        await app.audit.record(f"ops-key-{n % 3}", "jobs.clean", f"queue:{queue}", {"removed": n})
    now = app.clock.now_ms()
    for n in range(10):
        info = WorkerInfo(f"host-{n}:{os.getpid()}", f"host-{n}", n, list(QUEUES), 10, now, now)
        await app.store.heartbeat(info, 3_600_000)
