"""Chat lines, hidden lines, mutes and pinned cards of a room, kept in Redis.

Every key is hash-tagged with the brand room (``lc:{room:<brand_room_id>}:…``) so one brand
room's state lives on one Redis Cluster slot, next to its seq counter and history.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from livecommerce.broker import room_tag

CHAT_KEPT = 100
SNAPSHOT_CHAT = 50


def chat_key(brand_room_id: str, room_id: str) -> str:
    return f"{room_tag(brand_room_id)}:chat:{room_id}"


def hidden_key(brand_room_id: str, room_id: str) -> str:
    return f"{room_tag(brand_room_id)}:hidden:{room_id}"


def mutes_key(brand_room_id: str, room_id: str) -> str:
    return f"{room_tag(brand_room_id)}:mutes:{room_id}"


def cards_key(brand_room_id: str) -> str:
    return f"{room_tag(brand_room_id)}:cards"


def card_products_key(brand_room_id: str) -> str:
    return f"{room_tag(brand_room_id)}:card_products"


class ChatStore:
    """The recent chat of each room (for snapshots) and the moderation state."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def add(self, brand_room_id: str, room_id: str, line: dict[str, Any]) -> None:
        key = chat_key(brand_room_id, room_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(line, separators=(",", ":"), ensure_ascii=False))
            pipe.ltrim(key, -CHAT_KEPT, -1)
            await pipe.execute()

    async def recent(
        self, brand_room_id: str, room_id: str, limit: int = SNAPSHOT_CHAT
    ) -> list[dict[str, Any]]:
        """The last ``limit`` visible lines, oldest first."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lrange(chat_key(brand_room_id, room_id), 0, -1)
            pipe.smembers(hidden_key(brand_room_id, room_id))
            raw_lines, hidden = await pipe.execute()
        hidden_ids = {h.decode() if isinstance(h, bytes) else h for h in hidden}
        lines = [json.loads(raw) for raw in raw_lines]
        visible = [line for line in lines if line.get("id") not in hidden_ids]
        return visible[-limit:]

    async def exists(self, brand_room_id: str, room_id: str, chat_id: str) -> bool:
        lines = await self.redis.lrange(chat_key(brand_room_id, room_id), 0, -1)
        return any(json.loads(raw).get("id") == chat_id for raw in lines)

    async def hide(self, brand_room_id: str, room_id: str, chat_id: str) -> None:
        await self.redis.sadd(hidden_key(brand_room_id, room_id), chat_id)

    async def hidden(self, brand_room_id: str, room_id: str) -> set[str]:
        members = await self.redis.smembers(hidden_key(brand_room_id, room_id))
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    async def mute(self, brand_room_id: str, room_id: str, viewer_id: str) -> None:
        await self.redis.sadd(mutes_key(brand_room_id, room_id), viewer_id)

    async def is_muted(self, brand_room_id: str, room_id: str, viewer_id: str) -> bool:
        return bool(await self.redis.sismember(mutes_key(brand_room_id, room_id), viewer_id))


class CardStore:
    """The cards pinned in a brand room, ordered by pin time."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def pin(self, brand_room_id: str, product: dict[str, Any], at_ms: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(cards_key(brand_room_id), {product["id"]: at_ms}, nx=True)
            pipe.hset(card_products_key(brand_room_id), product["id"], json.dumps(product))
            await pipe.execute()

    async def unpin(self, brand_room_id: str, product_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(cards_key(brand_room_id), product_id)
            pipe.hdel(card_products_key(brand_room_id), product_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def pinned(self, brand_room_id: str) -> list[dict[str, Any]]:
        ids: list[bytes] = list(await self.redis.zrange(cards_key(brand_room_id), 0, -1))  # type: ignore[arg-type]
        if not ids:
            return []
        rows = await self.redis.hmget(card_products_key(brand_room_id), ids)
        return [json.loads(row) for row in rows if row is not None]
