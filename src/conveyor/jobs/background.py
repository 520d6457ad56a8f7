"""A worker's background loops: steps that must not kill their loop, and stopping loops.

A failing store must not end renewals, the progress flush or the sweep: a
step's error is logged and the loop goes on. Loops are stopped by asking
them (an event), not by cancelling them mid-call: a cancellation that lands
inside a redis-py call can be swallowed, and a loop cancelled that way would
run on forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from conveyor.observability.logging import get_logger

log = get_logger("conveyor.worker")


async def guard(step: Callable[[], Any]) -> None:
    """Run a background step; log its failure instead of raising it."""
    try:
        await step()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        name = getattr(step, "__name__", None) or getattr(step, "func", step).__name__
        log.error("worker step failed", step=name, error=f"{type(exc).__name__}: {exc}")


async def halt(
    stop: asyncio.Event,
    loops: Sequence[asyncio.Task[None]],
    within: float,
    *also_wake: asyncio.Event,
) -> None:
    """Ask ``loops`` to stop (set ``stop``, and wake those sleeping on ``also_wake``);
    cancel those that have not ended ``within`` seconds later after all."""
    stop.set()
    for event in also_wake:
        event.set()
    try:
        async with asyncio.timeout(within):
            await asyncio.gather(*loops, return_exceptions=True)
    except TimeoutError:
        for loop in loops:
            loop.cancel()
