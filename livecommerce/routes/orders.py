"""Orders: list (scoped by role), read one, and the viewer's cancel of an unpaid reservation."""

from __future__ import annotations

from sqlmodel import col, select
from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response
from livecommerce.auth import Principal
from livecommerce.context import AppContext, ctx
from livecommerce.errors import ApiError, conflict, forbidden, invalid, not_found
from livecommerce.listing import keyset_page
from livecommerce.models import ORDER_STATUSES, Order
from livecommerce.orders import OrderPipeline
from livecommerce.views import order_view


def pipeline(app: AppContext) -> OrderPipeline:
    if app.orders is None:
        raise ApiError(503, "unavailable", "the order pipeline is not running")
    return app.orders


def may_read_order(principal: Principal, order: Order) -> bool:
    """The order's viewer, its brand, the dealer whose room it was placed in, or the admin."""
    return (
        principal.role == "admin"
        or (principal.role == "viewer" and order.viewer_id == principal.id)
        or (principal.role == "brand" and order.brand_id == principal.id)
        or (principal.role == "dealer" and order.dealer_id == principal.id)
    )


async def list_orders(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand", "dealer", "viewer", "admin")
    statement = select(Order)
    if principal.role == "brand":
        statement = statement.where(Order.brand_id == principal.id)
    elif principal.role == "dealer":
        statement = statement.where(Order.dealer_id == principal.id)
    elif principal.role == "viewer":
        statement = statement.where(Order.viewer_id == principal.id)
    room_id = request.query_params.get("room_id")
    if room_id:
        statement = statement.where(Order.room_id == room_id)
    status = request.query_params.get("status")
    if status:
        if status not in ORDER_STATUSES:
            raise invalid(f"?status= must be one of {', '.join(ORDER_STATUSES)}")
        statement = statement.where(Order.status == status)
    async with app.db.read() as session:
        page = await keyset_page(session, request, statement, col(Order.id), lambda o: o)
    orders: list[Order] = page["items"]
    if app.seckills is not None:
        # SQL may not show a cancel or an expiry the writer is about to apply
        fresh = await app.seckills.statuses([o.id for o in orders if o.status == "reserved"])
    else:
        fresh = {}
    views = []
    for order in orders:
        view = order_view(order)
        if order.id in fresh and fresh[order.id] != "paid":
            view["status"] = fresh[order.id]
        views.append(view)
    page["items"] = views
    return json_response(page)


async def _readable(request: Request) -> tuple[AppContext, Principal, Order]:
    app = ctx(request)
    principal = await app.auth.require(request)
    order = await pipeline(app).load(request.path_params["order_id"])
    if order is None:
        raise not_found("order")
    if not may_read_order(principal, order):
        raise forbidden("not your order")
    return app, principal, order


async def get_order(request: Request) -> Response:
    _, _, order = await _readable(request)
    return json_response(order_view(order))


async def cancel_order(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "viewer")
    orders = pipeline(app)
    order = await orders.load(request.path_params["order_id"])
    if order is None:
        raise not_found("order")
    if order.viewer_id != principal.id:
        raise forbidden("only the buyer cancels an order")
    result = await orders.cancel(order.id)
    if result not in ("released", "cancelled"):
        raise conflict(result, f"this order is {result} and cannot be cancelled")
    cancelled = await orders.load(order.id)
    assert cancelled is not None
    return json_response(order_view(cancelled))


routes = [
    ApiRoute("/api/orders", list_orders, method="GET",
             summary="Orders: a brand's rooms and mirrors, a dealer's rooms, a viewer's own",
             roles=["brand", "dealer", "viewer", "admin"],
             query=["room_id", "status", "limit", "cursor"]),
    ApiRoute("/api/orders/{order_id}", get_order, method="GET",
             summary="Read an order (its viewer, brand or dealer)",
             roles=["viewer", "brand", "dealer", "admin"]),
    ApiRoute("/api/orders/{order_id}/cancel", cancel_order, method="POST",
             summary="Cancel an unpaid reservation: units and limit come back at once",
             roles=["viewer"]),
]  # fmt: skip
