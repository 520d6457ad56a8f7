"""Queue limits in memory: the counters, claim logs and parked jobs a claim consults.

Active jobs are counted per queue and per (queue, task) as jobs move in and
out of the active state (``MemoryState.place`` reports every move), so a
claim reads them in O(1). A ready job of a task that is at its limit is
*parked*: taken off the ready heap into a per-task list, and pushed back
only as slots of that task free up. A claim therefore never steps over the
same blocked job twice while the task stays full.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict, deque
from collections.abc import Callable

from conveyor.stores.base import JobState
from conveyor.stores.limits import Gate, QueueLimits, open_gate

ReadyEntry = tuple[int, int, int, str, int]


class MemoryLimits:
    """Limits, counters, claim logs and parked jobs of every queue (under the store's lock)."""

    def __init__(self) -> None:
        self.limits: dict[str, QueueLimits] = {}
        self.active: Counter[str] = Counter()
        self.task_active: Counter[tuple[str, str]] = Counter()
        self.claims: dict[str, deque[tuple[int, int]]] = defaultdict(deque)
        self.parked: dict[tuple[str, str], deque[ReadyEntry]] = defaultdict(deque)
        self.wake_at: int | None = None
        """When the last claim that a rate limit or back-off stopped may try again."""

    def moved(self, queue: str, task: str, old: JobState, new: JobState) -> None:
        if old is JobState.ACTIVE:
            self.active[queue] -= 1
            self.task_active[queue, task] -= 1
        if new is JobState.ACTIVE:
            self.active[queue] += 1
            self.task_active[queue, task] += 1

    def gate(
        self,
        queue: str,
        want: int,
        now: int,
        ready: list[ReadyEntry],
        live: Callable[[ReadyEntry], bool],
    ) -> Gate:
        """What a claim of ``queue`` may take; parked jobs of tasks with free slots go back.

        ``live`` tells an entry whose job still waits from one of a job since cancelled,
        removed or moved: only live entries use up a freed slot (dead ones are dropped).
        """
        limits = self.limits.get(queue)
        if limits is None:
            return Gate(want)
        log = self.claims[queue]
        while log and log[0][0] <= now - limits.period_ms:
            log.popleft()
        gate = open_gate(
            limits,
            want,
            now,
            active=self.active[queue],
            claims_in_window=sum(n for _, n in log),
            oldest_claim=log[0][0] if log else None,
            task_active={task: self.task_active[queue, task] for task in limits.tasks},
        )
        for task, free in (gate.task_room or {}).items():
            parked = self.parked.get((queue, task))
            while parked and free > 0:
                entry = parked.popleft()
                if live(entry):
                    heapq.heappush(ready, entry)
                    free -= 1
        return gate

    def park(self, queue: str, task: str, entry: ReadyEntry) -> None:
        self.parked[queue, task].append(entry)

    def unpark_all(self, queue: str, task: str, ready: list[ReadyEntry]) -> None:
        for entry in self.parked.pop((queue, task), []):
            heapq.heappush(ready, entry)

    def record(self, queue: str, now: int, claimed: int) -> None:
        limits = self.limits.get(queue)
        if claimed and limits is not None and limits.rate is not None:
            self.claims[queue].append((now, claimed))
