"""Cards: the products a brand host pins on screen, pushed to the brand room and every mirror."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response
from livecommerce.auth import Principal
from livecommerce.chat import CardStore
from livecommerce.context import AppContext, ctx
from livecommerce.errors import conflict, forbidden, not_found
from livecommerce.models import Product, Room
from livecommerce.routes.rooms import load_room
from livecommerce.timeutil import now_ms
from livecommerce.validation import Id, StrictBody, parse_body
from livecommerce.views import card_product


class CardPin(StrictBody):
    product_id: Id


async def _own_brand_room(request: Request, app: AppContext, principal: Principal) -> Room:
    async with app.db.read() as session:
        room, _ = await load_room(session, request.path_params["room_id"])
    if room.brand_id != principal.id:
        raise forbidden("another brand's room")
    if room.kind != "brand":
        raise conflict("not_a_brand_room", "cards are pinned in the brand room")
    return room


async def pin_card(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    room = await _own_brand_room(request, app, principal)
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
    room = await _own_brand_room(request, app, principal)
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
