"""The flow store protocol: parents that wait for their children, and the records that cross it.

A flow is a tree of jobs. A parent is stored in ``waiting-children`` (never
claimed) with the list of its children, a count of those still pending and
its policy for a child that fails (``fail`` or ``ignore``). When a child
reaches a final state (completed, failed or cancelled, by any path: an
outcome, a stall, a cancel) its result or error is recorded on the parent,
exactly once per child; the last one makes the parent waiting, and under
``fail`` a failed or cancelled child fails the parent at once (which, for a
nested flow, is itself a child's final state and travels up).

On memory and SQLite all of that happens in the transaction that finishes
the child. On Redis a parent and its children may live on different cluster
slots, so it takes two idempotent steps (see ``redis/flows.py``): the
child's finishing script notes the result in its own queue's outbox, then
:meth:`FlowStore.deliver` (the worker, right after its outcomes are
committed) or :meth:`FlowStore.repair` (the sweep, after a crash) applies it
on the parent's slot and clears the outbox entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from conveyor.stores.base import JobState, NewJob

ChildFailurePolicy = Literal["fail", "ignore"]


class FlowJob(msgspec.Struct, gc=False):
    """One job of a flow to insert.

    ``parent`` is the (queue, id) of the job it reports to (None for the
    root); ``children`` the (queue, id) of the jobs it waits for, in order
    (empty for a leaf, which is inserted like any job).
    """

    job: NewJob
    parent: tuple[str, str] | None = None
    children: list[tuple[str, str]] = []
    policy: ChildFailurePolicy = "fail"
    keep_failed_ms: int = 0
    """How long a parent failed by a child is kept (its retention, decided above)."""


class ChildRecord(msgspec.Struct, gc=False):
    """What a parent knows of one child: ``state`` None while it has not finished.

    ``value`` is the child's result (JSON) when completed, else its error (JSON).
    """

    id: str
    queue: str
    state: JobState | None = None
    value: bytes | None = None


class AddedFlow(msgspec.Struct, gc=False):
    """What ``add_flow`` did. Nothing was written unless ``created``: the root
    existed already, or ``taken`` names a job of the flow that exists (and is
    not this flow's own, half-written by an earlier add)."""

    created: bool
    taken: str | None = None


class FlowStore(Protocol):
    """What flows need from a store."""

    async def add_flow(self, jobs: Sequence[FlowJob]) -> AddedFlow:
        """Insert a flow in one step; ``jobs[0]`` is its root."""
        ...

    async def children(self, queue: str, parent_id: str) -> list[ChildRecord] | None:
        """The children of a parent in their order, or None if it is not a flow's parent."""
        ...

    async def deliver(self, children: Sequence[tuple[str, str]]) -> int:
        """Apply the noted results of these finished children (queue, id) to their parents.

        Idempotent. A no-op on stores that report in the finishing transaction.
        Returns how many results were applied.
        """
        ...

    async def repair(self, now: int) -> int:
        """Deliver what a crash between a child's finish and its delivery left behind."""
        ...


def child_failed_error(child_id: str, queue: str, state: str, error: bytes | None) -> bytes:
    """The error recorded on a parent failed by its child under the ``fail`` policy."""
    cause = ""
    if error:
        try:
            decoded = msgspec.json.decode(error)
            cause = f": {decoded.get('type')}: {decoded.get('message')}"
        except (msgspec.DecodeError, AttributeError):
            cause = ""
    verb = "was cancelled" if state == JobState.CANCELLED else "failed"
    return msgspec.json.encode(
        {
            "type": "ChildFailedError",
            "message": f"child job {child_id} (queue {queue}) {verb}{cause}",
            "traceback": None,
        }
    )
