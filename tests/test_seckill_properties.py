"""Invariants of the seckill engine under random interleavings, driving its Python API in
process against a real redis-server (embedded, started by the app's own lifespan) and SQLite.

Whatever mix of buys (concurrent, repeated, over the limit, across allocated and plain rooms),
expiries, cancels, payments and refunds: sold + left == stock, nobody holds more than the limit,
no allocation goes below zero or is overdrawn, and each request id maps to one order.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecommerce.app import create_app
from livecommerce.auth import make_token
from livecommerce.context import AppContext
from livecommerce.ids import new_id
from livecommerce.models import Brand, Dealer, Product, Room, Seckill, Viewer
from livecommerce.order_records import record_order
from livecommerce.seckill import SeckillEngine, SeckillKeys
from livecommerce.settings import Settings
from livecommerce.timeutil import utcnow

VIEWERS = 5
ROOMS = 4  # the brand room and three mirrors


@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    app: AppContext
    brand_id: str
    product_id: str
    room_ids: list[str]  # [brand room, mirror, mirror, mirror]
    viewer_ids: list[str]

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    @property
    def engine(self) -> SeckillEngine:
        assert self.app.seckills is not None
        return self.app.seckills


async def _build(stack: AsyncExitStack, data_dir: Path) -> tuple[AppContext, list[str]]:
    app = create_app(Settings(data_dir=data_dir, pay_timeout_s=900, platform_fee_bps=100))
    await stack.enter_async_context(app.router.lifespan_context(app))
    context: AppContext = app.state.lc
    brand_id, dealer_id, room_id = new_id(), new_id(), new_id()
    async with context.db.write() as session:
        session.add(Brand(id=brand_id, name="B", token_hash=make_token("brand", brand_id)[1]))
        session.add(Dealer(id=dealer_id, name="D", token_hash="x"))
        product = Product(id=new_id(), brand_id=brand_id, sku="S", title="T", price_cents=100,
                          dealer_bps=1000, upline_bps=0)  # fmt: skip
        session.add(product)
        session.add(Room(id=room_id, kind="brand", brand_id=brand_id, title="R", status="live"))
        mirrors = [new_id() for _ in range(ROOMS - 1)]
        for mirror in mirrors:
            session.add(Room(id=mirror, kind="dealer", brand_id=brand_id, dealer_id=dealer_id,
                             brand_room_id=room_id, title="M"))  # fmt: skip
        viewers = [new_id() for _ in range(VIEWERS)]
        for viewer in viewers:
            session.add(Viewer(id=viewer, token_hash="x"))
    return context, [brand_id, product.id, room_id, *mirrors, *viewers]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    loop = asyncio.new_event_loop()
    stack = AsyncExitStack()
    with tempfile.TemporaryDirectory(prefix="lc-prop-") as tmp:
        try:
            app, ids = loop.run_until_complete(_build(stack, Path(tmp)))
            yield World(loop, app, ids[0], ids[1], ids[2 : 2 + ROOMS], ids[2 + ROOMS :])
        finally:
            loop.run_until_complete(stack.aclose())
            loop.close()


async def new_seckill(w: World, stock: int, limit: int, allocations: dict[str, int]) -> str:
    seckill = Seckill(id=new_id(), brand_id=w.brand_id, room_id=w.room_ids[0],
                      product_id=w.product_id, price_cents=100, stock=stock,
                      per_viewer_limit=limit, starts_at=utcnow())  # fmt: skip
    async with w.app.db.write() as session:
        session.add(seckill)
    await w.engine.install(seckill, allocations)
    return seckill.id


@dataclass
class Model:
    """What the test saw, to check the engine against."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> the order view
    seen: list[tuple[str, tuple[str, str], str, int]] = field(default_factory=list)
    returned: dict[str, int] = field(default_factory=dict)  # refunded units given back


buy_op = st.tuples(st.just("buy"), st.integers(0, VIEWERS - 1), st.integers(0, ROOMS - 1),
                   st.integers(1, 4), st.integers(0, 5))  # fmt: skip
burst_op = st.tuples(st.just("burst"), st.lists(buy_op, min_size=2, max_size=12))
order_op = st.tuples(st.sampled_from(["expire", "cancel", "pay"]), st.integers(0, 50))
refund_op = st.tuples(st.just("refund"), st.integers(0, 50), st.integers(1, 3), st.booleans())
program = st.lists(st.one_of(buy_op, burst_op, order_op, refund_op), min_size=1, max_size=30)


async def do_buy(w: World, m: Model, sk: str, op: tuple[Any, ...]) -> None:
    _, viewer, room, qty, request = op
    key = (w.viewer_ids[viewer], f"req-{request}")
    try:
        result = await w.engine.buy(key[0], sk, w.room_ids[room], qty, key[1])
    except Exception as exc:  # the same request id with another room or qty: 422
        assert getattr(exc, "status", None) == 422, exc
        m.seen.append(("conflict", key, w.room_ids[room], qty))
        return
    assert result.code in ("ok", "duplicate", "sold_out", "limit_exceeded"), result.code
    if result.order is None:
        return
    m.seen.append((result.code, key, result.order["id"], qty))
    if result.code == "ok":
        m.orders[result.order["id"]] = result.order


def check_requests(m: Model) -> None:
    """Each request id reserved once; every repeat answered that order, or 422 when it asked
    for another room or qty (checked after the fact: concurrent replies arrive in any order)."""
    first: dict[tuple[str, str], str] = {}
    for code, key, order_id, _ in m.seen:
        if code == "ok":
            assert key not in first, key
            first[key] = order_id
    for code, key, value, qty in m.seen:
        if code == "duplicate":
            assert first[key] == value
        elif code == "conflict":
            order = m.orders[first[key]]
            assert (order["room_id"], order["qty"]) != (value, qty)


async def run_program(w: World, m: Model, sk: str, ops: list[tuple[Any, ...]]) -> None:
    assert w.app.orders is not None
    for op in ops:
        ids = sorted(m.orders)
        if op[0] == "buy":
            await do_buy(w, m, sk, op)
        elif op[0] == "burst":
            await asyncio.gather(*(do_buy(w, m, sk, inner) for inner in op[1]))
        elif not ids:
            continue
        elif op[0] == "expire":
            order_id = ids[op[1] % len(ids)]
            await w.app.redis.zadd(SeckillKeys.of(sk).deadlines, {order_id: 0}, xx=True)
            await w.engine.release(order_id, "expired")
        elif op[0] == "cancel":
            await w.app.orders.cancel(ids[op[1] % len(ids)])
        elif op[0] == "pay":
            await w.app.orders.pay_order(ids[op[1] % len(ids)])
        elif op[0] == "refund":
            order_id = ids[op[1] % len(ids)]
            found = await w.engine.order_in_redis(order_id)
            assert found is not None
            record, status, _ = found
            left = int(record["qty"]) - m.returned.get(order_id, 0)
            if status != "paid" or left <= 0:
                continue
            qty = min(op[2], left)
            refund_id = new_id()
            order = record_order(record, status)
            await w.engine.return_units(order, qty, refund_id)
            if op[3]:  # the ledger retrying the same refund changes nothing
                await w.engine.return_units(order, qty, refund_id)
            m.returned[order_id] = m.returned.get(order_id, 0) + qty


async def check(w: World, m: Model, sk: str, stock: int, limit: int, alloc: dict[str, int]) -> None:
    statuses = await w.engine.statuses(sorted(m.orders))
    counters = await w.engine.counters(sk)
    held_by_viewer: dict[str, int] = {}
    held_by_room_alloc: dict[str, int] = {}
    sold = 0
    for order_id, order in m.orders.items():
        if statuses[order_id] not in ("reserved", "paid"):
            continue
        units = order["qty"] - m.returned.get(order_id, 0)
        sold += units
        held_by_viewer[order["viewer_id"]] = held_by_viewer.get(order["viewer_id"], 0) + units
        drawn = int(await w.app.redis.hget(SeckillKeys.of(sk).allocd, order_id) or 0)
        held_by_room_alloc[order["room_id"]] = held_by_room_alloc.get(order["room_id"], 0) + drawn
    assert sold + counters.total == stock, (sold, counters)
    assert counters.pool >= 0 and all(v >= 0 for v in counters.allocations.values())
    for room_id, units in alloc.items():
        assert counters.allocations[room_id] + held_by_room_alloc.get(room_id, 0) == units
    in_redis = await w.app.redis.hgetall(SeckillKeys.of(sk).viewers)
    for viewer_id in w.viewer_ids:
        counted = int(in_redis.get(viewer_id.encode(), 0))
        assert counted == held_by_viewer.get(viewer_id, 0) <= limit


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    stock=st.integers(1, 25),
    limit=st.integers(1, 5),
    allocated=st.lists(st.integers(1, 6), max_size=ROOMS - 1),
    ops=program,
)
def test_random_interleavings_keep_the_invariants(
    world: World, stock: int, limit: int, allocated: list[int], ops: list[tuple[Any, ...]]
) -> None:
    alloc: dict[str, int] = {}
    for room_id, units in zip(world.room_ids[1:], allocated, strict=False):
        if sum(alloc.values()) + units <= stock:
            alloc[room_id] = units
    sk = world.run(new_seckill(world, stock, limit, alloc))
    model = Model()
    world.run(run_program(world, model, sk, ops))
    world.run(check(world, model, sk, stock, limit, alloc))
    check_requests(model)


def test_late_payment_retakes_units_or_marks_refund_due(world: World) -> None:
    async def scenario() -> None:
        assert world.app.orders is not None
        sk = await new_seckill(world, stock=1, limit=1, allocations={})
        first, second = world.viewer_ids[0], world.viewer_ids[1]
        order = (await world.engine.buy(first, sk, world.room_ids[0], 1, "a")).order
        assert order is not None
        await world.app.redis.zadd(SeckillKeys.of(sk).deadlines, {order["id"]: 0}, xx=True)
        assert (await world.app.orders.pay_order(order["id"])).result == "expired"
        assert await world.engine.release(order["id"], "expired") == "released"
        late = await world.app.orders.pay_order(order["id"], late=True)
        assert late.result == "paid" and late.order is not None and late.order.status == "paid"
        assert (await world.engine.counters(sk)).total == 0  # the unit was taken again
        again = await world.app.orders.pay_order(order["id"], late=True)
        assert again.result == "already_paid"

        sk = await new_seckill(world, stock=1, limit=1, allocations={})
        lost = (await world.engine.buy(first, sk, world.room_ids[1], 1, "b")).order
        assert lost is not None
        assert await world.engine.release(lost["id"], "cancelled") == "released"
        taken = await world.engine.buy(second, sk, world.room_ids[1], 1, "c")
        assert taken.code == "ok"
        due = await world.app.orders.pay_order(lost["id"], late=True)
        assert due.result == "refund_due" and due.order is not None
        assert due.order.status == "refund_due"
        assert (await world.engine.counters(sk)).total == 0  # nothing oversold
        assert (await world.app.orders.pay_order("nope", late=True)).result == "not_found"

    world.run(scenario())


def test_writer_puts_every_reservation_in_sql_once(world: World) -> None:
    async def scenario() -> None:
        assert world.app.orders is not None
        sk = await new_seckill(world, stock=50, limit=50, allocations={})
        results = await asyncio.gather(*(
            world.engine.buy(world.viewer_ids[i % VIEWERS], sk, world.room_ids[i % 30 % ROOMS],
                             1, f"w{i % 30}")
            for i in range(60)
        ))  # fmt: skip
        ids = {r.order["id"] for r in results if r.order is not None}
        await world.app.orders.write_round(poll_all=True)
        await world.app.orders.write_round(poll_all=True)
        from sqlmodel import select

        from livecommerce.models import Order

        async with world.app.db.read() as session:
            rows = (await session.exec(select(Order).where(Order.seckill_id == sk))).all()
        assert sorted(r.id for r in rows) == sorted(ids)
        assert sum(r.qty for r in rows) == 50 - (await world.engine.counters(sk)).total

    world.run(scenario())
