"""Moderation: hide a chat line, mute a viewer in a room. The room's owner moderates it; the
brand moderates its brand room and every mirror (from its merged chat feed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response
from livecommerce.auth import Principal
from livecommerce.chat import ChatStore
from livecommerce.context import AppContext, ctx
from livecommerce.errors import forbidden, not_found
from livecommerce.models import Mute, Room, Viewer
from livecommerce.routes.rooms import load_room
from livecommerce.validation import Id, StrictBody, parse_body


class MuteCreate(StrictBody):
    viewer_id: Id


def may_moderate(principal: Principal, room: Room) -> bool:
    if principal.role == "brand":
        return room.brand_id == principal.id
    return principal.role == "dealer" and room.kind == "dealer" and room.dealer_id == principal.id


async def _moderated_room(request: Request, app: AppContext) -> Room:
    principal = await app.auth.require(request, "brand", "dealer")
    async with app.db.read() as session:
        room, _ = await load_room(session, request.path_params["room_id"])
    if not may_moderate(principal, room):
        raise forbidden("only the room's owner or its brand moderates it")
    return room


async def hide_chat(request: Request) -> Response:
    app = ctx(request)
    room = await _moderated_room(request, app)
    brand_room_id = room.brand_room_id or room.id
    chat_id = request.path_params["chat_id"]
    store = ChatStore(app.redis)
    if not await store.exists(brand_room_id, room.id, chat_id):
        raise not_found("chat line")
    await store.hide(brand_room_id, room.id, chat_id)
    event = {"type": "chat_hidden", "room_id": room.id, "chat_id": chat_id}
    await app.broker.publish_one(brand_room_id, event, room.id)
    return json_response({"room_id": room.id, "chat_id": chat_id, "hidden": True})


async def mute_viewer(request: Request) -> Response:
    app = ctx(request)
    room = await _moderated_room(request, app)
    body = await parse_body(request, MuteCreate)
    async with app.db.write() as session:
        if await session.get(Viewer, body.viewer_id) is None:
            raise not_found("viewer")
        if await session.get(Mute, (room.id, body.viewer_id)) is None:
            session.add(Mute(room_id=room.id, viewer_id=body.viewer_id))
    await ChatStore(app.redis).mute(room.brand_room_id or room.id, room.id, body.viewer_id)
    return json_response({"room_id": room.id, "viewer_id": body.viewer_id, "muted": True}, 201)


routes = [
    ApiRoute("/api/rooms/{room_id}/chat/{chat_id}/hide", hide_chat, method="POST",
             summary="Hide a chat line for everyone in the room", roles=["brand", "dealer"]),
    ApiRoute("/api/rooms/{room_id}/mutes", mute_viewer, method="POST",
             summary="Mute a viewer in a room", roles=["brand", "dealer"], body=MuteCreate,
             status=201),
]  # fmt: skip
