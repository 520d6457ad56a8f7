"""Which queues exist. A queue is no object of its own: it is known when something names it.

Admin actions that would otherwise bring a queue into being (``conveyor queues
pause nosuchqueue``) ask :func:`require_known_queue` first, so a typo is an
error rather than a new, paused, empty queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import NotFoundError
from conveyor.stores.limits import QueueLimits

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime

_NO_LIMITS = QueueLimits()


async def known_queues(app: Runtime) -> set[str]:
    """Queues named by a task of ``app``, a job or a pause in the store, a schedule or a
    running worker. (Limits are read per queue: see :func:`require_known_queue`.)"""
    names = set(app.queue_names())
    names.update(info.name for info in await app.jobs.queues())
    names.update(await app.jobs.counts())
    names.update(schedule.queue for schedule in await app.schedules.list())
    for worker in await app.store.workers():
        names.update(worker.queues)
    return names


async def require_known_queue(app: Runtime, queue: str) -> None:
    """Raise :class:`~conveyor.errors.NotFoundError` unless ``queue`` is known
    (see :func:`known_queues`) or has limits or a back-off recorded."""
    known = await known_queues(app)
    if queue in known or await app.jobs.queue_limits(queue) != _NO_LIMITS:
        return
    listed = ", ".join(sorted(known)) or "none"
    raise NotFoundError(
        f"no queue named {queue!r}: no job, task, schedule, worker or limit names it"
        f" (known queues: {listed})"
    )
