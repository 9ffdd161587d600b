"""The ledger in a real SQLite database: random orders, payments, partial and full refunds and
payouts, then the books are checked — per order, per party, per statement period — and the
table is shown to refuse UPDATE and DELETE."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import select

from livecommerce import ledger
from livecommerce.db import Database
from livecommerce.models import Brand, LedgerEntry, Order
from livecommerce.settings import Settings

START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# (dealer, upline) of the room an order is placed in: the brand room, a dealer without an
# upline, a dealer under an upline
ROOMS = [(None, None), ("d1", None), ("d2", "d0")]
PARTIES = ["platform", "brand:b1", "dealer:d0", "dealer:d1", "dealer:d2"]

Op = tuple[str, int, int, int, int]
operation = st.one_of(
    st.tuples(st.just("order"), st.integers(0, 2), st.integers(1, 5), st.integers(1, 50_000),
              st.integers(0, 2)),
    st.tuples(st.just("refund"), st.integers(0, 50), st.integers(0, 5), st.just(0),
              st.integers(0, 2)),
    st.tuples(st.just("payout"), st.integers(0, 4), st.just(0), st.just(0), st.integers(0, 2)),
)  # fmt: skip


def make_order(index: int, room: int, qty: int, price: int, paid_at: datetime) -> Order:
    dealer_id, upline_id = ROOMS[room]
    return Order(
        id=f"o{index:04d}",
        seckill_id="s1",
        room_id=f"r{room}",
        brand_room_id="r0",
        brand_id="b1",
        dealer_id=dealer_id,
        upline_id=upline_id,
        viewer_id="v1",
        product_id="p1",
        qty=qty,
        unit_price_cents=price,
        amount_cents=qty * price,
        status="paid",
        request_id=f"q{index}",
        platform_fee_bps=250,
        dealer_bps=1500,
        upline_bps=300,
        expires_at=paid_at,
        created_at=paid_at,
        paid_at=paid_at,
    )


async def run_scenario(db: Database, config: Settings, ops: list[Op]) -> datetime:
    """Apply ``ops`` on a simulated clock; returns the clock at the end."""
    now = START
    orders: list[Order] = []
    async with db.write() as session:
        session.add(Brand(id="b1", name="Brand", token_hash="x"))
    for kind, a, b, c, days in ops:
        now += timedelta(days=days, minutes=7)
        async with db.write() as session:
            if kind == "order":
                order = make_order(len(orders), a, b, c, now)
                session.add(order)
                await ledger.book_sale(session, order, config)
                orders.append(order)
            elif kind == "refund" and orders:
                stored = await session.get(Order, orders[a % len(orders)].id)
                assert stored is not None
                left = stored.qty - stored.refunded_qty
                if left:
                    await ledger.refund(session, stored, min(b, left) or left, now)
            elif kind == "payout":
                await ledger.pay_out(session, PARTIES[a], now)
    return now


def statement_rows(csv_text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(csv_text)))


async def check_books(db: Database, end: datetime) -> None:
    async with db.read() as session:
        entries = (await session.exec(select(LedgerEntry))).all()
        orders = (await session.exec(select(Order))).all()
        for order in orders:
            parts = [e.amount_cents for e in entries if e.order_id == order.id]
            assert sum(parts) == (order.qty - order.refunded_qty) * order.unit_price_cents
            sales = [e for e in entries if e.order_id == order.id and e.kind == "sale"]
            assert all(e.amount_cents > 0 for e in sales)
            roles = {e.role for e in sales}
            if order.dealer_id is None:
                assert not roles & {"dealer", "upline"}
            if order.upline_id is None:
                assert "upline" not in roles
        assert all(e.amount_cents != 0 for e in entries)
        for party in PARTIES:
            mine = [e for e in entries if e.party == party]
            balance = await ledger.balance(session, party, end)
            assert balance.balance_cents == sum(e.amount_cents for e in mine)
            available = sum(
                e.amount_cents for e in mine if e.available_at.replace(tzinfo=UTC) <= end
            )
            assert balance.available_cents == available
            # statements over consecutive periods chain: each closing is the next opening
            cuts = [None, date(2026, 11, 5), date(2026, 11, 20), date(2027, 1, 1), None]
            closing_before = 0
            for start, stop in itertools.pairwise(cuts):
                last = None if stop is None else stop - timedelta(days=1)
                rows = statement_rows(await ledger.statement_csv(session, party, start, last))
                assert rows[0]["kind"] == "opening" and rows[-1]["kind"] == "closing"
                opening = int(rows[0]["balance_cents"])
                assert opening == closing_before
                running = opening
                for row in rows[1:-1]:
                    running += int(row["amount_cents"])
                    assert int(row["balance_cents"]) == running
                closing_before = int(rows[-1]["balance_cents"])
                assert closing_before == running
            assert closing_before == balance.balance_cents


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=30), st.sampled_from([0, 0, 3]))
def test_random_orders_refunds_and_payouts_keep_the_books_exact(
    ops: list[Op], freeze_days: int
) -> None:
    with tempfile.TemporaryDirectory(prefix="lc-ledger-") as tmp:
        config = Settings(data_dir=Path(tmp), freeze_days=freeze_days)

        async def scenario() -> None:
            db = Database(config)
            try:
                await db.create_schema()
                end = await run_scenario(db, config, ops)
                await check_books(db, end)
            finally:
                await db.close()

        asyncio.run(scenario())


def test_payout_moves_only_the_available_balance_and_a_later_refund_goes_negative() -> None:
    with tempfile.TemporaryDirectory(prefix="lc-ledger-") as tmp:
        config = Settings(data_dir=Path(tmp), freeze_days=7)

        async def scenario() -> None:
            db = Database(config)
            await db.create_schema()
            try:
                async with db.write() as session:
                    session.add(Brand(id="b1", name="Brand", token_hash="x"))
                    old = make_order(1, 1, 2, 1000, START)  # dealer d1: 15% = 300
                    new = make_order(2, 1, 1, 1000, START + timedelta(days=6))
                    session.add_all([old, new])
                    await ledger.book_sale(session, old, config)
                    await ledger.book_sale(session, new, config)
                day8 = START + timedelta(days=8)
                async with db.write() as session:
                    entry = await ledger.pay_out(session, "dealer:d1", day8)
                    assert entry is not None and entry.amount_cents == -300
                    assert await ledger.pay_out(session, "dealer:d1", day8) is None
                async with db.write() as session:
                    order = await session.get(Order, old.id)
                    assert order is not None
                    await ledger.refund(session, order, 2, day8)
                async with db.read() as session:
                    balance = await ledger.balance(session, "dealer:d1", day8)
                # 300 sold and paid out, 300 reversed (clawback), 150 still pending
                assert balance.balance_cents == -150
                assert balance.available_cents == -300
                assert balance.pending_cents == 150
            finally:
                await db.close()

        asyncio.run(scenario())


def test_ledger_rows_cannot_be_updated_or_deleted() -> None:
    with tempfile.TemporaryDirectory(prefix="lc-ledger-") as tmp:
        config = Settings(data_dir=Path(tmp))

        async def scenario() -> None:
            db = Database(config)
            await db.create_schema()
            try:
                async with db.write() as session:
                    session.add(Brand(id="b1", name="Brand", token_hash="x"))
                    order = make_order(1, 2, 1, 1000, START)
                    session.add(order)
                    await ledger.book_sale(session, order, config)
                for statement in (
                    "UPDATE ledgerentry SET amount_cents = amount_cents + 1",
                    "DELETE FROM ledgerentry",
                ):
                    with pytest.raises(Exception, match="append-only"):
                        async with db.write() as session:
                            await session.exec(text(statement))  # type: ignore[call-overload]
                async with db.read() as session:
                    entries = (await session.exec(select(LedgerEntry))).all()
                assert sum(e.amount_cents for e in entries) == 1000
            finally:
                await db.close()

        asyncio.run(scenario())
