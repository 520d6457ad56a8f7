"""The cost of one rate-limit check: conveyor against ``limits`` and slowapi, in one run.

    python -m bench.bench_ratelimit [--redis URL] [-n CHECKS] [-r ROUNDS]

In process (no I/O): conveyor's local limiter (GCRA; its sync ``check_local`` and the
async ``check`` of a ``scope="local"`` limiter) against ``limits``' in-memory moving
window, fixed window and sliding-window counter, and slowapi's limiter core (its
``_check_request_limit`` on a real Starlette request, which is what its decorator
runs, on ``limits``' memory storage).

On Redis (``--redis``): conveyor's shared check (one Lua script) against one raw round
trip (a PING: through redis-py's client, hand-packed on a pooled connection, and
through the pipelined socket conveyor's scripts use, ``stores/redis/pipe.py``, the
floor of any call of conveyor's), ``limits``' async Redis storage (moving and fixed
window), and slowapi on Redis (``limits``' sync storage: it blocks the event loop).
For reference, the floor of any check that is one script: an EVALSHA of the smallest
GCRA script there is (GET, compare, SET PX), hand-packed on a pooled connection and
on conveyor's pipe, without conveyor's limiter around it.

Every peer checks the same workload: 1,000 keys in turn, a limit none of them reaches
(each check admits, the full path), one check in flight. Rounds interleave the peers,
so a noisy machine slows them alike; the median round is reported, in µs per check,
with its ratio to conveyor (local part) or to the raw round trip (Redis part).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

KEYS = [f"user:{n}" for n in range(1000)]
SMALLEST_GCRA = """
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = redis.call("TIME")
now = now[1] * 1000000 + now[2]
local base = math.max(tonumber(redis.call("GET", KEYS[1]) or 0), now)
local after = base + interval
if after - now <= burst * interval then
  redis.call("SET", KEYS[1], string.format("%d", after), "PX", math.ceil((after - now) / 1000))
  return 1
end
return 0
"""
LIMIT = "1000000/hour"  # never reached in a run: every check takes the admitting path


def local_peers() -> dict[str, Callable[[int], None]]:
    import limits
    from limits.storage import MemoryStorage
    from limits.strategies import (
        FixedWindowRateLimiter,
        MovingWindowRateLimiter,
        SlidingWindowCounterRateLimiter,
    )

    from conveyor import Conveyor, RatePolicy

    app = Conveyor("memory://", log_level="WARNING")
    local = app.rate_limits.limiter(RatePolicy("api", LIMIT), scope="local")
    item = limits.parse(LIMIT)

    def conveyor_local(n: int) -> None:
        check = local.check_local
        for i in range(n):
            check(KEYS[i % 1000])

    def conveyor_local_async(n: int) -> None:
        async def run() -> None:
            check = local.check
            for i in range(n):
                await check(KEYS[i % 1000])

        asyncio.run(run())

    def limits_run(strategy: Any) -> Callable[[int], None]:
        limiter = strategy(MemoryStorage())

        def run(n: int) -> None:
            hit = limiter.hit
            for i in range(n):
                hit(item, KEYS[i % 1000])

        return run

    return {
        "conveyor local (GCRA, check_local)": conveyor_local,
        "conveyor local (GCRA, await check)": conveyor_local_async,
        "limits memory moving window": limits_run(MovingWindowRateLimiter),
        "limits memory fixed window": limits_run(FixedWindowRateLimiter),
        "limits memory sliding window": limits_run(SlidingWindowCounterRateLimiter),
        "slowapi core (memory, fixed window)": slowapi_run("memory://"),
    }


def slowapi_run(storage_uri: str) -> Callable[[int], None]:
    from slowapi import Limiter
    from starlette.requests import Request

    limiter = Limiter(key_func=lambda request: request.headers["x-user"], storage_uri=storage_uri)

    async def endpoint(request: Request) -> None:
        return None

    limiter.limit(LIMIT.replace("/", " per "))(endpoint)
    requests = [
        Request(
            {
                "type": "http",
                "method": "GET",
                "path": "/api",
                "headers": [(b"x-user", key.encode())],
                "query_string": b"",
            }
        )
        for key in KEYS
    ]

    def run(n: int) -> None:
        check = limiter._check_request_limit
        for i in range(n):
            check(requests[i % 1000], endpoint, False)

    return run


async def redis_peers(url: str) -> tuple[dict[str, Callable[[int], Awaitable[None]]], Any]:
    import limits
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    from conveyor import Conveyor, RatePolicy
    from conveyor.stores.redis.connection import _pack_command

    app = Conveyor(url, log_level="WARNING")
    await app.open()
    shared = app.rate_limits.limiter(RatePolicy("api", LIMIT))
    await shared.check("warm-up")
    client = app.backend.conn.client  # type: ignore[attr-defined]
    ping = _pack_command(["PING"])
    item = limits.parse(LIMIT)

    async def conveyor_shared(n: int) -> None:
        for i in range(n):
            await shared.check(KEYS[i % 1000])

    pipe = app.backend.conn._pipe  # type: ignore[attr-defined]

    def piped(commands: list[bytes]) -> Callable[[int], Awaitable[None]]:
        async def run(n: int) -> None:
            for i in range(n):
                await pipe.request(commands[i % len(commands)])

        return run

    async def redis_py_ping(n: int) -> None:
        for _ in range(n):
            await client.ping()

    def packed(commands: list[bytes]) -> Callable[[int], Awaitable[None]]:
        async def run(n: int) -> None:
            pool = client.connection_pool
            for i in range(n):
                conn = await pool.get_connection()
                await conn.send_packed_command(commands[i % len(commands)], check_health=False)
                await conn.read_response()
                await pool.release(conn)

        return run

    smallest = await client.script_load(SMALLEST_GCRA)
    floor = [
        _pack_command(["EVALSHA", smallest, 1, f"bench:{key}", 3_600, 1_000_000_000])
        for key in KEYS
    ]

    def limits_run(strategy: Any) -> Callable[[int], Awaitable[None]]:
        # redis-py under limits too (its default is coredis); one key prefix per strategy
        storage = RedisStorage(
            "async+" + url, implementation="redispy", key_prefix=strategy.__name__
        )
        limiter = strategy(storage)

        async def run(n: int) -> None:
            for i in range(n):
                await limiter.hit(item, KEYS[i % 1000])

        return run

    slowapi_sync = slowapi_run(url)

    async def slowapi_redis(n: int) -> None:
        slowapi_sync(n)  # sync redis-py inside the loop, as slowapi does

    return {
        "raw round trip (redis-py PING)": redis_py_ping,
        "raw round trip (packed PING)": packed([ping]),
        "raw round trip (PING on the pipe)": piped([ping]),
        "conveyor shared check (GCRA, Lua)": conveyor_shared,
        "reference: smallest GCRA script": packed(floor),
        "reference: smallest GCRA script, pipe": piped(floor),
        "limits async redis moving window": limits_run(MovingWindowRateLimiter),
        "limits async redis fixed window": limits_run(FixedWindowRateLimiter),
        "slowapi core (redis, fixed window)": slowapi_redis,
    }, app


def report(title: str, rounds: dict[str, list[float]], base: str, n: int) -> None:
    print(f"\n{title} (µs per check, median of {len(rounds[base])} rounds of {n:,})")
    base_us = statistics.median(rounds[base])
    for name, samples in rounds.items():
        us = statistics.median(samples)
        print(f"  {name:<40} {us:9.2f} µs   {us / base_us:6.2f}x {base}")


def run_local(n: int, rounds: int) -> None:
    peers = local_peers()
    timings: dict[str, list[float]] = {name: [] for name in peers}
    for run in peers.values():
        run(1000)  # warm-up
    for round_ in range(rounds):
        order = list(peers.items())
        for name, run in order if round_ % 2 == 0 else reversed(order):
            started = time.perf_counter()
            run(n)
            timings[name].append((time.perf_counter() - started) / n * 1e6)
    report("In process", timings, "conveyor local (GCRA, check_local)", n)
    ours = statistics.median(timings["conveyor local (GCRA, check_local)"])
    moving = statistics.median(timings["limits memory moving window"])
    verdict = "met" if moving / ours >= 3 else "NOT met"
    print(
        f"  goal: local check >= 3x faster than limits' moving window: {moving / ours:.1f}x,",
        verdict,
    )


async def run_redis(url: str, n: int, rounds: int) -> None:
    peers, app = await redis_peers(url)
    timings: dict[str, list[float]] = {name: [] for name in peers}
    try:
        for run in peers.values():
            await run(200)  # warm-up: connections, scripts
        for round_ in range(rounds):
            order = list(peers.items())
            for name, run in order if round_ % 2 == 0 else reversed(order):
                started = time.perf_counter()
                await run(n)
                timings[name].append((time.perf_counter() - started) / n * 1e6)
    finally:
        await app.close()
    report("On Redis", timings, "raw round trip (redis-py PING)", n)
    ours = statistics.median(timings["conveyor shared check (GCRA, Lua)"])
    for raw in (
        "raw round trip (redis-py PING)",
        "raw round trip (packed PING)",
        "raw round trip (PING on the pipe)",
    ):
        ratio = ours / statistics.median(timings[raw])
        verdict = "met" if ratio <= 1.1 else "NOT met"
        print(f"  goal: shared check within 1.1x of a {raw[16:-1]}: {ratio:.2f}x, {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", metavar="URL", help="also measure on this Redis server")
    parser.add_argument("-n", type=int, default=50_000, help="checks per round (local)")
    parser.add_argument("--redis-n", type=int, default=2_000, help="checks per round (Redis)")
    parser.add_argument("-r", "--rounds", type=int, default=7)
    args = parser.parse_args()
    run_local(args.n, args.rounds)
    if args.redis:
        asyncio.run(run_redis(args.redis, args.redis_n, args.rounds))


if __name__ == "__main__":
    main()
