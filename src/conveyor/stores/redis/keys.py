"""Key names of the Redis backend (the layout is drawn in ``lua/lib.lua``).

Every key of a queue starts with ``cv:{<queue>}:``: the hash tag puts a
queue on one cluster slot, so one script can change all of it.
"""

from __future__ import annotations

QUEUES_KEY = "cv:queues"
"""Set: every queue name this backend has seen."""
WORKERS_KEY = "cv:workers"
"""Hash: worker id -> its heartbeat (JSON with ``until`` and ``info``)."""


def queue_prefix(queue: str) -> str:
    return f"cv:{{{queue}}}:"


def meta_key(queue: str) -> str:
    """The queue's meta hash: the one key every script of the queue is given."""
    return f"cv:{{{queue}}}:meta"


def job_key(queue: str, job_id: str) -> str:
    return f"cv:{{{queue}}}:job:{job_id}"


def args_key(queue: str, job_id: str) -> str:
    """The job's payload, a string of its own (``lua/lib.lua`` says why)."""
    return f"cv:{{{queue}}}:args:{job_id}"
