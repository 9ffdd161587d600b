"""Redis clients from a URL: ``redis://``, ``rediss://``, ``unix://`` for one server,
``redis+cluster://host:port`` (or ``rediss+cluster://``) for a Redis Cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEMES)


def _retry() -> Retry:
    """Pooled connections go stale when Redis restarts: retry a command on a fresh one."""
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=5)


def redis_client(url: str, max_connections: int = 256) -> Redis:
    """An asyncio client. A cluster client is returned typed as ``Redis``: every command we use
    (scripts, pipelines, pub/sub) has the same call shape on both."""
    if is_cluster_url(url):
        plain = url.replace("+cluster", "", 1)
        cluster = RedisCluster.from_url(plain, max_connections=max_connections, retry=_retry())
        return cast(Redis, cluster)
    return Redis.from_url(
        url,
        health_check_interval=30,
        max_connections=max_connections,
        retry=_retry(),
        retry_on_error=[ConnectionError, TimeoutError],
    )


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


async def evalsha_many(
    client: Redis, sha: str, calls: Sequence[tuple[Sequence[str], Sequence[str | int]]]
) -> list[Any]:
    """Run a loaded script once per ``(keys, args)`` in one round trip: one pipeline on a single
    Redis; on a cluster (whose pipelines refuse EVALSHA) concurrent calls, one per script.
    Errors come back in the list instead of being raised."""
    if not is_cluster(client):
        pipe = client.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))
    return list(
        await asyncio.gather(
            *(client.evalsha(sha, len(keys), *keys, *args) for keys, args in calls),
            return_exceptions=True,
        )
    )
