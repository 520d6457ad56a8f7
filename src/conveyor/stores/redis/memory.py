"""What a Redis server does when its memory is full, checked when the job store opens.

Under any ``maxmemory-policy`` but ``noeviction`` a full Redis deletes keys to
make room, and a job it acknowledged can vanish before it runs. The job store
therefore refuses such a server (``StoreConfigError`` naming the fix) unless
``redis_allow_eviction_risking_job_loss`` is set. The policy is read with
``CONFIG GET`` and, where a managed service disables CONFIG, from ``INFO
memory``; on a cluster from every primary. Under ``noeviction`` a full server
refuses writes instead (``StoreFullError``), which loses nothing.
"""

from __future__ import annotations

from typing import Any

import structlog
from redis import exceptions as redis_errors

from conveyor.errors import StoreConfigError
from conveyor.masking import mask_url
from conveyor.stores.backend import SAFE_EVICTION_POLICY, StoreMemory
from conveyor.stores.redis.connection import RedisConnection

_log = structlog.get_logger("conveyor.store")

UNKNOWN = "unknown"
"""The policy of a server that answers neither CONFIG GET nor INFO memory."""


async def eviction_policies(conn: RedisConnection) -> list[str]:
    """``maxmemory-policy`` of the server (of each primary on a cluster)."""
    return [await conn.call(_policy, conn.client, target) for target in _targets(conn)]


async def memory(conn: RedisConnection) -> StoreMemory:
    """The server's policy and memory use from ``INFO memory``; on a cluster, the primary
    whose policy evicts if any, else the fullest one."""
    found = [
        _from_info(await conn.call(conn.client.execute_command, "INFO", "memory", **target))
        for target in _targets(conn)
    ]
    return max(found, key=lambda m: (m.evicts, m.used_bytes / (m.max_bytes or 1e30)))


def check_eviction(policies: list[str], url: str, *, allow: bool) -> None:
    """Refuse a server that may evict jobs, naming the fix; with ``allow``, warn once."""
    risky = sorted({p for p in policies if p != SAFE_EVICTION_POLICY})
    if not risky:
        return
    observed = ", ".join(risky)
    if allow:
        _log.warning(
            "Redis may evict jobs to free memory; allowed by redis_allow_eviction_risking_job_loss",
            url=mask_url(url),
            maxmemory_policy=observed,
        )
        return
    raise StoreConfigError(
        "maxmemory-policy",
        observed,
        f"the Redis server at {mask_url(url)} has maxmemory-policy {observed}: when its"
        " memory is full it deletes keys, so jobs it acknowledged can vanish before they"
        f" run. Set `maxmemory-policy {SAFE_EVICTION_POLICY}` on it (CONFIG SET"
        f" maxmemory-policy {SAFE_EVICTION_POLICY}, or in redis.conf; a full server then"
        " refuses new jobs with StoreFullError and loses none). A cache that should evict"
        " belongs on a Redis of its own: point cache_url (CONVEYOR_CACHE_URL) at an LRU"
        " server. To run on this server anyway, knowing that jobs may be lost, set"
        " redis_allow_eviction_risking_job_loss=True.",
    )


def _targets(conn: RedisConnection) -> list[dict[str, Any]]:
    """Keyword arguments that send a command to each server that holds data."""
    if conn.is_cluster:
        return [{"target_nodes": node} for node in conn.client.get_primaries()]
    return [{}]


async def _policy(client: Any, target: dict[str, Any]) -> str:
    try:
        reply = await client.execute_command("CONFIG GET", "maxmemory-policy", **target)
        value = _text(dict(reply).get(b"maxmemory-policy") or dict(reply).get("maxmemory-policy"))
        if value:
            return value
    except redis_errors.ResponseError:  # CONFIG disabled or renamed (managed services), ACL
        pass
    try:
        info = await client.execute_command("INFO", "memory", **target)
    except redis_errors.ResponseError:
        return UNKNOWN
    return _text(info.get("maxmemory_policy")) or UNKNOWN


def _from_info(info: dict[str, Any]) -> StoreMemory:
    used = int(info.get("used_memory", 0)) - int(info.get("mem_not_counted_for_evict", 0))
    return StoreMemory(
        eviction_policy=_text(info.get("maxmemory_policy")) or UNKNOWN,
        used_bytes=max(0, used),
        max_bytes=int(info.get("maxmemory", 0)),
    )


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)
