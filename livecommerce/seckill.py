"""The seckill engine: flash-sale stock in Redis, one atomic Lua script per buy, micro-batched.

Redis is the gate (stock, per-viewer counts, idempotency, order status); SQL is the record (the
order writer in ``orders.py`` copies the order stream into it). Every key of a seckill shares the
hash tag ``{sk:<id>}``, so each script touches one Redis Cluster slot.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from sqlmodel import select

from livecommerce.auth import Principal
from livecommerce.batching import ScriptBatcher
from livecommerce.context import AppContext
from livecommerce.errors import ApiError, invalid, not_found
from livecommerce.ids import new_id
from livecommerce.models import Dealer, Order, Room, Seckill
from livecommerce.order_records import (
    new_order_id,
    parse_record,
    record_view,
    seckill_of,
    split_status,
)
from livecommerce.timeutil import from_ms, iso, now_ms, to_ms
from livecommerce.validation import Id, Qty, RequestId, StrictBody, validate

ACTIVE_SET = "lc:seckills:active"  # seckills whose opening/closing is still to be announced
ALL_SET = "lc:seckills:all"  # every seckill: the order writer and the sweeper walk these
BUY_RESULTS = ("ok", "duplicate", "sold_out", "limit_exceeded", "not_started", "ended")
ROOM_CACHE_S = 2.0


def load_script(redis: Redis, name: str) -> AsyncScript:
    return redis.register_script(resources.files("livecommerce").joinpath(name).read_text())


def text(value: bytes | str | int | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class SeckillKeys:
    """The Redis keys of one seckill (see ``seckill.lua`` for what each holds)."""

    tag: str

    @classmethod
    def of(cls, seckill_id: str) -> SeckillKeys:
        return cls(f"lc:{{sk:{seckill_id}}}")

    def __getattr__(self, name: str) -> str:
        if name.startswith("_"):
            raise AttributeError(name)
        return f"{self.tag}:{name}"

    @property
    def buy(self) -> list[str]:
        names = ("meta", "pool", "alloc", "viewers", "req", "orders", "status", "allocd",
                 "stream", "deadlines", "tick")  # fmt: skip
        return [f"{self.tag}:{n}" for n in names]

    @property
    def transition(self) -> list[str]:
        names = ("meta", "pool", "alloc", "viewers", "orders", "status", "allocd", "stream",
                 "deadlines")  # fmt: skip
        return [f"{self.tag}:{n}" for n in names]

    @property
    def giveback(self) -> list[str]:
        names = ("meta", "pool", "alloc", "viewers", "orders", "allocd", "returns")
        return [f"{self.tag}:{n}" for n in names]


def room_seckills_key(brand_room_id: str) -> str:
    return f"lc:{{room:{brand_room_id}}}:seckills"


@dataclass(frozen=True)
class SeckillInfo:
    """What never changes about a seckill once created (cached per process)."""

    id: str
    brand_room_id: str
    brand_id: str
    product_id: str
    price_cents: int
    stock: int
    limit: int
    starts_ms: int
    ends_ms: int  # 0 = none
    allocations: dict[str, int]

    @classmethod
    def from_meta(cls, meta: Mapping[bytes | str, bytes | str]) -> SeckillInfo:
        m = {text(k): text(v) for k, v in meta.items()}
        return cls(
            id=m["id"],
            brand_room_id=m["brand_room_id"],
            brand_id=m["brand_id"],
            product_id=m["product_id"],
            price_cents=int(m["price"]),
            stock=int(m["stock"]),
            limit=int(m["limit"]),
            starts_ms=int(m["starts"]),
            ends_ms=int(m["ends"]),
            allocations=json.loads(m["allocations"]),
        )

    def state(self, ended: bool, total_left: int, now: int) -> str:
        if ended or (self.ends_ms and now >= self.ends_ms):
            return "ended"
        if now < self.starts_ms:
            return "scheduled"
        return "sold_out" if total_left <= 0 else "open"


@dataclass(frozen=True)
class Counters:
    """The live numbers of a seckill, read together."""

    ended: bool
    pool: int
    allocations: dict[str, int]

    @property
    def total(self) -> int:
        return self.pool + sum(self.allocations.values())

    def left_for(self, room_id: str) -> int:
        return self.pool + self.allocations.get(room_id, 0)


@dataclass(frozen=True)
class RoomInfo:
    id: str
    brand_room_id: str
    dealer_id: str
    upline_id: str
    ended: bool
    loaded: float


@dataclass(frozen=True)
class BuyResult:
    code: str
    order: dict[str, Any] | None = None


class BuyBody(StrictBody):
    room_id: Id
    qty: Qty
    request_id: RequestId


class WsBuy(StrictBody):
    seckill_id: Id
    qty: Qty
    request_id: RequestId


class SeckillEngine:
    """Buys, seckill lifecycle and the stock numbers every room shows."""

    def __init__(self, app: AppContext) -> None:
        self.app = app
        self.redis = app.redis
        self.buy_script = load_script(self.redis, "seckill.lua")
        self.release_script = load_script(self.redis, "seckill_release.lua")
        self.pay_script = load_script(self.redis, "seckill_pay.lua")
        self.return_script = load_script(self.redis, "seckill_return.lua")
        self.batcher = ScriptBatcher(self.redis, self.buy_script)
        self._infos: dict[str, SeckillInfo] = {}
        self.touched: set[str] = set()  # order streams this process appended to, for the writer
        self._rooms: dict[str, RoomInfo] = {}
        self._loading: dict[str, asyncio.Future[Any]] = {}
        # imported here: seckill_events needs this module's types
        from livecommerce.seckill_events import SeckillAnnouncer

        self.announcer = SeckillAnnouncer(self)

    async def start(self) -> None:
        for script in (self.buy_script, self.release_script, self.pay_script, self.return_script):
            script.sha = await self.redis.script_load(script.script)
        await self.announcer.start()

    async def stop(self) -> None:
        await self.announcer.stop()

    # reading ---------------------------------------------------------------------------------

    async def info(self, seckill_id: str) -> SeckillInfo | None:
        cached = self._infos.get(seckill_id)
        if cached is not None:
            return cached
        if len(seckill_id) > 64:
            return None
        return await self._single_flight(f"sk:{seckill_id}", self._load_info(seckill_id))

    async def _load_info(self, seckill_id: str) -> SeckillInfo | None:
        meta = await self.redis.hgetall(SeckillKeys.of(seckill_id).meta)
        if not meta:
            return None
        info = SeckillInfo.from_meta(meta)
        self._infos[seckill_id] = info
        return info

    async def _single_flight(self, key: str, work: Awaitable[Any]) -> Any:
        """Run ``work`` once for every caller asking for ``key`` at the same time: a spike's
        first requests must not each read the same row."""
        running = self._loading.get(key)
        if running is None:
            running = asyncio.ensure_future(work)
            self._loading[key] = running
            running.add_done_callback(lambda _: self._loading.pop(key, None))
        else:
            work.close()  # type: ignore[attr-defined]
        return await asyncio.shield(running)

    async def counters(self, seckill_id: str) -> Counters:
        keys = SeckillKeys.of(seckill_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.meta, "ended")
        pipe.get(keys.pool)
        pipe.hgetall(keys.alloc)
        ended, pool, alloc = await pipe.execute()
        return Counters(
            ended=text(ended) == "1",
            pool=int(pool or 0),
            allocations={text(k): int(v) for k, v in alloc.items()},
        )

    def event_body(
        self, info: SeckillInfo, counters: Counters, room_id: str | None = None
    ) -> dict[str, Any]:
        """The seckill as snapshots and ``seckill`` events show it. Without ``room_id``: the
        shared value, plus ``_left_by_room`` for each allocated room (the hub substitutes it)."""
        state = info.state(counters.ended, counters.total, now_ms())
        body: dict[str, Any] = {
            "id": info.id,
            "product_id": info.product_id,
            "price_cents": info.price_cents,
            "stock": info.stock,
            "left": counters.left_for(room_id) if room_id else counters.pool,
            "per_viewer_limit": info.limit,
            "starts_at": iso(from_ms(info.starts_ms)),
            "ends_at": iso(from_ms(info.ends_ms)) if info.ends_ms else None,
            "state": state,
        }
        if room_id is None and info.allocations:
            body["_left_by_room"] = {r: counters.left_for(r) for r in info.allocations}
        return body

    async def view(self, seckill_id: str) -> dict[str, Any] | None:
        """``GET /api/seckills/{id}``: the seckill, ``left`` counting every unit left."""
        info = await self.info(seckill_id)
        if info is None:
            return None
        counters = await self.counters(seckill_id)
        body = self.event_body(info, counters)
        body.pop("_left_by_room", None)
        body["left"] = counters.total
        body["room_id"] = info.brand_room_id
        body["allocations"] = dict(info.allocations)
        body["allocations_left"] = {r: counters.allocations.get(r, 0) for r in info.allocations}
        return body

    async def room_seckills(self, brand_room_id: str, room_id: str) -> list[dict[str, Any]]:
        """The seckills of a brand room as ``room_id``'s snapshot shows them, left read now."""
        ids = sorted(text(i) for i in await self.redis.smembers(room_seckills_key(brand_room_id)))
        views = []
        for seckill_id in ids:
            info = await self.info(seckill_id)
            if info is not None:
                counters = await self.counters(seckill_id)
                views.append(self.event_body(info, counters, room_id))
        return views

    async def room(self, room_id: str) -> RoomInfo | None:
        """A room as a buy needs it, cached in process. A stale entry (older than 2 s: a revoked
        mirror ends within that) is still served while one refresh runs in the background."""
        cached = self._rooms.get(room_id)
        if cached is None:
            if len(room_id) > 64:
                return None
            info: RoomInfo | None = await self._single_flight(
                f"room:{room_id}", self._load_room(room_id)
            )
            return info
        if (
            time.monotonic() - cached.loaded > ROOM_CACHE_S
            and f"room:{room_id}" not in self._loading
        ):
            self._loading[f"room:{room_id}"] = task = asyncio.ensure_future(
                self._load_room(room_id)
            )
            task.add_done_callback(lambda _: self._loading.pop(f"room:{room_id}", None))
        return cached

    async def _load_room(self, room_id: str) -> RoomInfo | None:
        async with self.app.db.read() as session:
            room = await session.get(Room, room_id)
            if room is None:
                return None
            upline = ""
            if room.dealer_id:
                dealer = await session.get(Dealer, room.dealer_id)
                upline = (dealer.upline_id or "") if dealer else ""
        info = RoomInfo(
            id=room.id,
            brand_room_id=room.brand_room_id or room.id,
            dealer_id=room.dealer_id or "",
            upline_id=upline,
            ended=room.kind == "dealer" and room.status == "ended",
            loaded=time.monotonic(),
        )
        if len(self._rooms) > 50_000:
            self._rooms.clear()
        self._rooms[room_id] = info
        return info

    # buying ----------------------------------------------------------------------------------

    async def buy(
        self,
        viewer_id: str,
        seckill_id: str,
        room_id: str,
        qty: int,
        request_id: str,
        *,
        batched: bool = True,
    ) -> BuyResult:
        """One buy. Raises ``ApiError`` for a seckill or room that does not fit (404/422)."""
        info = await self.info(seckill_id)
        if info is None:
            raise not_found("seckill")
        room = await self.room(room_id)
        if room is None:
            raise not_found("room")
        if room.brand_room_id != info.brand_room_id:
            raise invalid("room_id is not a room of this seckill's broadcast")
        if room.ended:
            raise invalid("this dealer room has ended")
        keys = SeckillKeys.of(seckill_id).buy
        order_id = new_order_id(new_id(), seckill_id)
        args: list[str | int] = [viewer_id, request_id, room_id, qty, order_id,
                                 room.dealer_id, room.upline_id]  # fmt: skip
        if batched:
            reply = await self.batcher.call(keys, args)
        else:
            reply = await self.buy_script(keys=keys, args=args)
        code = text(reply[0])
        self.app.metrics.buys.labels(code).inc()
        if code == "not_found":
            raise not_found("seckill")
        if code not in ("ok", "duplicate"):
            return BuyResult(code)
        record = parse_record(reply[2])
        if code == "duplicate" and (record["room_id"] != room_id or int(record["qty"]) != qty):
            raise invalid("this request_id was already used with another room_id or qty")
        status, paid = split_status(reply[3])
        if code == "ok":
            self.touched.add(seckill_id)
            self.announcer.bought(seckill_id, qty, int(reply[5]))
        return BuyResult(code, record_view(record, status, paid))

    async def buy_from_ws(
        self, principal: Principal, room: Room, message: dict[str, Any]
    ) -> dict[str, Any]:
        """The WebSocket ``buy`` message → the ``order`` event (or an ``error`` event)."""
        request_id = message.get("request_id")
        echo = request_id if isinstance(request_id, str) and len(request_id) <= 64 else None
        try:
            body = validate(WsBuy, message)
            if principal.role != "viewer":
                raise ApiError(403, "forbidden", "only viewers buy")
            result = await self.buy(
                principal.id, body.seckill_id, room.id, body.qty, body.request_id
            )
        except ApiError as exc:
            return {"type": "error", "error": exc.code, "message": exc.message,
                    "request_id": echo}  # fmt: skip
        event: dict[str, Any] = {"type": "order", "request_id": body.request_id,
                                 "result": result.code}  # fmt: skip
        if result.order is not None:
            event["order"] = result.order
        return event

    # orders in Redis -------------------------------------------------------------------------

    async def order_in_redis(self, order_id: str) -> tuple[dict[str, str], str, int | None] | None:
        """(record, status, paid_ms) of an order, straight from Redis."""
        seckill_id = seckill_of(order_id)
        if seckill_id is None:
            return None
        keys = SeckillKeys.of(seckill_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.orders, order_id)
        pipe.hget(keys.status, order_id)
        raw, status = await pipe.execute()
        if raw is None:
            return None
        return (parse_record(raw), *split_status(status))

    async def statuses(self, order_ids: Sequence[str]) -> dict[str, str]:
        """The Redis status of each order (reserved, paid, expired, cancelled, refund_due)."""
        pipe = self.redis.pipeline(transaction=False)
        known = [(o, s) for o in order_ids if (s := seckill_of(o)) is not None]
        for order_id, seckill_id in known:
            pipe.hget(SeckillKeys.of(seckill_id).status, order_id)
        found = await pipe.execute() if known else []
        return {o: split_status(s)[0] for (o, _), s in zip(known, found, strict=True) if s}

    async def release(self, order_id: str, status: str) -> str:
        """reserved → ``status`` (expired | cancelled), units given back; the script's code."""
        seckill_id = seckill_of(order_id)
        if seckill_id is None:
            return "not_found"
        reply = await self.release_script(
            keys=SeckillKeys.of(seckill_id).transition, args=[order_id, status]
        )
        code = text(reply[0])
        if code == "released":
            self.touched.add(seckill_id)
            self.announcer.released(seckill_id, int(reply[1]), int(reply[2]))
        return code

    async def pay(self, order_id: str, late: bool) -> tuple[str, int | None, int]:
        """The Redis side of a payment: (code, paid_ms, allocated units); see seckill_pay.lua."""
        seckill_id = seckill_of(order_id)
        if seckill_id is None:
            return "not_found", None, 0
        reply = await self.pay_script(
            keys=SeckillKeys.of(seckill_id).transition, args=[order_id, "1" if late else "0"]
        )
        code = text(reply[0])
        self.touched.add(seckill_id)
        if late:
            self.announcer.dirty(seckill_id)
        paid = int(reply[1]) if code in ("paid", "already_paid") else None
        return code, paid, int(reply[2] or 0)

    async def return_units(self, order: Order, qty: int, refund_id: str = "") -> None:
        """Give ``qty`` refunded units of ``order`` back while its seckill is open (allocation
        first, then the pool, and the viewer's count); once per ``refund_id``."""
        keys = SeckillKeys.of(order.seckill_id).giveback
        reply = await self.return_script(keys=keys, args=[order.id, qty, refund_id])
        if text(reply[0]) == "returned":
            self.announcer.dirty(order.seckill_id)

    # lifecycle -------------------------------------------------------------------------------

    async def install(self, seckill: Seckill, allocations: dict[str, int]) -> dict[str, Any]:
        """Put a new seckill (already in SQL) into Redis and announce it to every room."""
        from livecommerce.models import Product

        async with self.app.db.read() as session:
            product = await session.get(Product, seckill.product_id)
        assert product is not None
        keys = SeckillKeys.of(seckill.id)
        settings = self.app.settings
        meta = {
            "id": seckill.id,
            "brand_room_id": seckill.room_id,
            "brand_id": seckill.brand_id,
            "product_id": seckill.product_id,
            "price": seckill.price_cents,
            "stock": seckill.stock,
            "limit": seckill.per_viewer_limit,
            "starts": to_ms(seckill.starts_at),
            "ends": to_ms(seckill.ends_at) if seckill.ends_at else 0,
            "ended": 0,
            "timeout_ms": settings.pay_timeout_s * 1000,
            "fee_bps": settings.platform_fee_bps,
            "dealer_bps": product.dealer_bps,
            "upline_bps": product.upline_bps,
            "allocations": json.dumps(allocations),
        }
        # meta last: a buy sees no seckill until its counters exist
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.pool, seckill.stock - sum(allocations.values()))
        if allocations:
            pipe.hset(keys.alloc, mapping=allocations)  # type: ignore[arg-type]
        pipe.hset(keys.meta, mapping=meta)  # type: ignore[arg-type]
        pipe.xgroup_create(keys.stream, "writer", id="0", mkstream=True)
        await pipe.execute()
        await self.redis.sadd(ALL_SET, seckill.id)
        await self.redis.sadd(ACTIVE_SET, seckill.id)
        await self.redis.sadd(room_seckills_key(seckill.room_id), seckill.id)
        info = await self.info(seckill.id)
        assert info is not None
        counters = await self.counters(seckill.id)
        await self.announcer.announce_state(info, counters)
        view = await self.view(seckill.id)
        assert view is not None
        return view

    async def end(self, seckill_id: str) -> None:
        """End a seckill early; reservations stay payable until they expire."""
        await self.redis.hset(SeckillKeys.of(seckill_id).meta, "ended", "1")
        info = await self.info(seckill_id)
        if info is not None:
            await self.announcer.announce_state(info, await self.counters(seckill_id))
        async with self.app.db.write() as session:
            row = await session.get(Seckill, seckill_id)
            if row is not None and row.ended_at is None:
                row.ended_at = from_ms(now_ms())
                session.add(row)

    async def end_room(self, brand_room_id: str) -> None:
        """The brand room ended: end its seckills that have not ended yet."""
        async with self.app.db.read() as session:
            rows = await session.exec(
                select(Seckill.id).where(
                    Seckill.room_id == brand_room_id,
                    Seckill.ended_at == None,  # noqa: E711
                )
            )
            ids = list(rows.all())
        for seckill_id in ids:
            await self.end(seckill_id)
