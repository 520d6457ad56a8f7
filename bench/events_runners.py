"""One event-bus measurement per process: conveyor or FastStream, on a given Redis.

    python -m bench.events_runners LIB SCENARIO --url URL --events N

LIB is ``conveyor`` (run from the project's .venv) or ``faststream`` (run from its
own virtualenv; this file imports only what the chosen LIB needs). SCENARIO:

- ``batch``: the producer publishes N events in batches of 500 (conveyor
  ``publish_many``; FastStream ``publish`` of 500 messages on one Redis pipeline)
  while one consumer in the same process handles them in batches of up to 500
  (conveyor ``subscribe(batch=500)``; FastStream ``StreamSub(batch=True,
  max_records=500)`` in a consumer group);
- ``single``: the same publishing, but the handler takes one event at a time
  (conveyor's plain subscription: one delivery job per event; FastStream's
  ``StreamSub`` in a consumer group, acknowledged per message).

Timed from the first publish until the handler has seen all N events. Prints one
JSON line: {"lib", "scenario", "events", "seconds", "publish_seconds"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

BATCH = 500


async def run_conveyor(url: str, scenario: str, n: int) -> tuple[float, float]:
    import msgspec

    from conveyor import Conveyor

    class Tick(msgspec.Struct):
        n: int

    app = Conveyor(url, log_level="WARNING", keep_completed=0, claim_batch=100)
    done = asyncio.Event()
    seen = 0

    if scenario == "batch":

        @app.events.subscribe(Tick, group="bench", batch=BATCH)
        async def handle_many(events: list[Tick]) -> None:
            nonlocal seen
            seen += len(events)
            if seen >= n:
                done.set()
    else:

        @app.events.subscribe(Tick, group="bench")
        async def handle_one(event: Tick) -> None:
            nonlocal seen
            seen += 1
            if seen >= n:
                done.set()

    async with app:
        worker = app.worker(concurrency=50)
        running = asyncio.create_task(worker.run())
        await app.events.declare()
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            await app.events.publish_many([Tick(i) for i in range(start, min(n, start + BATCH))])
        published = time.perf_counter()
        await done.wait()
        finished = time.perf_counter()
        worker.stop()
        await running
    return finished - started, published - started


async def run_faststream(url: str, scenario: str, n: int) -> tuple[float, float]:
    from faststream.redis import RedisBroker, StreamSub

    broker = RedisBroker(url, logger=None)  # its per-message log lines would dominate
    done = asyncio.Event()
    seen = 0

    if scenario == "batch":
        sub = StreamSub("bench", group="bench", consumer="c1", batch=True, max_records=BATCH)

        @broker.subscriber(stream=sub)
        async def handle_many(events: list[dict[str, Any]]) -> None:
            nonlocal seen
            seen += len(events)
            if seen >= n:
                done.set()
    else:

        @broker.subscriber(stream=StreamSub("bench", group="bench", consumer="c1"))
        async def handle_one(event: dict[str, Any]) -> None:
            nonlocal seen
            seen += 1
            if seen >= n:
                done.set()

    async with broker:
        await broker.start()
        await asyncio.sleep(0.2)
        client = broker._connection
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            async with client.pipeline() as pipe:
                for i in range(start, min(n, start + BATCH)):
                    await broker.publish({"n": i}, stream="bench", pipeline=pipe)
                await pipe.execute()
        published = time.perf_counter()
        await done.wait()
        finished = time.perf_counter()
    return finished - started, published - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("lib", choices=["conveyor", "faststream"])
    parser.add_argument("scenario", choices=["batch", "single"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    runner = run_conveyor if args.lib == "conveyor" else run_faststream
    seconds, publish = asyncio.run(runner(args.url, args.scenario, args.events))
    print(
        json.dumps(
            {
                "lib": args.lib,
                "scenario": args.scenario,
                "events": args.events,
                "seconds": seconds,
                "publish_seconds": publish,
            }
        )
    )


if __name__ == "__main__":
    main()
