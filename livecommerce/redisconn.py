"""Redis clients from a URL: ``redis://``, ``rediss://``, ``unix://`` for one server,
``redis+cluster://host:port`` (or ``rediss+cluster://``) for a Redis Cluster."""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def redis_client(url: str, max_connections: int = 256) -> Redis:
    """An asyncio client. A cluster client is returned typed as ``Redis``: every command we use
    (scripts, pipelines, pub/sub) has the same call shape on both."""
    if is_cluster_url(url):
        plain = url.replace("+cluster", "", 1)
        cluster = RedisCluster.from_url(plain, max_connections=max_connections)
        return cast(Redis, cluster)
    return Redis.from_url(url, health_check_interval=30, max_connections=max_connections)
