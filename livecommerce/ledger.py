"""The ledger in SQL: sale entries on payment, reversal entries on refund, payout entries, and
balances and statements read back from them.

Entries are only ever inserted (the database refuses UPDATE and DELETE on the table). Each
function here runs inside the caller's write transaction, so an entry is written together with
the status change that causes it or not at all.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, text
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livecommerce import webhooks
from livecommerce.commission import Rates, split_refund, split_sale
from livecommerce.ids import new_id
from livecommerce.models import LedgerEntry, Order, Payout
from livecommerce.settings import Settings
from livecommerce.timeutil import as_utc, iso, utcnow

ONE_DAY = timedelta(days=1)
PAYOUT_ROLE = {"platform": "platform", "brand": "brand", "dealer": "dealer"}


def brand_party(brand_id: str) -> str:
    return f"brand:{brand_id}"


def dealer_party(dealer_id: str) -> str:
    return f"dealer:{dealer_id}"


def order_rates(order: Order) -> Rates:
    """The rates frozen on ``order``: no dealer in a brand room, no upline without one."""
    has_dealer = order.dealer_id is not None
    return Rates(
        platform_bps=order.platform_fee_bps,
        dealer_bps=order.dealer_bps if has_dealer else None,
        upline_bps=order.upline_bps if has_dealer and order.upline_id is not None else None,
    )


def role_parties(order: Order) -> dict[str, str]:
    parties = {"platform": "platform", "brand": brand_party(order.brand_id)}
    if order.dealer_id is not None:
        parties["dealer"] = dealer_party(order.dealer_id)
        if order.upline_id is not None:
            parties["upline"] = dealer_party(order.upline_id)
    return parties


def entry_view(entry: LedgerEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "order_id": entry.order_id,
        "room_id": entry.room_id,
        "party": entry.party,
        "role": entry.role,
        "kind": entry.kind,
        "rate_bps": entry.rate_bps,
        "base_cents": entry.base_cents,
        "amount_cents": entry.amount_cents,
        "available_at": iso(entry.available_at),
        "created_at": iso(entry.created_at),
    }


async def book_sale(session: AsyncSession, order: Order, settings: Settings) -> list[LedgerEntry]:
    """Write the sale entries of a just-paid ``order`` and enqueue its ``order.paid`` webhook.

    Called inside the transaction that marks the order paid. Splits ``unit price × qty`` with
    the rates frozen on the order; 0-cent shares get no entry. Entries become available
    ``FREEZE_DAYS`` after the payment.
    """
    paid_at = as_utc(order.paid_at) if order.paid_at is not None else utcnow()
    amount = order.unit_price_cents * order.qty
    rates = order_rates(order)
    role_rates = rates.of()
    parties = role_parties(order)
    available_at = paid_at + timedelta(days=settings.freeze_days)
    entries = [
        LedgerEntry(
            id=new_id(),
            order_id=order.id,
            room_id=order.room_id,
            party=parties[role],
            role=role,
            kind="sale",
            rate_bps=role_rates[role],
            base_cents=amount,
            amount_cents=share,
            available_at=available_at,
            created_at=paid_at,
        )
        for role, share in split_sale(amount, rates).items()
        if share > 0
    ]
    session.add_all(entries)
    await webhooks.enqueue(session, order.brand_id, "order.paid", order)
    return entries


async def order_entries(session: AsyncSession, order_id: str) -> Sequence[LedgerEntry]:
    statement = select(LedgerEntry).where(LedgerEntry.order_id == order_id)
    return (await session.exec(statement.order_by(col(LedgerEntry.id)))).all()


async def book_refund(
    session: AsyncSession, order: Order, k: int, now: datetime | None = None
) -> list[LedgerEntry]:
    """Write the reversal entries of refunding ``k`` more units of ``order`` (not yet counted
    in ``order.refunded_qty``). They sum to ``-k × unit price``, or to nothing when the order
    was never booked (a ``refund_due`` payment). A reversal of a still-frozen sale stays
    frozen until the sale would have become available, so it cancels pending money first."""
    now = now or utcnow()
    sale: dict[str, int] = {}
    reversed_so_far: dict[str, int] = {}
    sale_entry: dict[str, LedgerEntry] = {}
    for entry in await order_entries(session, order.id):
        if entry.kind == "sale":
            sale[entry.role] = sale.get(entry.role, 0) + entry.amount_cents
            sale_entry[entry.role] = entry
        elif entry.kind == "reversal":
            reversed_so_far[entry.role] = reversed_so_far.get(entry.role, 0) - entry.amount_cents
    if not sale:
        return []
    back = split_refund(
        sale, reversed_so_far, order.qty, order.refunded_qty, k, order.unit_price_cents
    )
    entries = []
    for role, amount in back.items():
        if amount <= 0:
            continue
        booked = sale_entry[role]
        entries.append(
            LedgerEntry(
                id=new_id(),
                order_id=order.id,
                room_id=order.room_id,
                party=booked.party,
                role=role,
                kind="reversal",
                rate_bps=booked.rate_bps,
                base_cents=k * order.unit_price_cents,
                amount_cents=-amount,
                available_at=max(as_utc(booked.available_at), now),
                created_at=now,
            )
        )
    session.add_all(entries)
    return entries


@dataclass(frozen=True)
class Balance:
    party: str
    balance_cents: int
    available_cents: int

    @property
    def pending_cents(self) -> int:
        return self.balance_cents - self.available_cents

    def view(self) -> dict[str, object]:
        return {
            "party": self.party,
            "balance_cents": self.balance_cents,
            "available_cents": self.available_cents,
            "pending_cents": self.pending_cents,
        }


async def lock_party(session: AsyncSession, party: str) -> None:
    """Serialize balance-changing writes of one party. SQLite writes are serialized already;
    Postgres takes a transaction-scoped advisory lock on the party."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        await session.exec(  # type: ignore[call-overload]
            text("SELECT pg_advisory_xact_lock(hashtext(:party))").bindparams(party=party)
        )


async def balance(session: AsyncSession, party: str, now: datetime | None = None) -> Balance:
    """A party's balance: the sum of its entries; available = those whose time has come."""
    now = now or utcnow()
    total = func.coalesce(func.sum(LedgerEntry.amount_cents), 0)
    where = LedgerEntry.party == party
    balance_cents = (await session.exec(select(total).where(where))).one()
    available = select(total).where(where, col(LedgerEntry.available_at) <= now)
    available_cents = (await session.exec(available)).one()
    return Balance(party, int(balance_cents), int(available_cents))


def payout_role(party: str) -> str:
    return PAYOUT_ROLE[party.partition(":")[0]]


async def refund(
    session: AsyncSession, order: Order, k: int, now: datetime | None = None
) -> list[LedgerEntry]:
    """Refund ``k`` more units of a paid ``order``: reversal entries, the order's refunded
    quantity and status, and its ``order.refunded`` webhook, all in the caller's transaction."""
    entries = await book_refund(session, order, k, now)
    order.refunded_qty += k
    order.status = "refunded" if order.refunded_qty == order.qty else "partially_refunded"
    session.add(order)
    await webhooks.enqueue(session, order.brand_id, "order.refunded", order)
    return entries


async def pay_out(
    session: AsyncSession, party: str, now: datetime | None = None
) -> LedgerEntry | None:
    """Move the party's whole available balance out: a negative ``payout`` entry and a
    ``Payout`` row. ``None`` when nothing is available."""
    now = now or utcnow()
    await lock_party(session, party)
    available = (await balance(session, party, now)).available_cents
    if available <= 0:
        return None
    entry = book_payout(party, available, now)
    session.add(entry)
    session.add(Payout(id=new_id(), party=party, amount_cents=available, entry_id=entry.id,
                       created_at=now))  # fmt: skip
    return entry


def book_payout(party: str, amount_cents: int, now: datetime) -> LedgerEntry:
    """A negative ``payout`` entry moving ``amount_cents`` of available money out."""
    entry = LedgerEntry(
        id=new_id(),
        party=party,
        role=payout_role(party),
        kind="payout",
        rate_bps=0,
        base_cents=amount_cents,
        amount_cents=-amount_cents,
        available_at=now,
        created_at=now,
    )
    return entry


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


STATEMENT_COLUMNS = [
    "date", "kind", "role", "order_id", "room_id", "rate_bps", "base_cents", "amount_cents",
    "balance_cents",
]  # fmt: skip


async def statement_csv(
    session: AsyncSession, party: str, start: date | None, end: date | None
) -> str:
    """The party's statement from ``start`` to ``end`` (UTC dates, inclusive): an ``opening``
    row (the balance before ``start``), one row per entry with the running balance, and a
    ``closing`` row. Opening and closing rows carry their balance in both amount columns."""
    where: list[ColumnElement[bool]] = [col(LedgerEntry.party) == party]
    opening = 0
    if start is not None:
        before = select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
            LedgerEntry.party == party, col(LedgerEntry.created_at) < day_start(start)
        )
        opening = int((await session.exec(before)).one())
        where.append(col(LedgerEntry.created_at) >= day_start(start))
    if end is not None:
        where.append(col(LedgerEntry.created_at) < day_start(end + timedelta(days=1)))
    statement = select(LedgerEntry).where(*where)
    entries = (
        await session.exec(statement.order_by(col(LedgerEntry.created_at), col(LedgerEntry.id)))
    ).all()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(STATEMENT_COLUMNS)
    writer.writerow([start.isoformat() if start else "", "opening", "", "", "", "", "",
                     opening, opening])  # fmt: skip
    running = opening
    for entry in entries:
        running += entry.amount_cents
        writer.writerow([iso(entry.created_at), entry.kind, entry.role, entry.order_id or "",
                         entry.room_id or "", entry.rate_bps, entry.base_cents,
                         entry.amount_cents, running])  # fmt: skip
    writer.writerow([end.isoformat() if end else "", "closing", "", "", "", "", "",
                     running, running])  # fmt: skip
    return out.getvalue()
