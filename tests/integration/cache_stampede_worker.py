"""One process of the cross-process stampede test.

Usage: python -m tests.integration.cache_stampede_worker URL KEY CALLERS GO_FILE

Waits until GO_FILE exists (so that every process misses at once), then runs
CALLERS concurrent ``get_or_set`` calls for KEY and prints one JSON line:
how many times this process ran the factory, and the distinct values seen.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from conveyor import Cache


async def main(url: str, key: str, callers: int, go_file: Path) -> None:
    # A generous budget: this test is about the lock, not outages, and four processes
    # starting at once on two cores can stall a 50 ms round trip.
    cache = Cache(url, budget=5.0)
    await cache.open()
    computed = 0

    async def factory() -> str:
        nonlocal computed
        computed += 1
        await asyncio.sleep(0.3)
        return f"computed by {os.getpid()}"

    go_file.with_name(f"ready-{os.getpid()}").touch()
    while not go_file.exists():
        time.sleep(0.005)
    values = await asyncio.gather(*(cache.get_or_set(key, factory, ttl=60) for _ in range(callers)))
    await cache.close()
    print(json.dumps({"computed": computed, "values": sorted(set(values))}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
