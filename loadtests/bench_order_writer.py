"""Order writer benchmark: how many reservations per second move from the order stream into
SQLite (read, one transaction per batch, ack), against a baseline of one INSERT + commit per
order. Target: ≥ 20,000 orders/s.

The reservations are made by the real seckill script (pipelined straight into Redis), the
writer is the app's own ``OrderPipeline.write_round``; Redis is the embedded redis-server.

    python loadtests/bench_order_writer.py [--quick] [--orders 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

from livecommerce.app import create_app
from livecommerce.context import AppContext
from livecommerce.ids import new_id
from livecommerce.models import Brand, Order, Product, Room, Seckill
from livecommerce.order_records import new_order_id, parse_record, record_order
from livecommerce.seckill import SeckillKeys
from livecommerce.settings import Settings
from livecommerce.timeutil import utcnow


async def make_seckill(app: AppContext, stock: int) -> tuple[str, str]:
    brand_id, room_id = new_id(), new_id()
    product = Product(id=new_id(), brand_id=brand_id, sku="B", title="B", price_cents=100,
                      dealer_bps=0)  # fmt: skip
    seckill = Seckill(id=new_id(), brand_id=brand_id, room_id=room_id, product_id=product.id,
                      price_cents=100, stock=stock, per_viewer_limit=stock,
                      starts_at=utcnow())  # fmt: skip
    async with app.db.write() as session:
        session.add(Brand(id=brand_id, name="B", token_hash="x"))
        session.add(product)
        session.add(Room(id=room_id, kind="brand", brand_id=brand_id, title="R", status="live"))
        session.add(seckill)
    assert app.seckills is not None
    await app.seckills.install(seckill, {})
    return seckill.id, room_id


async def fill_stream(app: AppContext, seckill_id: str, room_id: str, count: int) -> None:
    """``count`` reservations through the real buy script, 1000 per pipeline."""
    assert app.seckills is not None
    script = app.seckills.buy_script
    keys = SeckillKeys.of(seckill_id).buy
    for start in range(0, count, 1000):
        pipe = app.redis.pipeline(transaction=False)
        for n in range(start, min(count, start + 1000)):
            pipe.evalsha(script.sha, len(keys), *keys, f"viewer{n % 5000}", f"r{n}", room_id, 1,
                         new_order_id(new_id(), seckill_id), "", "")  # fmt: skip
        await pipe.execute()


async def writer(app: AppContext, count: int) -> float:
    assert app.orders is not None
    seckill_id, room_id = await make_seckill(app, count)
    await fill_stream(app, seckill_id, room_id, count)
    started = time.perf_counter()
    written = 0
    while written < count:
        got = await app.orders.write_round(poll_all=True)
        assert got, "the stream ran dry before every reservation was written"
        written += got
    return count / (time.perf_counter() - started)


async def baseline(app: AppContext, count: int) -> float:
    """One INSERT and one commit per order, the same rows."""
    seckill_id, room_id = await make_seckill(app, count)
    await fill_stream(app, seckill_id, room_id, count)
    raw = await app.redis.hvals(SeckillKeys.of(seckill_id).orders)
    orders = [record_order(parse_record(item)) for item in raw]
    started = time.perf_counter()
    for order in orders:
        async with app.db.write() as session:
            session.add(Order(**order.model_dump()))
    return count / (time.perf_counter() - started)


async def run(count: int, baseline_count: int) -> dict[str, object]:
    async with AsyncExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lc-bench-")))
        app = create_app(Settings(data_dir=data_dir))
        await stack.enter_async_context(app.router.lifespan_context(app))
        context: AppContext = app.state.lc
        assert context.orders is not None
        await context.orders.stop()  # this benchmark drives the writer itself
        ours = await writer(context, count)
        single = await baseline(context, baseline_count)
    return {
        "orders": count,
        "writer_orders_per_s": round(ours),
        "baseline_orders": baseline_count,
        "baseline_orders_per_s": round(single),
        "ratio": round(ours / single, 1),
        "target_met": ours >= 20_000,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 orders")
    parser.add_argument("--orders", type=int, default=50_000)
    args = parser.parse_args()
    count = 10_000 if args.quick else args.orders
    print(json.dumps(asyncio.run(run(count, min(2000, count))), indent=2))


if __name__ == "__main__":
    main()
