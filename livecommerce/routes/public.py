"""What a watch page may read without a token: a room's face, its dealer's branding, and the
face of a product on sale (what its card shows anyway)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response
from livecommerce.context import ctx
from livecommerce.errors import not_found
from livecommerce.models import Brand, Dealer, Product
from livecommerce.routes.rooms import load_room
from livecommerce.views import card_product, room_status


async def public_room(request: Request) -> Response:
    """Only what a viewer sees on screen anyway: no tokens, no rates, no other dealers."""
    app = ctx(request)
    async with app.db.read() as session:
        room, brand_room = await load_room(session, request.path_params["room_id"])
        brand = await session.get(Brand, room.brand_id)
        dealer = await session.get(Dealer, room.dealer_id) if room.dealer_id else None
    source = brand_room if brand_room is not None else room
    dealer_face: dict[str, Any] | None = None
    if dealer is not None:
        dealer_face = {
            "id": dealer.id,
            "name": dealer.name,
            "logo_url": dealer.logo_url,
            "color": dealer.color,
        }
    return json_response(
        {
            "id": room.id,
            "kind": room.kind,
            "title": room.title,
            "status": room_status(room, brand_room),
            "stream_url": source.stream_url,
            "brand_room_id": room.brand_room_id,
            "brand": {"id": room.brand_id, "name": brand.name if brand else None},
            "dealer": dealer_face,
            "currency": app.settings.currency,
        }
    )


async def public_product(request: Request) -> Response:
    """A seckill event names its product by id; the watch page shows the title from here."""
    async with ctx(request).db.read() as session:
        product = await session.get(Product, request.path_params["product_id"])
    if product is None:
        raise not_found("product")
    return json_response(card_product(product))


routes = [
    ApiRoute("/api/rooms/{room_id}/public", public_room, method="GET",
             summary="A room's public face and its dealer's branding (no token)",
             roles=["anyone"]),
    ApiRoute("/api/products/{product_id}/public", public_product, method="GET",
             summary="A product as its card shows it (no token)", roles=["anyone"]),
]  # fmt: skip
