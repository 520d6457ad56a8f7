"""Flows (``app.flows``): parents that wait for their children, chains and groups.

>>> flow = await app.flows.add(report.call(7), children=[part.call(i) for i in range(10)])
>>> await flow.wait()                       # the parent's result
>>> chain = await app.flows.chain(fetch.call(url), parse.step(), store.step(table="t"))
>>> total = await app.flows.group([count.call(f) for f in files], then=add_up.step())

A parent waits in ``waiting-children`` (never claimed) until each child has
finished, then runs like any job; ``current_job().children`` gives it every
child's outcome in the order given. A child that fails for good (after its
retries) or is cancelled fails the parent under ``on_child_failure="fail"``
(the default; the error names the child), or is recorded and skipped under
``"ignore"``. Children may live on other queues.

A chain is a nested flow built bottom-up: each step is the parent of the
one before it and gets its result as first argument. A group is a flow
whose parent (``then``) gets the list of its completed children's results.

Children's ids derive from the root's (``<root>.0``, ``<root>.0.1``...), so
adding the same flow again (same root ``job_id``) writes nothing: give the
root call a ``job_id`` to make ``add`` idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import msgspec

from conveyor import serialization
from conveyor.errors import BadInputError, ConflictError, NotFoundError
from conveyor.jobs.client import _fresh_record
from conveyor.jobs.job import Job, JobError
from conveyor.jobs.options import Call, FlowInput, FlowRole, Step
from conveyor.jobs.tracing import capture_context
from conveyor.stores.base import ClaimedJob, JobState, NewJob
from conveyor.stores.flows import (
    ChildFailurePolicy,
    ChildRecord,
    FlowJob,
    FlowStore,
)

if TYPE_CHECKING:
    from conveyor.jobs.runtime import Runtime

R = TypeVar("R")
R1 = TypeVar("R1")
R2 = TypeVar("R2")
R3 = TypeVar("R3")
R4 = TypeVar("R4")

MAX_CHILDREN = 100_000
"""Most children one parent may have (a flow is written in one store step)."""
POLICIES = ("fail", "ignore")
_NEVER_MS = 100 * 365 * 86_400_000
_error_decoder = msgspec.json.Decoder(JobError)


@dataclass(frozen=True, slots=True)
class ChildResult:
    """One child's outcome, as its parent sees it (``current_job().children``)."""

    job_id: str
    queue: str
    state: JobState | None
    """completed, failed or cancelled; None while it has not finished."""
    result: Any = None
    """Its return value when completed."""
    error: JobError | None = None
    """Why it failed or was cancelled."""

    @property
    def ok(self) -> bool:
        return self.state is JobState.COMPLETED


class Flow(Generic[R]):
    """A flow as added: its root job (the parent that runs last) and its direct children."""

    __slots__ = ("_client", "child_ids", "created", "job")

    def __init__(
        self, client: FlowClient, job: Job[R], child_ids: list[str], created: bool
    ) -> None:
        self._client = client
        self.job = job
        """The root: its result is the flow's result."""
        self.child_ids = child_ids
        """The root's direct children, in order."""
        self.created = created
        """False when a flow with this root id existed: nothing was written."""

    def __repr__(self) -> str:
        return f"<Flow {self.id} {self.job.task} children={len(self.child_ids)}>"

    @property
    def id(self) -> str:
        return self.job.id

    async def wait(self, timeout: float | None = None) -> R:
        """The root's result once it finished (``JobFailedError`` if it failed)."""
        return await self.job.wait(timeout)

    async def children(self) -> list[ChildResult]:
        """The root's children's outcomes so far, in order."""
        return await self._client.children(self.job)


@dataclass(slots=True)
class _Node:
    call: Call[Any] | Step[Any]
    receives: FlowInput | None = None
    policy: ChildFailurePolicy = "fail"
    children: list[_Node] = field(default_factory=list)


class FlowClient:
    """Adds and reads flows (``app.flows``) on the app's store."""

    def __init__(self, app: Runtime) -> None:
        self._app = app
        self.store: FlowStore = app.backend.flows

    async def add(
        self,
        parent: Call[R],
        children: Sequence[Call[Any]],
        *,
        on_child_failure: ChildFailurePolicy = "fail",
    ) -> Flow[R]:
        """Add ``parent``, which runs once every child has finished; one store step.

        The parent reads its children's outcomes with ``current_job().children``
        (or ``current_job().children_results()``). ``on_child_failure``: a
        child that fails for good or is cancelled fails the parent (``"fail"``)
        or is recorded and skipped (``"ignore"``).
        """
        nodes = [_Node(_as_call(c, "a child")) for c in _sequence(children, "children")]
        return await self._add(_Node(parent, "context", _policy(on_child_failure), nodes))

    async def group(
        self,
        calls: Sequence[Call[Any]],
        *,
        then: Step[R],
        on_child_failure: ChildFailurePolicy = "fail",
    ) -> Flow[R]:
        """Run ``calls`` (on any queues), then ``then`` with the list of their results.

        The list holds the completed calls' results in the order given (under
        ``"ignore"`` a failed one is left out; ``current_job().children`` has all).
        """
        nodes = [_Node(_as_call(c, "a group member")) for c in _sequence(calls, "calls")]
        if not isinstance(then, Step):
            raise BadInputError("then must be task.step(...): it receives the group's results")
        return await self._add(_Node(then, "results", _policy(on_child_failure), nodes))

    @overload
    async def chain(self, first: Call[Any], s1: Step[R], /) -> Flow[R]: ...
    @overload
    async def chain(self, first: Call[Any], s1: Step[Any], s2: Step[R], /) -> Flow[R]: ...
    @overload
    async def chain(
        self, first: Call[Any], s1: Step[Any], s2: Step[Any], s3: Step[R], /
    ) -> Flow[R]: ...
    @overload
    async def chain(self, first: Call[Any], /, *steps: Step[Any]) -> Flow[Any]: ...

    async def chain(self, first: Call[Any], /, *steps: Step[Any]) -> Flow[Any]:
        """Run ``first``, then each step with the previous result as its first argument.

        A step that fails (after its retries) fails the rest of the chain. The
        returned flow's job is the last step.
        """
        if not steps:
            raise BadInputError("a chain needs a first call and at least one step")
        node = _Node(_as_call(first, "the first call of a chain"))
        for step in steps:
            if not isinstance(step, Step):
                raise BadInputError("every call of a chain after the first must be task.step(...)")
            node = _Node(step, "previous", "fail", [node])
        return await self._add(node)

    async def children(self, job: Job[Any] | str) -> list[ChildResult]:
        """The outcomes of a flow parent's children so far, in order."""
        parent = job if isinstance(job, Job) else await self._app.jobs.get(job)
        records = await self.store.children(parent.queue, parent.id)
        if records is None:
            raise NotFoundError(f"job {parent.id} is not a flow's parent")
        return [child_result(r) for r in records]

    # -- building and writing ----------------------------------------------------

    async def _add(self, root: _Node) -> Flow[Any]:
        now = self._app.clock.now_ms()
        flat: list[FlowJob] = []
        self._flatten(root, root.call.options.job_id, None, now, flat)
        await self._app.open()
        added = await self.store.add_flow(flat)
        if added.taken is not None:
            raise ConflictError(f"job {added.taken} of the flow exists already")
        created = added.created
        for wakeup in self._app.jobs.wakeups:
            wakeup.set()
        top = flat[0]
        if created:
            record = _fresh_record(top.job, now)
            job: Job[Any] = Job(self._app.jobs, msgspec.structs.replace(record, state=_state(top)))
        else:
            job = await self._app.jobs.get(top.job.id)
        return Flow(self, job, [child_id for _, child_id in top.children], created)

    def _flatten(
        self,
        node: _Node,
        job_id: str | None,
        parent: tuple[str, str] | None,
        now: int,
        out: list[FlowJob],
    ) -> None:
        """Build ``node`` and its descendants, parents before their children."""
        _check_node(node, is_root=parent is None)
        call = node.call
        as_call = Call(call.task, call.args, call.kwargs, call.options)
        role = FlowRole(child=parent is not None, parent=node.receives if node.children else None)
        new: NewJob = self._app.jobs.build(as_call, now, role, job_id, capture_context())
        ids = [f"{new.id}.{i}" for i in range(len(node.children))]
        queues = [c.call.options.queue or c.call.task.queue for c in node.children]
        retention = self._app.jobs.retention_for(new.queue, call.task.retention)
        keep_ms = _NEVER_MS if retention.failed_for is None else int(retention.failed_for * 1000)
        out.append(FlowJob(new, parent, list(zip(queues, ids, strict=True)), node.policy, keep_ms))
        for child, child_id in zip(node.children, ids, strict=True):
            self._flatten(child, child_id, (new.queue, new.id), now, out)


async def prepare_parent(
    store: FlowStore, job: ClaimedJob, role: FlowRole
) -> tuple[ClaimedJob, list[ChildResult]]:
    """The children's outcomes of a parent about to run, and its job with its first
    argument filled in (a chain step, a group's ``then``)."""
    children = [child_result(r) for r in await store.children(job.queue, job.id) or []]
    if role.parent == "previous":
        first: Any = children[0].result if children else None
    elif role.parent == "results":
        first = [c.result for c in children if c.ok]
    else:
        return job, children
    args, kwargs = serialization.decode_call(job.payload)
    payload = serialization.dumps([[first, *args], kwargs], what="job payload")
    return msgspec.structs.replace(job, payload=payload), children


def child_result(record: ChildRecord) -> ChildResult:
    value = record.value
    if record.state is JobState.COMPLETED:
        result = None if value is None else serialization.loads(value)
        return ChildResult(record.id, record.queue, record.state, result)
    error = None if not value else _error_decoder.decode(value)
    return ChildResult(record.id, record.queue, record.state, None, error)


def _state(node: FlowJob) -> JobState:
    return JobState.WAITING_CHILDREN if node.children else JobState.WAITING


def _policy(policy: object) -> ChildFailurePolicy:
    if policy == "fail":
        return "fail"
    if policy == "ignore":
        return "ignore"
    raise BadInputError(f"on_child_failure must be 'fail' or 'ignore', got {policy!r}")


def _sequence(calls: object, what: str) -> list[Any]:
    if isinstance(calls, str | bytes) or not isinstance(calls, Sequence):
        raise BadInputError(f"{what} must be a list of task.call(...)")
    if not 0 < len(calls) <= MAX_CHILDREN:
        raise BadInputError(f"{what} must hold 1..{MAX_CHILDREN} calls, got {len(calls)}")
    return list(calls)


def _as_call(call: object, what: str) -> Call[Any]:
    if not isinstance(call, Call):
        raise BadInputError(f"{what} must be task.call(...), got {type(call).__name__}")
    return call


def _check_node(node: _Node, *, is_root: bool) -> None:
    opts = node.call.options
    name = node.call.task.name
    if opts.debounce is not None or opts.throttle is not None:
        raise BadInputError(f"{name}: a job of a flow cannot be debounced or throttled")
    if opts.job_id is not None and not is_root:
        raise BadInputError(
            f"{name}: only a flow's root takes a job_id (its children's ids derive from it)"
        )
    if node.children and (opts.delay is not None or opts.at is not None):
        raise BadInputError(f"{name}: a flow's parent runs when its children finish; no delay")
