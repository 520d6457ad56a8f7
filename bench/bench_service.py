"""A bounded load test of the reference service (examples/service): a mixed workload at a
fixed request rate against ``conveyor serve examples.service:app``, once with conveyor on
SQLite and once on Redis (the service's own tables are SQLite both times).

    scripts/bench-service                       # 60 s at 40 requests/s on each store
    python -m bench.bench_service --seconds 20 --rate 20 --stores sqlite

The load is open-loop: request ``i`` is due at ``start + i / rate`` whatever the answers
before it did, and its latency is measured from when it was due (a slow server shows as
latency, never as a lower rate: no coordinated omission). Each route's share is fixed
(``ROUTES``); one of them is a free-tier key asking for more than its plan allows, whose
429s are intended. Afterwards the run waits for the work the requests started and checks
it: every validation and export job completed, every A/B event counted once, every
order's ``OrderCreated`` in the audit log once.

It fails (exit 1) on any error other than the intended 429s, or any unfinished job. The
client runs on the same machine as the server, so it shares the CPU with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
from examples.billing import generate
from tests.e2e.reference_service import service_env
from tests.redis_servers import running_server
from tests.web_server import running_service

APP = "examples.service:app"
ACCOUNTS = 4
FREE_ROUTE = "GET /account (free, over its plan)"


@dataclass
class RouteStats:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, status: int, latency_ms: float) -> None:
        self.latencies_ms.append(latency_ms)
        self.statuses[status] = self.statuses.get(status, 0) + 1


@dataclass
class Account:
    headers: dict[str, str]
    publisher: str
    experiment: str


@dataclass
class Fixture:
    """What the workload uses and what it started (checked once the load stops)."""

    accounts: list[Account]
    free: dict[str, str]
    invoices: bytes
    validations: list[tuple[dict[str, str], str]] = field(default_factory=list)
    exports: list[tuple[dict[str, str], str]] = field(default_factory=list)
    orders: list[tuple[dict[str, str], int]] = field(default_factory=list)
    experiment_events: dict[str, int] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)


Call = Callable[[httpx.AsyncClient, Fixture, Account], Awaitable[httpx.Response]]


# -- the routes ----------------------------------------------------------------------------


async def get_account(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    return await client.get("/api/v1/account", headers=acct.headers)


async def get_account_free(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    return await client.get("/api/v1/account", headers=fx.free)


async def record_events(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    events = [
        {"publisherId": acct.publisher, "name": random.choice(["view", "click"]), "value": 1.0}
        for _ in range(20)
    ]
    return await client.post(
        "/api/v1/analytics/events", headers=acct.headers, json={"events": events}
    )


async def daily_series(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    url = f"/api/v1/analytics/publishers/{acct.publisher}/daily"
    return await client.get(url, headers=acct.headers)


async def track(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    events = []
    for _ in range(50):
        n = next(fx.counter)
        kind = "conversion" if n % 10 == 0 else "exposure"
        events.append({"eventId": f"e{n}", "variant": random.choice("ab"), "kind": kind})
    url = f"/api/v1/experiments/{acct.experiment}/events"
    answer = await client.post(url, headers=acct.headers, json={"events": events})
    if answer.status_code == 202:
        fx.experiment_events[acct.experiment] = fx.experiment_events.get(acct.experiment, 0) + 50
    return answer


async def results(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    return await client.get(f"/api/v1/experiments/{acct.experiment}/results", headers=acct.headers)


async def create_order(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    body = {
        "reference": f"LOAD-{next(fx.counter)}",
        "customer": "load test",
        "currency": "EUR",
        "items": [{"sku": "S-1", "quantity": 2, "unitPriceCents": 999}],
    }
    answer = await client.post("/api/v1/orders", headers=acct.headers, json=body)
    if answer.status_code == 201:
        fx.orders.append((acct.headers, answer.json()["orderId"]))
    return answer


async def list_orders(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    return await client.get("/api/v1/orders?size=20", headers=acct.headers)


async def upload(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    files = {"file": ("invoices.csv", fx.invoices, "text/csv")}
    answer = await client.post("/api/v1/validations", headers=acct.headers, files=files)
    if answer.status_code == 202:
        fx.validations.append((acct.headers, answer.json()["validationId"]))
    return answer


async def export(client: httpx.AsyncClient, fx: Fixture, acct: Account) -> httpx.Response:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    body = {"start": today, "end": today, "publisherId": acct.publisher}
    answer = await client.post("/api/v1/exports", headers=acct.headers, json=body)
    if answer.status_code == 202:
        fx.exports.append((acct.headers, answer.json()["exportId"]))
    return answer


ROUTES: dict[str, tuple[int, Call]] = {
    "GET /account": (14, get_account),
    "POST /analytics/events": (18, record_events),
    "GET /analytics/.../daily (cached)": (14, daily_series),
    "POST /experiments/{id}/events": (14, track),
    "GET /experiments/{id}/results": (8, results),
    "POST /orders": (8, create_order),
    "GET /orders": (8, list_orders),
    "POST /validations": (2, upload),
    "POST /exports": (2, export),
    FREE_ROUTE: (12, get_account_free),
}
"""Route -> (share in percent, call)."""


# -- the run -------------------------------------------------------------------------------


async def set_up(client: httpx.AsyncClient, root: Path) -> Fixture:
    accounts = []
    for n in range(ACCOUNTS):
        answer = await client.post(
            "/api/v1/accounts", json={"name": f"load {n}", "tier": "enterprise"}
        )
        headers = {"X-API-Key": answer.raise_for_status().json()["apiKey"]}
        publisher = (
            await client.post("/api/v1/publishers", headers=headers, json={"name": "site"})
        ).json()
        body = {
            "name": "load",
            "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
        }
        experiment = (await client.post("/api/v1/experiments", headers=headers, json=body)).json()
        url = f"/api/v1/experiments/{experiment['experimentId']}"
        (await client.patch(url, headers=headers, json={"status": "running"})).raise_for_status()
        accounts.append(Account(headers, publisher["publisherId"], experiment["experimentId"]))
    free = await client.post("/api/v1/accounts", json={"name": "free", "tier": "free"})
    generated = generate.generate(root / "invoices", files=1, rows=1_000, seed=3)
    invoices = next(g for g in generated if not g.corrupt).path.read_bytes()
    return Fixture(accounts, {"X-API-Key": free.raise_for_status().json()["apiKey"]}, invoices)


async def load(
    client: httpx.AsyncClient, fx: Fixture, rate: float, seconds: float, seed: int
) -> dict[str, RouteStats]:
    rng = random.Random(seed)
    names = list(ROUTES)
    shares = [ROUTES[name][0] for name in names]
    stats = {name: RouteStats() for name in names}
    start = time.perf_counter() + 0.1
    tasks = []

    async def one(name: str, due: float) -> None:
        account = rng.choice(fx.accounts)
        try:
            answer = await ROUTES[name][1](client, fx, account)
            status = answer.status_code
        except httpx.HTTPError:
            status = 0  # no answer at all
        stats[name].add(status, (time.perf_counter() - due) * 1000)

    for i in range(int(rate * seconds)):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(rng.choices(names, shares)[0], due)))
    await asyncio.gather(*tasks)
    return stats


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.5)
    return False


async def verify(client: httpx.AsyncClient, fx: Fixture, timeout: float) -> dict[str, str]:
    """Wait for the work the load started; ``what -> "done/started"``, with a verdict."""

    async def statuses(kind: str, items: list[tuple[dict[str, str], str]]) -> list[str]:
        answers = [await client.get(f"/api/v1/{kind}/{i}", headers=h) for h, i in items]
        return [a.json()["status"] for a in answers]

    async def counted() -> dict[str, int]:
        found = {}
        for acct in fx.accounts:
            body = (
                await client.get(
                    f"/api/v1/experiments/{acct.experiment}/results", headers=acct.headers
                )
            ).json()
            found[acct.experiment] = sum(
                v["exposures"] + v["conversions"] for v in body["variants"]
            )
        return found

    async def audited() -> int:
        rows = [await client.get(f"/api/v1/orders/{o}/audit", headers=h) for h, o in fx.orders]
        return sum(1 for r in rows if [e["type"] for e in r.json()] == ["OrderCreated"])

    async def job_counts() -> dict[str, int]:
        """conveyor's jobs by state over every queue (the management API, from loopback)."""
        queues = (await client.get("/admin/api/v1/queues")).raise_for_status().json()
        totals: dict[str, int] = {}
        for queue in queues:
            for state, count in queue["counts"].items():
                totals[state] = totals.get(state, 0) + count
        return totals

    async def finished() -> bool:
        pending = ("queued", "processing", "pending")
        jobs = await statuses("validations", fx.validations) + await statuses("exports", fx.exports)
        sent = {e: fx.experiment_events.get(e, 0) for e in (a.experiment for a in fx.accounts)}
        counts = await job_counts()
        unfinished = sum(counts.get(s, 0) for s in ("waiting", "active", "scheduled"))
        return not any(s in pending for s in jobs) and await counted() == sent and not unfinished

    await wait_until(finished, timeout)
    validations = await statuses("validations", fx.validations)
    exports = await statuses("exports", fx.exports)
    events = await counted()
    counts = await job_counts()
    done = counts.get("completed", 0)
    return {
        "conveyor jobs completed (none waiting, active, scheduled or failed)": (
            f"{done}/{sum(counts.values())}"
        ),
        "validations completed": f"{validations.count('completed')}/{len(validations)}",
        "exports completed": f"{exports.count('completed')}/{len(exports)}",
        "A/B events counted": f"{sum(events.values())}/{sum(fx.experiment_events.values())}",
        "orders audited once": f"{await audited()}/{len(fx.orders)}",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def errors_of(name: str, route: RouteStats) -> int:
    intended = (200, 429) if name == FREE_ROUTE else ()
    ok = {200, 201, 202, *intended}
    return sum(count for status, count in route.statuses.items() if status not in ok)


def report(store: str, stats: dict[str, RouteStats], checks: dict[str, str], drain: float) -> bool:
    print(f"\n== {store}")
    print(
        f"{'route':<36} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'429':>5} {'errors':>6}"
    )
    for name, route in stats.items():
        lat = route.latencies_ms
        print(
            f"{name:<36} {len(lat):>8} {percentile(lat, 50):>8.1f} {percentile(lat, 95):>8.1f}"
            f" {percentile(lat, 99):>8.1f} {route.statuses.get(429, 0):>5}"
            f" {errors_of(name, route):>6}"
        )
    every = [lat for route in stats.values() for lat in route.latencies_ms]
    errors = sum(errors_of(name, route) for name, route in stats.items())
    print(
        f"{'all':<36} {len(every):>8} {percentile(every, 50):>8.1f} {percentile(every, 95):>8.1f}"
        f" {percentile(every, 99):>8.1f}"
    )
    for what, figure in checks.items():
        print(f"  {what}: {figure}")
    print(
        f"  work finished {drain:.1f} s after the load stopped;"
        f" errors other than intended 429s: {errors}"
    )
    finished = all(a == b for a, b in (figure.split("/") for figure in checks.values()))
    return errors == 0 and finished and stats[FREE_ROUTE].statuses.get(429, 0) > 0


async def run_once(
    url: str, root: Path, args: argparse.Namespace
) -> tuple[dict[str, RouteStats], dict[str, str], float]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        fixture = await set_up(client, root)
        stats = await load(client, fixture, args.rate, args.seconds, args.seed)
        stopped = time.monotonic()
        checks = await verify(client, fixture, args.drain_timeout)
        return stats, checks, time.monotonic() - stopped


@contextlib.contextmanager
def store_url(store: str) -> Iterator[str | None]:
    if store == "redis":
        with running_server() as redis:
            yield redis.url
    else:
        yield None  # the service's default: an SQLite file under its directory


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stores", default="sqlite,redis", help="comma-separated: sqlite, redis")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    random.seed(args.seed)  # the events' names and variants
    print(
        f"reference service under load: {args.rate:g} requests/s for {args.seconds:g} s, open loop;"
        f" route shares {', '.join(f'{n} {s}%' for n, (s, _) in ROUTES.items())}"
    )
    passed = True
    for store in args.stores.split(","):
        with (
            tempfile.TemporaryDirectory(prefix="conveyor-bench-service-") as tmp,
            store_url(store) as url,
        ):
            root = Path(tmp)
            env = service_env(root, url)
            with running_service(APP, root / "server.log", env=env) as server:
                stats, checks, drain = asyncio.run(run_once(server.url, root, args))
            passed = report(store, stats, checks, drain) and passed
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
