"""Money calls: paying (dev payment and the provider's webhook), refunds, the ledger, balances,
statements and payouts. The arithmetic lives in ``commission.py``, the SQL in ``ledger.py``."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import StringConstraints
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from livecommerce import ledger
from livecommerce.api import ApiRoute, json_response
from livecommerce.auth import Principal
from livecommerce.context import AppContext, ctx
from livecommerce.errors import conflict, forbidden, invalid, not_found
from livecommerce.idempotency import idempotency_key, run_once
from livecommerce.ids import new_id
from livecommerce.listing import keyset_page
from livecommerce.models import Brand, Dealer, LedgerEntry, Order, Room
from livecommerce.payments import find_order_view, pay_dev, receive_payment_webhook
from livecommerce.validation import Qty, StrictBody, parse_body
from livecommerce.views import order_view

PARTY = re.compile(r"^(platform|(brand|dealer):[0-9A-Za-z_-]{1,64})$")
PartyText = Annotated[str, StringConstraints(pattern=PARTY.pattern)]
UNPAID = ("reserved", "expired", "cancelled")


class RefundBody(StrictBody):
    qty: Qty | None = None


class PayoutBody(StrictBody):
    party: PartyText


def parse_party(text: str | None) -> str:
    if text is None or not PARTY.match(text):
        raise invalid("a party is 'platform', 'brand:<id>' or 'dealer:<id>'")
    return text


def may_read_party(principal: Principal, party: str) -> bool:
    return principal.role == "admin" or principal.party == party


async def require_party_exists(session: AsyncSession, party: str) -> None:
    kind, _, party_id = party.partition(":")
    if kind == "brand" and await session.get(Brand, party_id) is None:
        raise not_found("brand")
    if kind == "dealer" and await session.get(Dealer, party_id) is None:
        raise not_found("dealer")


def query_date(request: Request, name: str) -> date | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise invalid(f"?{name}= must be a UTC date such as 2026-11-22") from None


def date_range(request: Request) -> tuple[date | None, date | None]:
    start, end = query_date(request, "from"), query_date(request, "to")
    if start is not None and end is not None and end < start:
        raise invalid("?to= is before ?from=")
    return start, end


async def pay_order(request: Request) -> Response:
    app = ctx(request)
    if not app.settings.dev_payments:
        raise not_found("route")
    principal = await app.auth.require(request, "viewer")
    return json_response(await pay_dev(app, principal, request.path_params["order_id"]))


async def payment_webhook(request: Request) -> Response:
    app = ctx(request)
    status, body = await receive_payment_webhook(app, request)
    return json_response(body, status)


async def refund_order(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    order_id = request.path_params["order_id"]
    body = await parse_body(request, RefundBody)
    key = idempotency_key(request)

    async def work(session: AsyncSession) -> tuple[int, Any]:
        return 200, await _refund(app, session, principal, order_id, body.qty)

    answer = await run_once(app.db, f"refund:{principal.party}:{order_id}", key, work)
    refund = answer.body.get("refund", {})
    if not answer.replayed and refund.get("returns_units") and app.seckills is not None:
        async with app.db.read() as session:
            order = await session.get(Order, order_id)
        if order is not None:
            await app.seckills.return_units(order, refund["qty"], refund_id=refund["id"])
    return json_response(answer.body, answer.status)


async def _refund(
    app: AppContext, session: AsyncSession, principal: Principal, order_id: str, qty: int | None
) -> dict[str, Any]:
    """Refund ``qty`` units (default: all not yet refunded). Checks everything before writing."""
    order = (
        await session.exec(select(Order).where(Order.id == order_id).with_for_update())
    ).first()
    if order is None:
        view = await find_order_view(app, order_id)
        if view is None:
            raise not_found("order")
        if await _brand_of_room(session, view["room_id"]) != principal.id:
            raise forbidden("another brand's order")
        raise conflict("not_paid", "only a paid order can be refunded")
    if order.brand_id != principal.id:
        raise forbidden("another brand's order")
    if order.status in UNPAID:
        raise conflict("not_paid", f"a {order.status} order cannot be refunded")
    remaining = order.qty - order.refunded_qty
    if qty is not None and qty > remaining:
        raise invalid(f"qty must be from 1 to {remaining}")
    if remaining == 0:
        raise conflict("already_refunded", "every unit of this order is refunded")
    k = remaining if qty is None else qty
    was_refund_due = order.status == "refund_due"
    if was_refund_due and k != remaining:
        raise invalid("a refund_due order is refunded whole")
    entries = await ledger.refund(session, order, k)
    return {
        **order_view(order),
        "refund": {
            "id": new_id(),
            "qty": k,
            "amount_cents": k * order.unit_price_cents,
            "returns_units": not was_refund_due,
            "entries": [ledger.entry_view(entry) for entry in entries],
        },
    }


async def _brand_of_room(session: AsyncSession, room_id: str) -> str | None:
    room = await session.get(Room, room_id)
    return room.brand_id if room is not None else None


async def list_ledger(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand", "dealer", "admin")
    raw_party = request.query_params.get("party")
    party = parse_party(raw_party) if raw_party else None
    if party is None and principal.role != "admin":
        party = principal.party
    if party is not None and not may_read_party(principal, party):
        raise forbidden("another party's ledger")
    start, end = date_range(request)
    statement = select(LedgerEntry)
    if party is not None:
        statement = statement.where(LedgerEntry.party == party)
    if start is not None:
        statement = statement.where(col(LedgerEntry.created_at) >= ledger.day_start(start))
    if end is not None:
        next_day = ledger.day_start(end) + ledger.ONE_DAY
        statement = statement.where(col(LedgerEntry.created_at) < next_day)
    async with app.db.read() as session:
        page = await keyset_page(
            session, request, statement, col(LedgerEntry.id), ledger.entry_view
        )
    return json_response(page)


async def get_balance(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand", "dealer", "admin")
    party = parse_party(request.path_params["party"])
    if not may_read_party(principal, party):
        raise forbidden("another party's balance")
    async with app.db.read() as session:
        await require_party_exists(session, party)
        balance = await ledger.balance(session, party)
    return json_response({**balance.view(), "currency": app.settings.currency})


async def get_statement(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand", "dealer", "admin")
    party = parse_party(request.path_params["party"])
    if not may_read_party(principal, party):
        raise forbidden("another party's statement")
    start, end = date_range(request)
    async with app.db.read() as session:
        await require_party_exists(session, party)
        text = await ledger.statement_csv(session, party, start, end)
    filename = f"statement-{party.replace(':', '-')}.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def create_payout(request: Request) -> Response:
    app = ctx(request)
    await app.auth.require(request, "admin")
    body = await parse_body(request, PayoutBody)
    key = idempotency_key(request)

    async def work(session: AsyncSession) -> tuple[int, Any]:
        await require_party_exists(session, body.party)
        entry = await ledger.pay_out(session, body.party)
        if entry is None:
            raise conflict("nothing_available", "this party has no available balance")
        amount = -entry.amount_cents
        return 201, {"party": body.party, "amount_cents": amount, "entry_id": entry.id}

    answer = await run_once(app.db, "payout", key, work)
    return json_response(answer.body, answer.status)


routes = [
    ApiRoute("/api/orders/{order_id}/pay", pay_order, method="POST",
             summary="Pay an order (development payment; exists only with DEV_PAYMENTS)",
             roles=["viewer"]),
    ApiRoute("/api/payments/webhook", payment_webhook, method="POST",
             summary="Payment provider webhook, HMAC-signed (X-Livecommerce-Signature)",
             roles=["anyone"]),
    ApiRoute("/api/orders/{order_id}/refund", refund_order, method="POST",
             summary="Refund some or all units of a paid order (Idempotency-Key accepted)",
             roles=["brand"], body=RefundBody),
    ApiRoute("/api/ledger", list_ledger, method="GET", summary="Ledger entries of a party",
             roles=["brand", "dealer", "admin"], query=["party", "from", "to", "limit", "cursor"]),
    ApiRoute("/api/balances/{party}", get_balance, method="GET",
             summary="A party's balance: total, available, pending",
             roles=["brand", "dealer", "admin"]),
    ApiRoute("/api/statements/{party}.csv", get_statement, method="GET",
             summary="A party's CSV statement", roles=["brand", "dealer", "admin"],
             query=["from", "to"], content_type="text/csv"),
    ApiRoute("/api/payouts", create_payout, method="POST",
             summary="Pay out a party's available balance (Idempotency-Key accepted)",
             roles=["admin"], body=PayoutBody, status=201),
]  # fmt: skip
