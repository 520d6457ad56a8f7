"""Connecting to Redis or Redis Cluster from a conveyor URL.

``redis://`` and ``rediss://`` (TLS) reach one server (username, password and
db index in the URL as usual); ``redis+cluster://`` and ``rediss+cluster://``
reach a cluster through any of its nodes. Commands fail after ``timeout``
seconds instead of hanging, so an outage surfaces as a typed error.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

RedisClient = Redis | RedisCluster


def connect(url: str, *, timeout: float) -> RedisClient:
    if "+cluster://" in url:
        return RedisCluster.from_url(
            url.replace("+cluster://", "://", 1),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
    return Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
    )
