"""Job ids: 32 hex characters, sortable by creation time, unguessable."""

from __future__ import annotations

import os
import threading
import time

_RANDOM_LIMIT = 1 << 80
_ENTROPY_CHUNK = 10 * 256
"""Random bytes read at once: one getrandom call per 256 ids instead of one per id."""


class _IdSource:
    """The last id made in this process, so that the next one sorts after it, and the
    random bytes not used yet."""

    __slots__ = ("entropy", "last", "lock", "used")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = 0  # milliseconds << 80 | random part
        self.entropy = b""
        self.used = 0

    def forget_entropy(self) -> None:
        """In a forked child: bytes the parent also holds must never make an id here."""
        self.entropy, self.used = b"", 0

    def random80(self) -> int:
        """80 random bits (call under the lock)."""
        if self.used + 10 > len(self.entropy):
            self.entropy, self.used = os.urandom(_ENTROPY_CHUNK), 0
        start, self.used = self.used, self.used + 10
        return int.from_bytes(self.entropy[start : self.used])


_source = _IdSource()
os.register_at_fork(after_in_child=_source.forget_entropy)


def new_job_id() -> str:
    """48 bits of milliseconds then 80 random bits, as lowercase hex (32 chars).

    Within one process ids only grow: an id made in the same millisecond as the
    previous one (or after the wall clock stepped back) takes the previous id
    plus a random step of up to 40 bits, so jobs enqueued one after another
    list in that order even when a store's timestamps tie (a listing orders by
    time, then id), and the next id still cannot be guessed from the last.
    """
    with _source.lock:
        entropy = _source.random80()
        value = (time.time_ns() // 1_000_000) << 80 | entropy
        if value <= _source.last:
            value = _source.last + 1 + (entropy >> 40)
        _source.last = value
    return f"{value:032x}"
