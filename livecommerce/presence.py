"""Viewer counts and likes: counted locally, summed in Redis, published as coalesced events.

Counts, never per-viewer join/leave storms: each process writes its local count per room into a
hash that expires (a dead process ages out within ``PROCESS_TTL_MS``), and once a second one
process per brand room (a ``SET NX PX`` lock) sums them and publishes ``viewers`` for the rooms
whose count changed. Likes are added up locally and flushed twice a second; a per-room lock keeps
the ``likes`` events of all processes together to at most two a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from redis.asyncio import Redis

from livecommerce.broker import Broker, room_tag
from livecommerce.ids import new_id
from livecommerce.timeutil import now_ms

log = logging.getLogger("livecommerce.presence")

TICK_S = 0.5
PROCESS_TTL_MS = 5000
LikeKey = tuple[str, str]  # (brand_room_id, room_id)
LocalCounts = Callable[[], dict[str, dict[str, int]]]


def viewers_last_key(brand_room_id: str) -> str:
    return f"{room_tag(brand_room_id)}:viewers_last"


def viewers_peak_key(brand_room_id: str) -> str:
    return f"{room_tag(brand_room_id)}:viewers_peak"


class Presence:
    """Publishes ``viewers`` and ``likes`` events for the brand rooms this process serves."""

    def __init__(self, redis: Redis, broker: Broker, local_counts: LocalCounts) -> None:
        self.redis = redis
        self.broker = broker
        self.local_counts = local_counts
        self.process_id = new_id()
        self._likes: dict[LikeKey, int] = defaultdict(int)
        self._likes_unpublished: set[LikeKey] = set()
        self._reported: dict[str, set[str]] = {}
        self._task: asyncio.Task[None] | None = None

    def add_likes(self, brand_room_id: str, room_id: str, count: int) -> None:
        self._likes[(brand_room_id, room_id)] += count

    async def viewers(self, brand_room_id: str, room_id: str) -> int:
        """The room's count as last published."""
        value = await self.redis.hget(viewers_last_key(brand_room_id), room_id)
        return int(value or 0)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lc-presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(TICK_S)
            tick += 1
            try:
                await self.flush_likes()
                if tick % 2 == 0:
                    await self.flush_viewers()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis hiccup: try again next tick
                log.exception("presence tick failed")

    async def flush_likes(self) -> None:
        pending, self._likes = self._likes, defaultdict(int)
        for key, count in pending.items():
            brand_room_id, room_id = key
            await self.redis.incrby(f"{room_tag(brand_room_id)}:likes:{room_id}", count)
            self._likes_unpublished.add(key)
        for key in list(self._likes_unpublished):
            brand_room_id, room_id = key
            tag = room_tag(brand_room_id)
            if not await self.redis.set(f"{tag}:likes_lock:{room_id}", 1, nx=True, px=480):
                continue  # another process published within the last half second
            total = int(await self.redis.get(f"{tag}:likes:{room_id}") or 0)
            await self.broker.publish_one(
                brand_room_id, {"type": "likes", "room_id": room_id, "total": total}, room_id
            )
            self._likes_unpublished.discard(key)

    async def flush_viewers(self) -> None:
        counts = self.local_counts()
        now = now_ms()
        for brand_room_id in set(counts) | set(self._reported):
            rooms = counts.get(brand_room_id, {})
            gone = self._reported.get(brand_room_id, set()) - set(rooms)
            report = {**dict.fromkeys(gone, 0), **rooms}
            await self._report(brand_room_id, report, now)
            if rooms:
                self._reported[brand_room_id] = set(rooms)
            else:
                self._reported.pop(brand_room_id, None)
            if await self.redis.set(f"{room_tag(brand_room_id)}:viewers_lock", 1, nx=True, px=950):
                await self._publish_changes(brand_room_id, now)

    async def _report(self, brand_room_id: str, rooms: dict[str, int], now: int) -> None:
        tag = room_tag(brand_room_id)
        mine = f"{tag}:viewers:{self.process_id}"
        async with self.redis.pipeline(transaction=True) as pipe:
            if rooms:
                pipe.hset(mine, mapping=rooms)  # type: ignore[arg-type]
            pipe.pexpire(mine, PROCESS_TTL_MS)
            pipe.zadd(f"{tag}:viewer_procs", {self.process_id: now})
            await pipe.execute()

    async def _publish_changes(self, brand_room_id: str, now: int) -> None:
        tag = room_tag(brand_room_id)
        procs_key = f"{tag}:viewer_procs"
        await self.redis.zremrangebyscore(procs_key, "-inf", now - PROCESS_TTL_MS)
        procs: list[bytes] = list(await self.redis.zrange(procs_key, 0, -1))  # type: ignore[arg-type]
        totals: dict[str, int] = defaultdict(int)
        async with self.redis.pipeline(transaction=False) as pipe:
            for proc in procs:
                pipe.hgetall(f"{tag}:viewers:{proc.decode()}")
            pipe.hgetall(viewers_last_key(brand_room_id))
            pipe.hgetall(viewers_peak_key(brand_room_id))
            *hashes, last_raw, peak_raw = await pipe.execute()
        for counts in hashes:
            for room, count in counts.items():
                totals[room.decode()] += int(count)
        last = {room.decode(): int(count) for room, count in last_raw.items()}
        last_total = last.pop("_total", 0)
        total = sum(totals.values())
        events: list[tuple[str, dict[str, object]]] = []
        for room_id in set(totals) | set(last):
            count = totals.get(room_id, 0)
            changed = count != last.get(room_id, 0)
            if room_id == brand_room_id:
                changed = changed or total != last_total
            if not changed:
                continue
            event: dict[str, object] = {"type": "viewers", "room_id": room_id, "count": count}
            if room_id == brand_room_id:
                event["_total"] = total
            events.append((room_id, event))
        if total != last_total and brand_room_id not in set(totals) | set(last):
            events.append(
                (
                    brand_room_id,
                    {"type": "viewers", "room_id": brand_room_id, "count": 0, "_total": total},
                )
            )
        if not events:
            return
        await self.broker.publish(brand_room_id, events)
        published = {room: totals.get(room, 0) for room in set(totals) | set(last)}
        await self.redis.hset(
            viewers_last_key(brand_room_id),
            mapping={**published, "_total": total},
        )
        peaks = {room.decode(): int(count) for room, count in peak_raw.items()}
        higher = {room: count for room, count in published.items() if count > peaks.get(room, 0)}
        if higher:  # the running maximum that room stats report as the peak
            await self.redis.hset(viewers_peak_key(brand_room_id), mapping=higher)
