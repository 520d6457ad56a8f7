"""Job ids: 32 hex characters, sortable by creation time, unguessable."""

from __future__ import annotations

import os
import time


def new_job_id() -> str:
    """48 bits of milliseconds then 80 random bits, as lowercase hex (32 chars)."""
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"
