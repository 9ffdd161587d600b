"""The order pipeline: the order streams → SQL writer, takeover of a crashed consumer's entries,
reconciliation on start, the expiry sweeper, and payment.

Every change of an order is first decided in Redis by a seckill script, which appends a record
(reserve, paid, expired, cancelled, refund_due) to the seckill's order stream. The writer applies
those records to SQL idempotently, in batches, and acknowledges them only after the commit, so a
crash anywhere leaves entries pending for the next writer to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects import postgresql
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livecommerce import ledger, webhooks
from livecommerce.context import AppContext
from livecommerce.ids import new_id
from livecommerce.models import Order
from livecommerce.order_records import parse_record, record_order, record_row
from livecommerce.seckill import ALL_SET, SeckillEngine, SeckillKeys, text
from livecommerce.timeutil import from_ms, now_ms

log = logging.getLogger("livecommerce.orders")

GROUP = "writer"
READ_COUNT = 1000
WRITER_EVERY_S = 0.02  # streams this process appended to are read this soon
SCAN_ALL_EVERY_S = 1.0  # every stream (entries of other processes, a crashed one) this often
RECLAIM_EVERY_S = 5.0
RECLAIM_IDLE_MS = 15_000  # a pending entry this old belongs to a consumer that died
SWEEP_EVERY_S = 0.5
STOP_WAIT_S = 2.0
DRAIN_ON_STOP_S = 5.0
SETTLED = ("paid", "partially_refunded", "refunded")

Entry = tuple[str, bytes, dict[bytes, bytes]]  # (seckill id, entry id, fields)
ORDER_COLUMNS = tuple(column.name for column in Order.__table__.columns)  # type: ignore[attr-defined]
SQLITE_INSERT_ORDERS = (
    f'INSERT OR IGNORE INTO "order" ({", ".join(ORDER_COLUMNS)}) '
    f"VALUES ({', '.join('?' * len(ORDER_COLUMNS))})"
)


TIME_COLUMNS = tuple(index for index, name in enumerate(ORDER_COLUMNS) if name.endswith("_at"))


def sqlite_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """The row's values in column order, times as SQLAlchemy's SQLite DateTime stores them
    (UTC without a zone, ``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    values = list(map(row.__getitem__, ORDER_COLUMNS))
    for index in TIME_COLUMNS:
        moment: datetime | None = values[index]
        if moment is not None:
            values[index] = (
                moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            )
    return tuple(values)


@dataclass(frozen=True)
class PayOutcome:
    """paid | already_paid | expired | cancelled | refund_due | not_found, and the SQL row."""

    result: str
    order: Order | None


class OrderPipeline:
    def __init__(self, app: AppContext, engine: SeckillEngine) -> None:
        self.app = app
        self.engine = engine
        self.redis = app.redis
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{new_id()[-6:]}"
        self._tasks: list[asyncio.Task[None]] = []
        self._last_scan = 0.0

    async def start(self) -> None:
        """Take over every pending entry, drain the streams into SQL, reconcile, then keep
        writing and sweeping in the background."""
        for seckill_id in await self._seckill_ids():
            await self._take_over(seckill_id, min_idle_ms=0)
        while await self.write_round(poll_all=True):
            pass
        await self.reconcile()
        self._tasks = [
            asyncio.create_task(self._forever(self._write_loop, "order writer")),
            asyncio.create_task(self._forever(self._reclaim_loop, "order reclaim")),
            asyncio.create_task(self._forever(self._sweep_loop, "expiry sweeper")),
        ]

    async def stop(self) -> None:
        """Stop the loops, then drain what is already in the streams into SQL (bounded, so a
        dead Redis or database cannot hold up the shutdown; what is left stays pending for the
        next start to take over)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: a Redis call stuck on a dead connection must not block
            await asyncio.wait(self._tasks, timeout=STOP_WAIT_S)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(DRAIN_ON_STOP_S):
                while await self.write_round(poll_all=True):
                    pass

    async def _forever(self, body: Callable[[], Awaitable[None]], name: str) -> None:
        while True:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; retrying", name)
                await asyncio.sleep(1)

    async def _seckill_ids(self) -> list[str]:
        return sorted(text(raw) for raw in await self.redis.smembers(ALL_SET))

    # the writer ------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            if not await self.write_round():
                await asyncio.sleep(WRITER_EVERY_S)

    async def write_round(self, poll_all: bool = False) -> int:
        """Read this consumer's pending entries, then new ones, from the streams this process
        appended to (and every stream once a second); apply them to SQL in one transaction;
        acknowledge. Returns how many."""
        now = asyncio.get_running_loop().time()
        if poll_all or now - self._last_scan >= SCAN_ALL_EVERY_S:
            self._last_scan = now
            due = await self._seckill_ids()
            self.engine.touched.clear()
        else:
            due = sorted(self.engine.touched)
            self.engine.touched.clear()
        if not due:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for seckill_id in due:
            stream = SeckillKeys.of(seckill_id).stream
            pipe.xreadgroup(GROUP, self.consumer, {stream: "0"}, count=READ_COUNT)
            pipe.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=READ_COUNT)
        replies = await pipe.execute(raise_on_error=False)
        entries: list[Entry] = []
        for index, seckill_id in enumerate(due):
            got = 0
            for reply in replies[2 * index : 2 * index + 2]:
                if isinstance(reply, Exception):
                    if "NOGROUP" in str(reply):
                        await self._ensure_group(seckill_id)
                    continue
                for _stream, items in reply or []:
                    for entry_id, fields in items:
                        if fields:  # a deleted entry still pending comes back empty
                            entries.append((seckill_id, entry_id, fields))
                            got += 1
            if got:
                self.engine.touched.add(seckill_id)  # there may be more: read it again soon
        if entries:
            await self.apply(entries)
            await self._ack(entries)
        return len(entries)

    async def _ensure_group(self, seckill_id: str) -> None:
        with contextlib.suppress(Exception):
            stream = SeckillKeys.of(seckill_id).stream
            await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)

    async def _ack(self, entries: Sequence[Entry]) -> None:
        by_stream: dict[str, list[bytes]] = {}
        for seckill_id, entry_id, _ in entries:
            by_stream.setdefault(seckill_id, []).append(entry_id)
        pipe = self.redis.pipeline(transaction=False)
        for seckill_id, ids in by_stream.items():
            pipe.xack(SeckillKeys.of(seckill_id).stream, GROUP, *ids)
        await pipe.execute()

    async def apply(self, entries: Sequence[Entry]) -> None:
        """Apply stream records to SQL in one transaction: reservations inserted (never over a
        row that exists), then transitions in stream order, each only from an earlier status."""
        rows = [
            record_row(parse_record(f[b"r"])) for _, _, f in entries if f.get(b"t") == b"reserve"
        ]
        transitions = [f for _, _, f in entries if f.get(b"t") != b"reserve"]
        async with self.app.db.write() as session:
            if rows:
                await self._insert_missing(session, rows)
            for fields in transitions:
                await self._apply_transition(session, fields)
        self.app.metrics.orders_written.inc(len(entries))

    async def _insert_missing(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Insert order rows, leaving any that exist untouched (one statement, executemany)."""
        if self.app.db.is_sqlite:
            # straight to the driver: SQLAlchemy's per-row parameter processing was most of the
            # writer's time (docs/benchmarks.md, Order writer)
            connection = await session.connection()
            await connection.exec_driver_sql(SQLITE_INSERT_ORDERS, [sqlite_order(r) for r in rows])
            return
        statement = postgresql.insert(Order.__table__).on_conflict_do_nothing()  # type: ignore[attr-defined]
        await session.exec(statement, params=rows)

    async def _apply_transition(self, session: AsyncSession, fields: dict[bytes, bytes]) -> None:
        kind = text(fields.get(b"t"))
        order_id = text(fields.get(b"o"))
        if kind == "paid":
            await self._mark_paid(session, order_id, int(fields[b"ms"]), int(fields[b"a"]))
            return
        allowed = ("reserved",) if kind in ("expired", "cancelled") else (
            "reserved", "expired", "cancelled")  # fmt: skip
        result = await session.exec(
            update(Order)
            .where(col(Order.id) == order_id, col(Order.status).in_(allowed))
            .values(status=kind)
        )
        if kind == "expired" and result.rowcount:
            order = await session.get(Order, order_id)
            if order is not None:
                await webhooks.enqueue(session, order.brand_id, "order.expired", order)

    async def _row(self, session: AsyncSession, order_id: str) -> Order | None:
        """The SQL row, locked for this transaction; inserted from Redis when the writer has
        not saved it yet."""
        statement = select(Order).where(Order.id == order_id)
        if not self.app.db.is_sqlite:
            statement = statement.with_for_update()
        order = (await session.exec(statement)).first()
        if order is not None:
            return order
        found = await self.engine.order_in_redis(order_id)
        if found is None:
            return None
        # the writer may insert the same row at this moment: never collide with it
        await self._insert_missing(session, [record_row(found[0])])
        return (await session.exec(statement)).first()

    async def _mark_paid(
        self, session: AsyncSession, order_id: str, paid_ms: int, allocated: int
    ) -> Order | None:
        order = await self._row(session, order_id)
        if order is None or order.status in SETTLED:
            return order
        order.status = "paid"
        order.paid_at = from_ms(paid_ms)
        order.allocated_units = allocated
        session.add(order)
        await session.flush()
        await ledger.book_sale(session, order, self.app.settings)
        return order

    # takeover and reconciliation -------------------------------------------------------------

    async def _reclaim_loop(self) -> None:
        while True:
            await asyncio.sleep(RECLAIM_EVERY_S)
            for seckill_id in await self._seckill_ids():
                await self._take_over(seckill_id, RECLAIM_IDLE_MS)

    async def _take_over(self, seckill_id: str, min_idle_ms: int) -> None:
        """Claim pending entries of other consumers idle ≥ ``min_idle_ms``; the next write
        round reads them as this consumer's pending entries."""
        stream = SeckillKeys.of(seckill_id).stream
        start: bytes | str = "0-0"
        while True:
            try:
                reply = await self.redis.xautoclaim(
                    stream, GROUP, self.consumer, min_idle_ms, start, count=READ_COUNT
                )
            except Exception as exc:
                if "NOGROUP" in str(exc):
                    await self._ensure_group(seckill_id)
                    return
                raise
            start = reply[0]
            if text(start) in ("0-0", "0"):
                return

    async def reconcile(self) -> None:
        """After the drain: units SQL shows as held must be missing from Redis stock too. When
        Redis shows fewer sold (it lost writes), lower its pool; never raise stock from SQL."""
        held = func.sum(Order.qty - Order.refunded_qty)
        statement = (
            select(Order.seckill_id, held)
            .where(col(Order.status).in_(("reserved", "paid", "partially_refunded")))
            .group_by(col(Order.seckill_id))
        )
        async with self.app.db.read() as session:
            sql_held = {sid: int(units or 0) for sid, units in (await session.exec(statement))}
        for seckill_id, units in sql_held.items():
            info = await self.engine.info(seckill_id)
            if info is None:
                continue
            counters = await self.engine.counters(seckill_id)
            redis_sold = info.stock - counters.total
            if redis_sold < units:
                missing = min(units - redis_sold, counters.pool)
                log.warning("seckill %s: SQL holds %d units, Redis %d; pool lowered by %d",
                            seckill_id, units, redis_sold, missing)  # fmt: skip
                if missing > 0:
                    await self.redis.decrby(SeckillKeys.of(seckill_id).pool, missing)

    # expiry ----------------------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            await self.sweep()

    async def sweep(self) -> int:
        """Expire every reservation past its deadline; returns how many this call expired."""
        ids = await self._seckill_ids()
        pipe = self.redis.pipeline(transaction=False)
        now = now_ms()
        for seckill_id in ids:
            pipe.zrangebyscore(SeckillKeys.of(seckill_id).deadlines, "-inf", now, 0, 500)
        expired = 0
        for due in await pipe.execute():
            for order_id in due:
                if await self.engine.release(text(order_id), "expired") == "released":
                    expired += 1
        return expired

    # payment ---------------------------------------------------------------------------------

    async def pay_order(self, order_id: str, *, late: bool = False) -> PayOutcome:
        """Pay an order: Redis decides (one winner against cancel and expiry), then one SQL
        transaction records it with its ledger entries. ``late``: a provider's payment for an
        order that may have expired — paid if its units can be taken again, else refund_due."""
        code, paid_ms, allocated = await self.engine.pay(order_id, late)
        if code == "not_found":
            return PayOutcome("not_found", None)
        async with self.app.db.write() as session:
            if code in ("paid", "already_paid"):
                assert paid_ms is not None
                order = await self._mark_paid(session, order_id, paid_ms, allocated)
            else:
                order = await self._row(session, order_id)
                if code == "refund_due" and order is not None and order.status not in SETTLED:
                    order.status = "refund_due"
                    session.add(order)
        return PayOutcome(code, order)

    async def cancel(self, order_id: str) -> str:
        """The viewer's cancel: released | paid | expired | cancelled | refund_due | not_found."""
        return await self.engine.release(order_id, "cancelled")

    # reading ---------------------------------------------------------------------------------

    async def load(self, order_id: str) -> Order | None:
        """An order as it stands: the SQL row, with the Redis status while SQL still says
        reserved (the writer may not have applied a transition yet), else the Redis record."""
        async with self.app.db.read() as session:
            order = await session.get(Order, order_id)
        if order is not None and order.status != "reserved":
            return order
        found = await self.engine.order_in_redis(order_id)
        if found is None:
            return order
        record, status, paid_ms = found
        if order is None:
            return record_order(record, status, paid_ms)
        order.status = status
        order.paid_at = from_ms(paid_ms) if paid_ms is not None else order.paid_at
        return order


async def start_order_pipeline(app: AppContext, stack: contextlib.AsyncExitStack) -> None:
    """Start the seckill engine and the order pipeline; set ``app.seckills`` and ``app.orders``."""
    engine = SeckillEngine(app)
    await engine.start()
    stack.push_async_callback(engine.stop)
    pipeline = OrderPipeline(app, engine)
    await pipeline.start()
    stack.push_async_callback(pipeline.stop)
    app.seckills = engine
    app.orders = pipeline
