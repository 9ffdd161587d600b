"""Cards: the products a brand host pins on screen, pushed to the brand room and every mirror."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response
from livecommerce.chat import CardStore
from livecommerce.context import ctx
from livecommerce.errors import not_found
from livecommerce.models import Product
from livecommerce.routes.rooms import own_brand_room
from livecommerce.timeutil import now_ms
from livecommerce.validation import Id, StrictBody, parse_body
from livecommerce.views import card_product


class CardPin(StrictBody):
    product_id: Id


async def pin_card(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    room = await own_brand_room(request, app, principal)
    body = await parse_body(request, CardPin)
    async with app.db.read() as session:
        product = await session.get(Product, body.product_id)
    if product is None or product.brand_id != principal.id:
        raise not_found("product")
    card = card_product(product)
    await CardStore(app.redis).pin(room.id, card, now_ms())
    await app.broker.publish_one(room.id, {"type": "card", "product": card})
    return json_response(card, 201)


async def unpin_card(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    room = await own_brand_room(request, app, principal)
    product_id = request.path_params["product_id"]
    if not await CardStore(app.redis).unpin(room.id, product_id):
        raise not_found("pinned card")
    await app.broker.publish_one(room.id, {"type": "uncard", "product_id": product_id})
    return json_response({"room_id": room.id, "product_id": product_id, "pinned": False})


routes = [
    ApiRoute("/api/rooms/{room_id}/cards", pin_card, method="POST",
             summary="Pin a product card in a brand room and all its mirrors", roles=["brand"],
             body=CardPin, status=201),
    ApiRoute("/api/rooms/{room_id}/cards/{product_id}", unpin_card, method="DELETE",
             summary="Unpin a card", roles=["brand"]),
]  # fmt: skip
