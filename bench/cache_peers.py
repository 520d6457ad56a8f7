"""Cache benchmark: conveyor against cashews and aiocache, side by side in one run.

Run through scripts/bench-cache (it builds bench/.scratch/venvs/cache with the
peers and conveyor, and starts a throwaway redis-server). Prints microseconds
per operation (median of repeats) and ratios.

  local decorator hit   @cached on an async function, the value in process memory
  redis get             one key read from Redis and decoded (local tier off for
                        conveyor), sequential and 50 concurrent
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

Op = Callable[[], Awaitable[object]]


async def per_op_us(op: Op, n: int, concurrency: int = 1) -> float:
    for _ in range(min(n, 200)):
        await op()
    started = time.perf_counter()
    if concurrency == 1:
        for _ in range(n):
            await op()
    else:

        async def lane() -> None:
            for _ in range(n // concurrency):
                await op()

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return (time.perf_counter() - started) / n * 1e6


async def interleaved(
    ops: dict[str, Op], n: int, repeats: int, concurrency: int = 1
) -> dict[str, float]:
    """Median per library, the libraries taking turns within each repeat (so machine
    noise hits all of them alike)."""
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(repeats):
        for name, op in ops.items():
            samples[name].append(await per_op_us(op, n, concurrency))
    return {name: statistics.median(values) for name, values in samples.items()}


async def decorator_hits(n: int, repeats: int) -> dict[str, float]:
    from aiocache import cached as aio_cached
    from cashews import Cache as CashewsCache

    from conveyor import Cache

    conveyor_cache = Cache("memory://")

    @conveyor_cache.cached(ttl=600, key="user:{user_id}")
    async def conveyor_fn(user_id: int) -> dict[str, object]:
        return {"id": user_id, "name": "ada"}

    cashews = CashewsCache()
    cashews.setup("mem://")

    @cashews(ttl="10m", key="user:{user_id}")
    async def cashews_fn(user_id: int) -> dict[str, object]:
        return {"id": user_id, "name": "ada"}

    @aio_cached(ttl=600)
    async def aiocache_fn(user_id: int) -> dict[str, object]:
        return {"id": user_id, "name": "ada"}

    ops: dict[str, Op] = {
        "conveyor": lambda: conveyor_fn(7),
        "cashews": lambda: cashews_fn(7),
        "aiocache": lambda: aiocache_fn(7),
    }
    return await interleaved(ops, n, repeats)


async def redis_gets(url: str, n: int, repeats: int, concurrency: int) -> dict[str, float]:
    import redis.asyncio as aioredis
    from aiocache import RedisCache
    from aiocache.serializers import JsonSerializer
    from cashews import Cache as CashewsCache

    from conveyor import Cache

    value = {"id": 7, "name": "ada", "tags": ["a", "b", "c"]}
    raw = aioredis.Redis.from_url(url)
    await raw.set("raw:k", json.dumps(value))

    async def raw_get() -> object:
        found = await raw.get("raw:k")
        assert found is not None
        return json.loads(found)

    conveyor_cache = Cache(url, local_max_entries=0)
    await conveyor_cache.set("k", value, ttl=600)

    cashews = CashewsCache()
    cashews.setup(url, client_side=False)
    await cashews.set("cashews:k", value, expire=600)

    host, port = url.split("//", 1)[1].split("/")[0].split(":")
    aio = RedisCache(endpoint=host, port=int(port), serializer=JsonSerializer())
    await aio.set("aio:k", value, ttl=600)

    ops: dict[str, Op] = {
        "raw redis-py GET+decode": raw_get,
        "conveyor": lambda: conveyor_cache.get("k"),
        "cashews": lambda: cashews.get("cashews:k"),
        "aiocache": lambda: aio.get("aio:k"),
    }
    results = await interleaved(ops, n, repeats, concurrency)
    await conveyor_cache.close()
    await raw.aclose()
    await aio.close()
    return results


def show(title: str, results: dict[str, float], base: str) -> None:
    print(f"\n{title}")
    for name, us in results.items():
        print(f"  {name:<26} {us:8.2f} us   {us / results[base]:5.2f}x {base}")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("-r", "--repeats", type=int, default=5)
    args = parser.parse_args()
    hits = await decorator_hits(args.n * 5, args.repeats)
    show("local decorator hit", hits, "conveyor")
    print(f"  cashews / conveyor = {hits['cashews'] / hits['conveyor']:.1f}x")
    for concurrency in (1, 50):
        gets = await redis_gets(args.url, args.n, args.repeats, concurrency)
        show(f"redis get, concurrency {concurrency}", gets, "raw redis-py GET+decode")


if __name__ == "__main__":
    asyncio.run(main())
