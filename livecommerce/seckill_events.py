"""What rooms are told about seckills: state changes (created, opened, sold out, ended), stock
coalesced to at most 10 events a second per seckill, and a ticker at most once a second.

Several processes run this loop at once; Redis decides who speaks: ``SET NX`` markers make each
state change announced once, and ``SET NX PX`` locks keep the stock and ticker rates cluster-wide.
A process keeps a seckill marked dirty until it has published a fresh value itself, so the final
value always goes out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from livecommerce.timeutil import now_ms

if TYPE_CHECKING:
    from livecommerce.seckill import Counters, SeckillEngine, SeckillInfo

log = logging.getLogger("livecommerce.seckill")

STOCK_INTERVAL_MS = 100  # ≤ 10 stock events per second per seckill
TICKER_INTERVAL_MS = 1000
SCHEDULE_EVERY_S = 0.25
LOOP_EVERY_S = 0.05
STOP_WAIT_S = 2.0


class SeckillAnnouncer:
    def __init__(self, engine: SeckillEngine) -> None:
        self.engine = engine
        self.redis = engine.redis
        self._dirty: set[str] = set()
        self._ticking: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._loop_task] if self._loop_task else [])]
        for task in tasks:
            task.cancel()
        if tasks:  # bounded: a Redis call stuck on a dead connection must not block shutdown
            await asyncio.wait(tasks, timeout=STOP_WAIT_S)

    # what happened ---------------------------------------------------------------------------

    def dirty(self, seckill_id: str) -> None:
        self._dirty.add(seckill_id)

    def bought(self, seckill_id: str, qty: int, total_left: int) -> None:
        self._dirty.add(seckill_id)
        self._ticking.add(seckill_id)
        if total_left <= 0:
            self._spawn(self._sold_out(seckill_id))

    def released(self, seckill_id: str, before: int, after: int) -> None:
        self._dirty.add(seckill_id)
        if before <= 0 < after:
            self._spawn(self._reopened(seckill_id))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # announcements ---------------------------------------------------------------------------

    async def announce_state(self, info: SeckillInfo, counters: Counters) -> None:
        """Publish a ``seckill`` event with the current state; "open" and "ended" go out once
        per seckill however many processes notice them."""
        state = info.state(counters.ended, counters.total, now_ms())
        tag = f"lc:{{sk:{info.id}}}"
        if state in ("open", "ended") and not await self.redis.set(
            f"{tag}:announced:{state}", 1, nx=True
        ):
            return
        body = {"type": "seckill", **self.engine.event_body(info, counters)}
        await self.engine.app.broker.publish_one(info.brand_room_id, body)
        if state == "ended" or (state == "open" and not info.ends_ms):
            # nothing left to announce on time; an early end announces itself
            await self.redis.srem("lc:seckills:active", info.id)

    async def _sold_out(self, seckill_id: str) -> None:
        """Sold out: told at once, stock 0 and the state, once until units come back."""
        info = await self.engine.info(seckill_id)
        if info is None:
            return
        if not await self.redis.set(f"lc:{{sk:{seckill_id}}}:soldout", 1, nx=True):
            return
        counters = await self.engine.counters(seckill_id)
        if counters.total > 0:  # units came back in between
            await self.redis.delete(f"lc:{{sk:{seckill_id}}}:soldout")
            return
        await self.engine.app.broker.publish(
            info.brand_room_id,
            [("", self._stock_event(info, counters)),
             ("", {"type": "seckill", **self.engine.event_body(info, counters)})],
        )  # fmt: skip

    async def _reopened(self, seckill_id: str) -> None:
        info = await self.engine.info(seckill_id)
        if info is None:
            return
        if await self.redis.delete(f"lc:{{sk:{seckill_id}}}:soldout"):
            counters = await self.engine.counters(seckill_id)
            body = {"type": "seckill", **self.engine.event_body(info, counters)}
            await self.engine.app.broker.publish_one(info.brand_room_id, body)

    def _stock_event(self, info: SeckillInfo, counters: Counters) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "stock", "seckill_id": info.id, "left": counters.pool}
        if info.allocations:
            event["_left_by_room"] = {r: counters.left_for(r) for r in info.allocations}
        return event

    # the loop --------------------------------------------------------------------------------

    async def _run(self) -> None:
        last_schedule = last_ticker = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(LOOP_EVERY_S)
            try:
                await self._flush_stock()
                if loop.time() - last_ticker >= TICKER_INTERVAL_MS / 1000:
                    last_ticker = loop.time()
                    await self._flush_tickers()
                if loop.time() - last_schedule >= SCHEDULE_EVERY_S:
                    last_schedule = loop.time()
                    await self._schedule()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("seckill announcer round failed")

    async def _flush_stock(self) -> None:
        for seckill_id in list(self._dirty):
            lock = f"lc:{{sk:{seckill_id}}}:stocklock"
            if not await self.redis.set(lock, 1, nx=True, px=STOCK_INTERVAL_MS):
                continue
            self._dirty.discard(seckill_id)
            info = await self.engine.info(seckill_id)
            if info is None:
                continue
            counters = await self.engine.counters(seckill_id)
            await self.engine.app.broker.publish_one(
                info.brand_room_id, self._stock_event(info, counters)
            )

    async def _flush_tickers(self) -> None:
        for seckill_id in list(self._ticking):
            tag = f"lc:{{sk:{seckill_id}}}"
            if not await self.redis.set(f"{tag}:tickerlock", 1, nx=True, px=TICKER_INTERVAL_MS):
                continue
            count = int(await self.redis.getset(f"{tag}:tick", 0) or 0)
            if count <= 0:
                self._ticking.discard(seckill_id)
                continue
            info = await self.engine.info(seckill_id)
            if info is not None:
                event = {"type": "ticker", "seckill_id": seckill_id, "count": count}
                await self.engine.app.broker.publish_one(info.brand_room_id, event)

    async def _schedule(self) -> None:
        """Announce seckills opening or closing at their times."""
        now = now_ms()
        for raw in await self.redis.smembers("lc:seckills:active"):
            seckill_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            info = await self.engine.info(seckill_id)
            if info is None or now < info.starts_ms:
                continue
            counters = await self.engine.counters(seckill_id)
            if info.state(counters.ended, counters.total, now) in ("open", "ended"):
                await self.announce_state(info, counters)
