"""Seckills: create (brand), read (anyone), end early (brand), and buy (viewer)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from livecommerce.api import ApiRoute, json_response
from livecommerce.auth import Principal
from livecommerce.context import AppContext, ctx
from livecommerce.errors import ApiError, conflict, forbidden, invalid, not_found
from livecommerce.ids import new_id
from livecommerce.models import Product, Room, Seckill, SeckillAllocation
from livecommerce.ratelimit import RateLimiter, retry_after_header
from livecommerce.routes.rooms import IsoTime, load_room
from livecommerce.seckill import BuyBody, SeckillEngine
from livecommerce.timeutil import utcnow
from livecommerce.validation import Cents, Id, Qty, Stock, StrictBody, Units, parse_body

BUY_STATUS = {"ok": 201, "duplicate": 200}
REFUSALS = {
    "sold_out": "not enough units left",
    "limit_exceeded": "over the per-viewer limit",
    "not_started": "this seckill has not started yet",
    "ended": "this seckill has ended",
}


class SeckillCreate(StrictBody):
    product_id: Id
    price_cents: Cents
    stock: Stock
    per_viewer_limit: Qty
    starts_at: IsoTime | None = None
    ends_at: IsoTime | None = None
    allocations: dict[Id, Units] | None = None


def engine(app: AppContext) -> SeckillEngine:
    if app.seckills is None:
        raise ApiError(503, "unavailable", "the seckill engine is not running")
    return app.seckills


def limiters(app: AppContext) -> tuple[RateLimiter, RateLimiter | None]:
    """This process's buy limiters: per viewer token, and per client IP when configured."""
    found = app.extras.get("buy_limiters")
    if found is None:
        settings = app.settings
        per_ip = RateLimiter(settings.ip_rate_limit) if settings.ip_rate_limit > 0 else None
        found = (RateLimiter(settings.buy_rate_per_s, settings.buy_rate_per_s), per_ip)
        app.extras["buy_limiters"] = found
    limiter: tuple[RateLimiter, RateLimiter | None] = found
    return limiter


def check_rate(app: AppContext, request: Request, principal: Principal) -> None:
    per_viewer, per_ip = limiters(app)
    wait = per_viewer.take(principal.id)
    if not wait and per_ip is not None and request.client is not None:
        wait = per_ip.take(request.client.host)
    if wait:
        raise ApiError(429, "rate_limited", "too many buys; slow down",
                       headers=retry_after_header(wait))  # fmt: skip


async def _validated(
    app: AppContext, principal: Principal, room_id: str, body: SeckillCreate
) -> tuple[Room, datetime, dict[str, int]]:
    async with app.db.read() as session:
        room, _ = await load_room(session, room_id)
        if room.brand_id != principal.id:
            raise forbidden("another brand's room")
        if room.kind != "brand":
            raise conflict("not_a_brand_room", "seckills run in the brand room, not a mirror")
        if room.status == "ended":
            raise conflict("room_ended", "this broadcast has ended")
        product = await session.get(Product, body.product_id)
        if product is None or product.brand_id != principal.id:
            raise invalid("product_id names no product of this brand")
        allocations = dict(body.allocations or {})
        if allocations:
            mirrors = await session.exec(
                select(Room.id).where(
                    col(Room.id).in_(list(allocations)),
                    Room.brand_room_id == room.id,
                    Room.kind == "dealer",
                    Room.status != "ended",
                )
            )
            unknown = set(allocations) - set(mirrors.all())
            if unknown:
                raise invalid(f"allocations name rooms that are not mirrors of this room: "
                              f"{', '.join(sorted(unknown)[:5])}")  # fmt: skip
    if sum(allocations.values()) > body.stock:
        raise invalid("allocations add up to more than the stock")
    starts_at = body.starts_at or utcnow()
    if body.ends_at is not None and body.ends_at <= starts_at:
        raise invalid("ends_at must be after starts_at")
    return room, starts_at, allocations


async def create_seckill(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    body = await parse_body(request, SeckillCreate)
    room, starts_at, allocations = await _validated(
        app, principal, request.path_params["room_id"], body
    )
    seckill = Seckill(
        id=new_id(),
        brand_id=principal.id,
        room_id=room.id,
        product_id=body.product_id,
        price_cents=body.price_cents,
        stock=body.stock,
        per_viewer_limit=body.per_viewer_limit,
        starts_at=starts_at,
        ends_at=body.ends_at,
    )
    async with app.db.write() as session:
        session.add(seckill)
        for room_id, units in allocations.items():
            session.add(SeckillAllocation(seckill_id=seckill.id, room_id=room_id, units=units))
    return json_response(await engine(app).install(seckill, allocations), 201)


async def get_seckill(request: Request) -> Response:
    view = await engine(ctx(request)).view(request.path_params["seckill_id"])
    if view is None:
        raise not_found("seckill")
    return json_response(view)


async def end_seckill(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    seckills = engine(app)
    info = await seckills.info(request.path_params["seckill_id"])
    if info is None:
        raise not_found("seckill")
    if info.brand_id != principal.id:
        raise forbidden("another brand's seckill")
    await seckills.end(info.id)
    view = await seckills.view(info.id)
    return json_response(view)


async def buy(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "viewer")
    check_rate(app, request, principal)
    body = await parse_body(request, BuyBody)
    result = await engine(app).buy(
        principal.id, request.path_params["seckill_id"], body.room_id, body.qty, body.request_id
    )
    if result.order is None:
        raise conflict(result.code, REFUSALS.get(result.code, result.code))
    return json_response(result.order, BUY_STATUS[result.code])


async def bench_trivial(request: Request) -> Response:
    """Benchmark baseline (only with ``LIVECOMMERCE_BENCH_ROUTES=1``): a trivial endpoint."""
    if not ctx(request).settings.bench_routes:
        raise not_found("route")
    return json_response({"ok": True}, 201)


async def bench_naive_buy(request: Request) -> Response:
    """Benchmark baseline (only with ``LIVECOMMERCE_BENCH_ROUTES=1``): the same buy with one
    awaited Redis call per request, no micro-batching."""
    app = ctx(request)
    if not app.settings.bench_routes:
        raise not_found("route")
    principal = await app.auth.require(request, "viewer")
    body = await parse_body(request, BuyBody)
    result = await engine(app).buy(
        principal.id, request.path_params["seckill_id"], body.room_id, body.qty, body.request_id,
        batched=False,
    )  # fmt: skip
    if result.order is None:
        raise conflict(result.code, REFUSALS.get(result.code, result.code))
    return json_response(result.order, BUY_STATUS[result.code])


routes: list[BaseRoute] = [
    ApiRoute("/api/rooms/{room_id}/seckills", create_seckill, method="POST",
             summary="Create a seckill in a brand room; pushed to every mirror",
             roles=["brand"], body=SeckillCreate, status=201),
    ApiRoute("/api/seckills/{seckill_id}", get_seckill, method="GET",
             summary="A seckill: state and stock left", roles=["anyone"]),
    ApiRoute("/api/seckills/{seckill_id}/end", end_seckill, method="POST",
             summary="End a seckill early; pushed to every mirror", roles=["brand"]),
    ApiRoute("/api/seckills/{seckill_id}/orders", buy, method="POST",
             summary="Buy: 201 reserved, 200 the same order for a repeated request_id, "
             "409 sold_out | limit_exceeded | not_started | ended",
             roles=["viewer"], body=BuyBody, status=201),
    # benchmark baselines, 404 unless LIVECOMMERCE_BENCH_ROUTES=1; not part of the API
    Route("/bench/trivial", bench_trivial, methods=["POST"]),
    Route("/bench/naive/{seckill_id}/orders", bench_naive_buy, methods=["POST"]),
]  # fmt: skip
