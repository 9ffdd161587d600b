"""Brand rooms and their mirrors (dealer rooms)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator
from sqlalchemy import and_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response
from livecommerce.auth import Principal
from livecommerce.context import AppContext, ctx
from livecommerce.errors import ApiError, conflict, forbidden, not_found
from livecommerce.ids import new_id
from livecommerce.listing import keyset_page
from livecommerce.models import DealerAuthorization, Room
from livecommerce.timeutil import parse_iso, utcnow
from livecommerce.validation import Name, StrictBody, Url, no_body, parse_body
from livecommerce.views import public_base, room_view


def _iso_time(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            raise ValueError("must be an ISO-8601 time such as 2026-11-22T20:00:00Z") from None
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_time)]


class RoomCreate(StrictBody):
    title: Name
    stream_url: Url | None = None
    starts_at: IsoTime | None = None


class MirrorCreate(StrictBody):
    title: Name | None = None


def base_url(request: Request) -> str:
    return public_base(ctx(request).settings, str(request.base_url))


async def load_room(session: AsyncSession, room_id: str) -> tuple[Room, Room | None]:
    """The room and, for a mirror, its brand room (404 when the id names nothing)."""
    room = await session.get(Room, room_id)
    if room is None:
        raise not_found("room")
    brand_room = None
    if room.kind == "dealer" and room.brand_room_id is not None:
        brand_room = await session.get(Room, room.brand_room_id)
    return room, brand_room


async def dealer_may_mirror(session: AsyncSession, dealer_id: str, brand_id: str) -> bool:
    grant = await session.get(DealerAuthorization, (brand_id, dealer_id))
    return grant is not None and grant.revoked_at is None


async def may_read_room(session: AsyncSession, principal: Principal, room: Room) -> bool:
    if principal.role == "admin":
        return True
    if principal.role == "brand":
        return room.brand_id == principal.id
    if principal.role == "dealer":
        if room.kind == "dealer":
            return room.dealer_id == principal.id
        return await dealer_may_mirror(session, principal.id, room.brand_id)
    return False


def owns_room(principal: Principal, room: Room) -> bool:
    """The room's owner: the brand for a brand room, the dealer for a mirror."""
    if room.kind == "brand":
        return principal.role == "brand" and room.brand_id == principal.id
    return principal.role == "dealer" and room.dealer_id == principal.id


async def own_brand_room(request: Request, app: AppContext, principal: Principal) -> Room:
    """The brand room named by the path, which must be this brand's (403) and a brand room,
    not a mirror (409 ``not_a_brand_room``)."""
    async with app.db.read() as session:
        room, _ = await load_room(session, request.path_params["room_id"])
    if room.brand_id != principal.id:
        raise forbidden("another brand's room")
    if room.kind != "brand":
        raise conflict("not_a_brand_room", "this is a dealer room; act on its brand room")
    return room


async def create_room(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    body = await parse_body(request, RoomCreate)
    room = Room(
        id=new_id(),
        kind="brand",
        brand_id=principal.id,
        title=body.title,
        stream_url=body.stream_url,
        starts_at=body.starts_at,
    )
    async with app.db.write() as session:
        session.add(room)
    return json_response(room_view(room, base_url(request)), 201)


async def list_rooms(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand", "dealer", "admin")
    statement = select(Room)
    if principal.role == "brand":
        statement = statement.where(Room.brand_id == principal.id)
    elif principal.role == "dealer":
        mirrorable = select(DealerAuthorization.brand_id).where(
            DealerAuthorization.dealer_id == principal.id,
            col(DealerAuthorization.revoked_at).is_(None),
        )
        statement = statement.where(
            or_(
                col(Room.dealer_id) == principal.id,
                and_(col(Room.kind) == "brand", col(Room.brand_id).in_(mirrorable)),
            )
        )
    kind = request.query_params.get("kind")
    if kind in ("brand", "dealer"):
        statement = statement.where(Room.kind == kind)
    elif kind:
        raise ApiError(422, "invalid", "?kind= must be brand or dealer")
    base = base_url(request)
    async with app.db.read() as session:
        page = await keyset_page(session, request, statement, col(Room.id), lambda r: r)
        brand_ids = {r.brand_room_id for r in page["items"] if r.brand_room_id}
        brand_rooms = {
            r.id: r
            for r in (await session.exec(select(Room).where(col(Room.id).in_(brand_ids)))).all()
        }
    page["items"] = [
        room_view(r, base, brand_rooms.get(r.brand_room_id or "")) for r in page["items"]
    ]
    return json_response(page)


async def get_room(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand", "dealer", "admin")
    base = base_url(request)
    async with app.db.read() as session:
        room, brand_room = await load_room(session, request.path_params["room_id"])
        if not await may_read_room(session, principal, room):
            raise forbidden("not your room")
        view = room_view(room, base, brand_room)
        if room.kind == "brand" and principal.role in ("brand", "admin"):
            mirrors = (
                await session.exec(
                    select(Room).where(Room.brand_room_id == room.id).order_by(col(Room.id))
                )
            ).all()
            view["mirrors"] = [room_view(m, base, room) for m in mirrors]
    return json_response(view)


async def go_live(request: Request) -> Response:
    return await _set_status(request, "live")


async def end_room(request: Request) -> Response:
    return await _set_status(request, "ended")


async def _set_status(request: Request, status: str) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "brand")
    room = await own_brand_room(request, app, principal)
    await no_body(request)
    async with app.db.write() as session:
        fresh = await session.get(Room, room.id)
        assert fresh is not None
        if fresh.status == "ended" and status == "live":
            raise conflict("room_ended", "an ended room cannot go live again")
        changed = fresh.status != status
        fresh.status = status
        if status == "ended" and fresh.ended_at is None:
            fresh.ended_at = utcnow()
        session.add(fresh)
    if changed:
        await app.broker.publish_one(fresh.id, {"type": "status", "status": status})
        if status == "ended" and app.seckills is not None:
            await app.seckills.end_room(fresh.id)
    return json_response(room_view(fresh, base_url(request)))


async def create_mirror(request: Request) -> Response:
    app = ctx(request)
    principal = await app.auth.require(request, "dealer")
    body = await parse_body(request, MirrorCreate)
    async with app.db.write() as session:
        brand_room, _ = await load_room(session, request.path_params["room_id"])
        if brand_room.kind != "brand":
            raise conflict("not_a_brand_room", "mirror the brand room, not a dealer room")
        if not await dealer_may_mirror(session, principal.id, brand_room.brand_id):
            raise forbidden("this brand has not authorized this dealer")
        if brand_room.status == "ended":
            raise conflict("room_ended", "this broadcast has ended")
        mirror = Room(
            id=new_id(),
            kind="dealer",
            brand_id=brand_room.brand_id,
            dealer_id=principal.id,
            brand_room_id=brand_room.id,
            title=body.title or brand_room.title,
        )
        session.add(mirror)
    return json_response(room_view(mirror, base_url(request), brand_room), 201)


routes = [
    ApiRoute("/api/rooms", create_room, method="POST", summary="Create a brand room",
             roles=["brand"], body=RoomCreate, status=201),
    ApiRoute("/api/rooms", list_rooms, method="GET",
             summary="A brand's rooms and mirrors; a dealer's mirrors and mirrorable rooms",
             roles=["brand", "dealer", "admin"], query=["limit", "cursor", "kind"]),
    ApiRoute("/api/rooms/{room_id}", get_room, method="GET", summary="Read a room",
             roles=["brand", "dealer", "admin"]),
    ApiRoute("/api/rooms/{room_id}/live", go_live, method="POST", summary="Go live",
             roles=["brand"]),
    ApiRoute("/api/rooms/{room_id}/end", end_room, method="POST",
             summary="End the broadcast and its open seckills", roles=["brand"]),
    ApiRoute("/api/rooms/{room_id}/mirrors", create_mirror, method="POST",
             summary="Mirror a brand room into a new dealer room", roles=["dealer"],
             body=MirrorCreate, status=201),
]  # fmt: skip
