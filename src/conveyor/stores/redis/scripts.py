"""The Lua scripts of ``lua/``: their sources, and which files make each.

Every queue script is ``lib.lua`` (the key layout and shared helpers)
followed by its own file, or by several (``_PARTS``); a script that is not
about a queue (``_ALONE``) is its own file alone. Scripts are registered on a client
once and called by SHA (see ``connection.RedisConnection.run_script``).

A script runs its whole source on every call, so each ``local function`` of
``lib.lua`` is a closure made again each time: with all thirty of them, a call
cost about 1.8 us more than an empty script. A script therefore gets only the
helpers its own files call, directly or through one another (``_shaken``).

The scripts that insert jobs (enqueue, dedupe, schedule_fire, flow_add) all take a new
job as the same nine values, ``insert_args``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import Any

from conveyor.stores.base import NewJob
from conveyor.stores.search import job_field_keys, joined_keys

_PARTS = {"exchange": ("limits", "exchange"), "backoff": ("backoff", "release")}
"""Scripts made of several files (after lib.lua); the others are lib.lua + their own file."""
_ALONE = {"ratelimit", "history", "audit"}
"""Scripts over keys of their own, not a queue's: no lib.lua."""


def _lua(name: str) -> str:
    return resources.files("conveyor.stores.redis").joinpath(f"lua/{name}.lua").read_text()


@functools.cache
def script_source(name: str) -> str:
    """The whole source of script ``name``."""
    if name in _ALONE:
        return _lua(name)
    body = "".join(_lua(part) for part in _PARTS.get(name, (name,)))
    return _shaken(_lua("lib"), body) + body


_FUNCTION = re.compile(r"local function (\w+)\(")
_WORD = re.compile(r"\w+")


def _shaken(lib: str, body: str) -> str:
    """``lib`` without the functions ``body`` never calls, directly or through others.

    A top-level ``local function`` of ``lib`` runs to its first line that is ``end``
    alone (or is one line), with the comment lines just above it; every other line
    (the layout, ``rcall``, ``P``, the constants) is kept. A name counts as called
    wherever it appears as a word, so a helper is kept rather than missed.
    """
    kept: list[tuple[str | None, list[str]]] = []  # (function name or None, its lines)
    comments: list[str] = []
    lines = iter(lib.splitlines(keepends=True))
    for line in lines:
        if line.startswith("--") or not line.strip():
            comments.append(line)
            continue
        found = _FUNCTION.match(line)
        if found is None:
            kept.append((None, [*comments, line]))
        else:
            block = [*comments, line]
            if not line.rstrip().endswith(" end"):
                for more in lines:
                    block.append(more)
                    if more.rstrip() == "end":
                        break
            kept.append((found.group(1), block))
        comments = []
    functions = {name: "".join(block) for name, block in kept if name is not None}
    wanted: set[str] = set()
    todo = [w for w in _WORD.findall(body) if w in functions]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += [w for w in _WORD.findall(functions[name]) if w in functions]
    return "".join(
        "".join(block) for name, block in kept if name is None or name in wanted
    ) + "".join(comments)


def insert_args(job: NewJob) -> tuple[Any, ...]:
    """A new job as the scripts that insert jobs take it (``lib.lua``'s ``insert_job``):
    id, task, payload, options, priority, run_at, created_at, max_stalled and its search
    keys ("\\n"-joined index keys): nine values."""
    keys = joined_keys(job_field_keys(job.search_keys))
    return (
        job.id,
        job.task,
        job.payload,
        job.options,
        job.priority,
        job.run_at,
        job.created_at,
        job.max_stalled,
        keys,
    )
