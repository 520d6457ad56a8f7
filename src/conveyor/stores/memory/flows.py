"""Flows in memory: parents, their children and results, under the job store's lock.

The job store calls :class:`_Flows` (its ``flow_hook``) whenever a job
reaches a final state or is deleted, inside the same locked step, so a
child reports to its parent atomically with its own finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.errors import ConflictError
from conveyor.stores.base import JobEventKind, JobState, now_ms
from conveyor.stores.flows import ChildFailurePolicy, ChildRecord, FlowJob, child_failed_error
from conveyor.stores.memory.jobs import MemoryJobStore, _Job


@dataclass(slots=True)
class _Flow:
    policy: ChildFailurePolicy
    keep_failed_ms: int
    children: list[ChildRecord]
    pending: int
    index: dict[str, int] = field(default_factory=dict)


class _Flows:
    """The flows of one memory store; called by it for each finished or deleted job."""

    def __init__(self, store: MemoryJobStore) -> None:
        self.store = store
        self.flows: dict[str, _Flow] = {}
        self.parent_of: dict[str, str] = {}
        """Child id -> parent id, for children that have not reported yet."""

    def __call__(self, job: _Job, deleted: bool) -> None:
        if deleted:
            self.flows.pop(job.id, None)
            return
        parent_id = self.parent_of.pop(job.id, None)
        flow = None if parent_id is None else self.flows.get(parent_id)
        if parent_id is None or flow is None:
            return
        child = flow.children[flow.index[job.id]]
        child.state = job.state
        child.value = job.result if job.state is JobState.COMPLETED else job.error
        flow.pending -= 1
        parent = self.store._jobs.get(parent_id)
        if parent is None or parent.state is not JobState.WAITING_CHILDREN:
            return
        now = now_ms()
        if job.state is not JobState.COMPLETED and flow.policy == "fail":
            parent.error = child_failed_error(job.id, job.queue, job.state.value, job.error)
            parent.finished_at = now
            parent.expires_at = now + flow.keep_failed_ms
            self.store._place(parent, JobState.FAILED)  # reports to its own parent in turn
            self.store._emit(parent, JobEventKind.FAILED, now, parent.error)
        elif flow.pending <= 0:
            parent.run_at = now
            self.store._place(parent, JobState.WAITING)


class MemoryFlowStore:
    """A :class:`~conveyor.stores.flows.FlowStore` beside a :class:`MemoryJobStore`."""

    def __init__(self, jobs: MemoryJobStore) -> None:
        self._jobs = jobs

    def _flows(self) -> _Flows:
        hook = self._jobs.flow_hook
        if not isinstance(hook, _Flows):
            hook = _Flows(self._jobs)
            self._jobs.flow_hook = hook
        return hook

    async def add_flow(self, jobs: Sequence[FlowJob]) -> bool:
        store = self._jobs
        with store._lock:
            flows = self._flows()
            if jobs[0].job.id in store._jobs:
                return False
            taken = [f.job.id for f in jobs if f.job.id in store._jobs]
            if taken:
                raise ConflictError(f"job {taken[0]} of the flow exists already")
            now = now_ms()
            for node in jobs:
                if node.children:
                    children = [ChildRecord(child_id, queue) for queue, child_id in node.children]
                    flows.flows[node.job.id] = _Flow(
                        node.policy,
                        node.keep_failed_ms,
                        children,
                        len(children),
                        {c.id: i for i, c in enumerate(children)},
                    )
                    for child in children:
                        flows.parent_of[child.id] = node.job.id
            for node in jobs:
                store.insert_locked(node.job, now)
                if node.children:
                    store._place(store._jobs[node.job.id], JobState.WAITING_CHILDREN)
        return True

    async def children(self, queue: str, parent_id: str) -> list[ChildRecord] | None:
        with self._jobs._lock:
            flow = self._flows().flows.get(parent_id)
            if flow is None:
                return None
            return [ChildRecord(c.id, c.queue, c.state, c.value) for c in flow.children]

    async def deliver(self, children: Sequence[tuple[str, str]]) -> int:
        return 0  # children report in the step that finishes them

    async def repair(self, now: int) -> int:
        return 0
