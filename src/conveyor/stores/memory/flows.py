"""Flows in memory: parents, their children and results, under the state's lock.

:class:`MemoryFlows` is the state's flow hook: the state calls it whenever
a job reaches a final state or is deleted, inside the same locked step, so
a child reports to its parent atomically with its own finish.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.stores.base import JobState
from conveyor.stores.flows import (
    AddedFlow,
    ChildFailurePolicy,
    ChildRecord,
    FlowJob,
    child_failed_error,
)
from conveyor.stores.memory.state import MemoryState, StoredJob


@dataclass(slots=True)
class _Flow:
    policy: ChildFailurePolicy
    keep_failed_ms: int
    children: list[ChildRecord]
    pending: int
    index: dict[str, int] = field(default_factory=dict)


class MemoryFlows:
    """The flows of one memory state (its :class:`~conveyor.stores.memory.state.FlowHook`)."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state
        self.flows: dict[str, _Flow] = {}
        self.parent_of: dict[str, str] = {}
        """Child id -> parent id, for children that have not reported yet."""

    def finished(self, job: StoredJob) -> None:
        parent_id = self.parent_of.pop(job.id, None)
        flow = None if parent_id is None else self.flows.get(parent_id)
        if parent_id is None or flow is None:
            return
        child = flow.children[flow.index[job.id]]
        child.state = job.state
        child.value = job.result if job.state is JobState.COMPLETED else job.error
        flow.pending -= 1
        state = self._state
        parent = state.jobs.get(parent_id)
        if parent is None or parent.state is not JobState.WAITING_CHILDREN:
            return
        now = state.clock.now_ms()
        if job.state is not JobState.COMPLETED and flow.policy == "fail":
            error = child_failed_error(job.id, job.queue, job.state.value, job.error)
            # Reports the parent to its own parent in turn.
            state.finish(parent, JobState.FAILED, now, now + flow.keep_failed_ms, error)
        elif flow.pending <= 0:
            parent.run_at = now
            state.place(parent, JobState.WAITING)

    def deleted(self, job: StoredJob) -> None:
        self.flows.pop(job.id, None)

    def awaits_children(self, job_id: str) -> bool:
        flow = self.flows.get(job_id)
        return flow is not None and flow.pending > 0

    def reports_to_parent(self, job_id: str) -> bool:
        return job_id in self.parent_of


class MemoryFlowStore:
    """A :class:`~conveyor.stores.flows.FlowStore` over a memory state and its flows."""

    def __init__(self, state: MemoryState, flows: MemoryFlows) -> None:
        self._state = state
        self._flows = flows

    async def add_flow(self, jobs: Sequence[FlowJob]) -> AddedFlow:
        state, flows = self._state, self._flows
        with state.lock:
            if jobs[0].job.id in state.jobs:
                return AddedFlow(created=False)
            taken = [f.job.id for f in jobs if f.job.id in state.jobs]
            if taken:
                return AddedFlow(created=False, taken=taken[0])
            now = state.clock.now_ms()
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
                state.insert(node.job, now)
                if node.children:
                    state.place(state.jobs[node.job.id], JobState.WAITING_CHILDREN)
        return AddedFlow(created=True)

    async def children(self, queue: str, parent_id: str) -> list[ChildRecord] | None:
        with self._state.lock:
            flow = self._flows.flows.get(parent_id)
            if flow is None:
                return None
            return [ChildRecord(c.id, c.queue, c.state, c.value) for c in flow.children]

    async def deliver(self, children: Sequence[tuple[str, str]]) -> int:
        return 0  # children report in the step that finishes them

    async def repair(self, now: int) -> int:
        return 0
