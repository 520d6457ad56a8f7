"""The dedupe store protocol: enqueue under a debounce or throttle key.

A key (scoped to a queue) points to the job it last let in, until ``until``.
In one atomic step per batch, for each job:

- ``throttle``: while the key points to a job that still exists, nothing is
  inserted and that job is the answer; otherwise the job is inserted and the
  key points to it until ``until``.
- ``debounce``: while the key points to a job still pending (scheduled or
  waiting, not yet claimed), that job takes the new payload, options,
  priority and ``run_at`` (so it runs once, after the last of a burst);
  otherwise the job is inserted. Either way the key lasts until ``until``.

Times and windows are decided above (``jobs/dedupe.py``); stores only apply them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from conveyor.stores.base import NewJob

DedupeMode = Literal["debounce", "throttle"]


class Dedupe(msgspec.Struct, gc=False):
    mode: DedupeMode
    key: str
    until: int


class DedupeStore(Protocol):
    async def enqueue_deduped(
        self, jobs: Sequence[tuple[NewJob, Dedupe]]
    ) -> list[tuple[str, bool]]:
        """Per job: the id of the job its key now points to, and whether it was inserted."""
        ...
