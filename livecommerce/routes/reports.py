"""What brands and dealers read about their sales, and where a brand's webhooks go: room stats
(aggregates per dealer room), a dealer's own customers, and the brand's outgoing webhook URL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import StringConstraints
from redis.asyncio import Redis
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response
from livecommerce.auth import Principal
from livecommerce.broker import room_tag
from livecommerce.context import ctx
from livecommerce.errors import forbidden, not_found
from livecommerce.ids import new_secret
from livecommerce.listing import decode_cursor, encode_cursor
from livecommerce.models import Brand, Dealer, LedgerEntry, Order, Room, Viewer
from livecommerce.routes.rooms import load_room
from livecommerce.timeutil import iso
from livecommerce.validation import StrictBody, parse_body, query_int

SOLD = ("paid", "partially_refunded", "refunded")  # orders that were paid at some point
HttpUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s/]+\S*$")]


class WebhookBody(StrictBody):
    url: HttpUrl


def may_see_stats(principal: Principal, room: Room) -> bool:
    """The brand sees its brand room and every mirror; a dealer its own mirrors."""
    if principal.role == "admin":
        return True
    if principal.role == "brand":
        return room.brand_id == principal.id
    return principal.role == "dealer" and room.kind == "dealer" and room.dealer_id == principal.id


async def viewer_counts(redis: Redis, brand_room_id: str, room_ids: Sequence[str]) -> dict:
    """Per room ``(now, peak)``: now as the hub last published it; the peak is the highest
    count any stats read has seen, kept beside it in Redis."""
    tag = room_tag(brand_room_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(f"{tag}:viewers_last", list(room_ids))
        pipe.hmget(f"{tag}:viewers_peak", list(room_ids))
        now_raw, peak_raw = await pipe.execute()
    counts: dict[str, tuple[int, int]] = {}
    higher: dict[str, int] = {}
    for room_id, now_value, peak_value in zip(room_ids, now_raw, peak_raw, strict=True):
        now, peak = int(now_value or 0), int(peak_value or 0)
        if now > peak:
            higher[room_id] = peak = now
        counts[room_id] = (now, peak)
    if higher:
        await redis.hset(f"{tag}:viewers_peak", mapping=higher)  # type: ignore[arg-type]
    return counts


async def room_stats(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand", "dealer", "admin")
    async with app.db.read() as session:
        room, _ = await load_room(session, request.path_params["room_id"])
        if not may_see_stats(principal, room):
            raise forbidden("not your room")
        rooms = [room]
        if room.kind == "brand":
            mirrors = select(Room).where(Room.brand_room_id == room.id).order_by(col(Room.id))
            rooms += list((await session.exec(mirrors)).all())
        ids = [r.id for r in rooms]
        sales_query = (
            select(
                Order.room_id,
                func.count(),
                func.sum(Order.qty - Order.refunded_qty),
                func.sum(Order.amount_cents - Order.refunded_qty * Order.unit_price_cents),
            )
            .where(col(Order.room_id).in_(ids), col(Order.status).in_(SOLD))
            .group_by(col(Order.room_id))
        )
        sales = {row[0]: row[1:] for row in (await session.exec(sales_query)).all()}
        money_query = (
            select(LedgerEntry.room_id, LedgerEntry.role, func.sum(LedgerEntry.amount_cents))
            .where(col(LedgerEntry.room_id).in_(ids))
            .group_by(col(LedgerEntry.room_id), col(LedgerEntry.role))
        )
        shares: dict[str, dict[str, int]] = defaultdict(dict)
        for room_id, role, amount in (await session.exec(money_query)).all():
            shares[room_id or ""][role] = int(amount or 0)
    brand_room_id = room.id if room.kind == "brand" else (room.brand_room_id or room.id)
    counts = await viewer_counts(app.redis, brand_room_id, ids)
    per_room = []
    for r in rooms:
        orders, units, gmv = sales.get(r.id, (0, 0, 0))
        dealer = shares[r.id].get("dealer", 0)
        upline = shares[r.id].get("upline", 0)
        per_room.append({
            "room_id": r.id, "kind": r.kind, "dealer_id": r.dealer_id, "title": r.title,
            "viewers_now": counts[r.id][0], "viewers_peak": counts[r.id][1],
            "orders": int(orders or 0), "units": int(units or 0), "gmv_cents": int(gmv or 0),
            "commission_cents": dealer + upline, "dealer_commission_cents": dealer,
            "upline_commission_cents": upline,
            "platform_fee_cents": shares[r.id].get("platform", 0),
        })  # fmt: skip
    totals: dict[str, Any] = {
        field: sum(item[field] for item in per_room)
        for field in ("viewers_now", "viewers_peak", "orders", "units", "gmv_cents",
                      "commission_cents", "dealer_commission_cents", "upline_commission_cents",
                      "platform_fee_cents")
    }  # fmt: skip
    body = {"room_id": room.id, "kind": room.kind, "brand_room_id": brand_room_id, **totals,
            "currency": app.settings.currency, "rooms": per_room}  # fmt: skip
    return json_response(body)


async def dealer_customers(request: Request) -> Response:
    """Viewers who paid for something in this dealer's rooms; only the dealer sees them."""
    app = ctx(request)
    dealer_id = request.path_params["dealer_id"]
    principal = await app.auth.require(request, "dealer", "brand", "admin")
    async with app.db.read() as session:
        if await session.get(Dealer, dealer_id) is None:
            raise not_found("dealer")
        if principal.role != "dealer" or principal.id != dealer_id:
            raise forbidden("a dealer's customers are its own")
        limit = query_int(request, "limit", 100, 1, 1000)
        query = (
            sa_select(
                col(Order.viewer_id),
                func.count(),
                func.sum(Order.qty - Order.refunded_qty),
                func.sum(Order.amount_cents - Order.refunded_qty * Order.unit_price_cents),
                func.min(Order.paid_at),
                func.max(Order.paid_at),
            )
            .where(Order.dealer_id == dealer_id, col(Order.status).in_(SOLD))
            .group_by(col(Order.viewer_id))
            .order_by(col(Order.viewer_id))
            .limit(limit + 1)
        )
        cursor = request.query_params.get("cursor")
        if cursor:
            query = query.where(col(Order.viewer_id) > decode_cursor(cursor))
        rows = (await session.exec(query)).all()  # type: ignore[call-overload]
        page = rows[:limit]
        names_query = select(Viewer.id, Viewer.name).where(
            col(Viewer.id).in_([row[0] for row in page])
        )
        names = dict((await session.exec(names_query)).all())
    items = [
        {"viewer_id": viewer_id, "name": names.get(viewer_id), "orders": int(orders),
         "units": int(units or 0), "spent_cents": int(spent or 0), "first_at": iso(first),
         "last_at": iso(last)}
        for viewer_id, orders, units, spent, first, last in page
    ]  # fmt: skip
    next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
    return json_response({"items": items, "next_cursor": next_cursor})


async def put_webhook(request: Request) -> Response:
    """Set the brand's outgoing webhook URL; every call issues a new signing secret."""
    app = ctx(request)
    brand_id = request.path_params["brand_id"]
    principal = await app.auth.require(request, "brand")
    body = await parse_body(request, WebhookBody)
    secret = "whsec_" + new_secret()
    async with app.db.write() as session:
        brand = await session.get(Brand, brand_id)
        if brand is None:
            raise not_found("brand")
        if principal.id != brand_id:
            raise forbidden("a brand may only manage itself")
        brand.webhook_url = body.url
        brand.webhook_secret = secret
        session.add(brand)
    return json_response({"url": body.url, "secret": secret})


routes = [
    ApiRoute("/api/rooms/{room_id}/stats", room_stats, method="GET",
             summary="Viewers, orders, units, GMV and commission, per dealer room",
             roles=["brand", "dealer", "admin"]),
    ApiRoute("/api/dealers/{dealer_id}/customers", dealer_customers, method="GET",
             summary="Viewers who bought in this dealer's rooms", roles=["dealer"],
             query=["limit", "cursor"]),
    ApiRoute("/api/brands/{brand_id}/webhook", put_webhook, method="PUT",
             summary="Set the outgoing webhook URL; answers a new signing secret",
             roles=["brand"], body=WebhookBody),
]  # fmt: skip
