"""Flows on Redis and Redis Cluster: a parent and its children may live on different slots.

Keys (``lua/lib.lua``): a parent's ``cv:{q}:flow:<id>`` hash holds its
children's order, the count still pending, its policy and, per child that
reported, ``s:<child>`` (final state) and ``v:<child>`` (result or error).

A child cannot touch its parent's slot from its own script, so reporting
takes two steps, each idempotent:

1. The script that gives the child a final state (``exchange``, ``sweep``,
   ``release``, ``admin`` cancel) also notes the result in the child
   queue's outbox (``note_flow_child``): it is committed with the finish.
2. :meth:`RedisFlowStore.deliver` (called by the worker right after its
   outcomes are committed) reads those entries, applies them on the
   parent's slot (``flow_deliver.lua``: ``HSETNX s:<child>`` counts each
   child once, so a repeated delivery changes nothing), then clears them.
   A worker that dies between the steps leaves the entry in the outbox;
   :meth:`RedisFlowStore.repair`, run by every worker's sweep, delivers
   entries older than ``REPAIR_AFTER_MS``.

Adding a flow writes each queue's jobs with one script, the root's queue
last (one ``MULTI/EXEC`` on a single server; one slot after another on a
cluster). A root that exists therefore means its flow was written whole; a
producer that died midway leaves children whose results wait in the outbox
(an entry whose parent flow does not exist is kept ``ORPHAN_MS``, tried
again at each repair after the entries due before it) until the same
``add`` is made again and writes the rest. On one server an add is one
``MULTI/EXEC``, so there an entry whose flow is missing is acknowledged at
once: its parent was removed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import msgspec

from conveyor.clock import Clock
from conveyor.stores.base import JobState
from conveyor.stores.flows import AddedFlow, ChildRecord, FlowJob, child_failed_error
from conveyor.stores.redis.connection import RedisConnection
from conveyor.stores.redis.keys import job_key, meta_key, queue_prefix
from conveyor.stores.redis.scripts import insert_args
from conveyor.stores.search import error_keys, joined_keys

REPAIR_AFTER_MS = 1_000
"""The sweep delivers outbox entries older than this (younger ones are the worker's)."""
ORPHAN_MS = 86_400_000
"""An outbox entry whose parent flow does not exist is dropped after this long."""
_CHUNK = 1_000
_LINK = msgspec.json.Decoder(tuple[str, str])
_ORDER = msgspec.json.Decoder(list[tuple[str, str]])


class _Entry(msgspec.Struct, gc=False):
    queue: str
    child: str
    state: str
    parent_queue: str
    parent: str
    value: bytes
    noted_at: int


class RedisFlowStore:
    """A :class:`~conveyor.stores.flows.FlowStore` on the Redis backend's connection."""

    def __init__(self, conn: RedisConnection, clock: Clock) -> None:
        self._conn = conn
        self._clock = clock

    # -- adding a flow ---------------------------------------------------------

    async def add_flow(self, jobs: Sequence[FlowJob]) -> AddedFlow:
        root = jobs[0]
        await self._conn.remember_queues({node.job.queue for node in jobs})
        key = job_key(root.job.queue, root.job.id)
        if await self._conn.call(self._conn.client.exists, key):
            return AddedFlow(created=False)
        taken = await self._taken(jobs[1:])
        if taken is not None:
            return AddedFlow(created=False, taken=taken)
        by_queue: dict[str, list[Any]] = defaultdict(list)
        for node in jobs[1:]:
            by_queue[node.job.queue] += _add_args(node)
        batches = [(queue, [self._clock.now_ms(), *args]) for queue, args in by_queue.items()]
        batches.append((root.job.queue, [self._clock.now_ms(), *_add_args(root)]))
        if self._conn.is_cluster:
            answers = [await self._conn.run_script("flow_add", q, args) for q, args in batches]
        else:
            answers = await self._conn.call(self._add_together, batches)
        return AddedFlow(created=bool(answers[-1][0]))

    async def _add_together(self, batches: list[tuple[str, list[Any]]]) -> list[Any]:
        pipe = self._conn.client.pipeline(transaction=True)
        script = self._conn.script("flow_add")
        for queue, args in batches:
            await script(keys=[meta_key(queue)], args=args, client=pipe)
        return list(await pipe.execute())

    async def _taken(self, nodes: Sequence[FlowJob]) -> str | None:
        """A child id already taken (a conflict), unless by this flow's half-written add.

        Such a child links to its parent and has not reported yet: it is
        unfinished, or finished with its entry still in its outbox (so the
        parent written now counts it). A finished child that reported (its
        earlier root was removed) would leave the new parent waiting forever.
        """
        calls = [(job_key(n.job.queue, n.job.id), "state", "parent") for n in nodes]
        rows = await self._conn.pipelined("hmget", calls)
        noted = [(f"{queue_prefix(n.job.queue)}flow:outbox", n.job.id) for n in nodes]
        unreported = await self._conn.pipelined("hexists", noted)
        for node, (state, parent), waiting in zip(nodes, rows, unreported, strict=True):
            if state is None:
                continue
            if parent != _link(node) or (JobState(state.decode()).is_finished and not waiting):
                return node.job.id
        return None

    # -- reading ---------------------------------------------------------------

    async def children(self, queue: str, parent_id: str) -> list[ChildRecord] | None:
        raw = await self._conn.call(
            self._conn.client.hgetall, f"{queue_prefix(queue)}flow:{parent_id}"
        )
        if not raw:
            return None
        records = []
        for child_queue, child in _ORDER.decode(raw[b"order"]):
            state = raw.get(b"s:" + child.encode())
            value = raw.get(b"v:" + child.encode()) or None
            records.append(
                ChildRecord(
                    child, child_queue, None if state is None else JobState(state.decode()), value
                )
            )
        return records

    # -- delivering children's results ---------------------------------------------

    async def deliver(self, children: Sequence[tuple[str, str]]) -> int:
        by_queue: dict[str, list[str]] = defaultdict(list)
        for queue, child in children:
            by_queue[queue].append(child)
        entries: list[_Entry] = []
        for queue, ids in by_queue.items():
            entries += await self._outbox(queue, ["take", *ids])
        return await self._apply(entries, None)

    async def repair(self, now: int) -> int:
        queues = await self._conn.all_queues()
        sizes = await self._conn.pipelined(
            "zcard", [(f"{queue_prefix(q)}flow:due",) for q in queues]
        )
        entries: list[_Entry] = []
        for queue, size in zip(queues, sizes, strict=True):
            if size:
                entries += await self._outbox(queue, ["due", now - REPAIR_AFTER_MS, _CHUNK])
        return await self._apply(entries, now)

    async def _outbox(self, queue: str, args: list[Any]) -> list[_Entry]:
        flat = await self._conn.run_script("flow_outbox", queue, args)
        entries = []
        for i in range(0, len(flat), 3):
            state, link, value = flat[i + 1].split(b"\n", 2)
            parent_queue, parent = _LINK.decode(link)
            noted_at = int(float(flat[i + 2]))
            entries.append(
                _Entry(
                    queue, flat[i].decode(), state.decode(), parent_queue, parent, value, noted_at
                )
            )
        return entries

    async def _apply(self, entries: list[_Entry], repair_at: int | None) -> int:
        """Deliver ``entries`` by parent queue, then clear them from their outboxes.

        A parent failed by its child is itself a finished child when it has a
        parent: it is delivered in the next round. The repair (``repair_at``)
        drops an entry whose flow is still missing after ``ORPHAN_MS`` and
        makes the others due again later, so the next repair reads past them.
        """
        applied = 0
        whole = 0 if self._conn.is_cluster else 1
        while entries:
            by_parent: dict[str, list[_Entry]] = defaultdict(list)
            for entry in entries:
                by_parent[entry.parent_queue].append(entry)
            done: dict[str, list[str]] = defaultdict(list)
            later: dict[str, list[str]] = defaultdict(list)
            entries = []
            for parent_queue, group in by_parent.items():
                for first in range(0, len(group), _CHUNK):
                    chunk = group[first : first + _CHUNK]
                    codes, failed = await self._conn.run_script(
                        "flow_deliver",
                        parent_queue,
                        _deliver_args(chunk, whole, self._clock.now_ms()),
                    )
                    for entry, code in zip(chunk, codes, strict=True):
                        applied += code == 1
                        if code >= 0 or (
                            repair_at is not None and entry.noted_at < repair_at - ORPHAN_MS
                        ):
                            done[entry.queue].append(entry.child)
                        elif repair_at is not None:
                            later[entry.queue].append(entry.child)
                    if failed:
                        ids = [f.decode() for f in failed]
                        entries += await self._outbox(parent_queue, ["take", *ids])
            for action, by_queue in (("ack", done), ("later", later)):
                for queue, ids in by_queue.items():
                    for first in range(0, len(ids), _CHUNK):
                        some = ids[first : first + _CHUNK]
                        at = [] if action == "ack" else [repair_at]
                        await self._conn.run_script("flow_outbox", queue, [action, *at, *some])
        return applied


def _link(node: FlowJob) -> bytes | None:
    return None if node.parent is None else msgspec.json.encode(node.parent)


def _add_args(node: FlowJob) -> list[Any]:
    """A flow's job as ``flow_add.lua`` takes it: its nine insert values, then its links."""
    children = msgspec.json.encode(node.children) if node.children else b""
    link = _link(node) or b""
    return [
        *insert_args(node.job),
        link,
        children,
        len(node.children),
        node.policy,
        node.keep_failed_ms,
    ]


def _deliver_args(entries: Sequence[_Entry], whole: int, now: int) -> list[Any]:
    args: list[Any] = [now, whole]
    for e in entries:
        error = None if e.state == JobState.COMPLETED else (e.value or None)
        args += [e.parent, e.child, e.state, e.value]
        parent_error = child_failed_error(e.child, e.queue, e.state, error)
        args += [parent_error, joined_keys(error_keys(parent_error))]
    return args
