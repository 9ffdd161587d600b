"""The Redis side of the fan-out path: stamp events with the brand room's seq, keep a bounded
history for resume, and publish once to the brand room's channel."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis

HISTORY_LENGTH = 2000


def room_tag(brand_room_id: str) -> str:
    return f"lc:{{room:{brand_room_id}}}"


def channel(brand_room_id: str) -> str:
    return f"{room_tag(brand_room_id)}:events"


def encode_body(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Stamped:
    seq: int
    ts: int


@dataclass(frozen=True)
class Message:
    """One published event as every process receives it."""

    seq: int
    ts: int
    scope: str  # "" = the brand room and every mirror; else one room id
    body: str

    @classmethod
    def parse(cls, raw: bytes | str) -> Message:
        text = raw.decode() if isinstance(raw, bytes) else raw
        seq, ts, scope, body = text.split("\n", 3)
        return cls(int(seq), int(ts), scope, body)


class Broker:
    """Publishes events of a brand room; every process's hub subscribes to the channel."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        source = resources.files("livecommerce").joinpath("publish.lua").read_text()
        self._publish = redis.register_script(source)

    async def publish(
        self, brand_room_id: str, events: list[tuple[str, dict[str, Any]]]
    ) -> list[Stamped]:
        """Publish ``(scope, event)`` pairs; scope ``""`` reaches every room of the brand room."""
        if not events:
            return []
        tag = room_tag(brand_room_id)
        args: list[str | int] = [channel(brand_room_id), HISTORY_LENGTH]
        for scope, event in events:
            args += [scope, encode_body(event)]
        flat = await self._publish(keys=[f"{tag}:seq", f"{tag}:history"], args=args)
        return [Stamped(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def publish_one(
        self, brand_room_id: str, event: dict[str, Any], scope: str = ""
    ) -> Stamped:
        return (await self.publish(brand_room_id, [(scope, event)]))[0]

    async def current_seq(self, brand_room_id: str) -> int:
        value = await self.redis.get(f"{room_tag(brand_room_id)}:seq")
        return int(value or 0)
