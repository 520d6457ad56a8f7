"""Job ids: 32 hex characters, sortable by creation time, unguessable."""

from __future__ import annotations

import os
import threading
import time

_RANDOM_LIMIT = 1 << 80


class _IdSource:
    """The last id made in this process, so that the next one sorts after it."""

    __slots__ = ("last", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = 0  # milliseconds << 80 | random part


_source = _IdSource()


def new_job_id() -> str:
    """48 bits of milliseconds then 80 random bits, as lowercase hex (32 chars).

    Within one process ids only grow: an id made in the same millisecond as the
    previous one (or after the wall clock stepped back) takes the previous id
    plus a random step of up to 40 bits, so jobs enqueued one after another
    list in that order even when a store's timestamps tie (a listing orders by
    time, then id), and the next id still cannot be guessed from the last.
    """
    entropy = int.from_bytes(os.urandom(10))
    value = (time.time_ns() // 1_000_000) << 80 | entropy
    with _source.lock:
        if value <= _source.last:
            value = _source.last + 1 + (entropy >> 40)
        _source.last = value
    return f"{value:032x}"
