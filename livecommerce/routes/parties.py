"""Brands, dealers, viewers: creation, authorization, revocation, profiles, token rotation."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import Field
from sqlmodel import select
from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response
from livecommerce.auth import Principal, make_token
from livecommerce.context import ctx
from livecommerce.errors import forbidden, invalid, not_found
from livecommerce.ids import new_id
from livecommerce.models import Brand, Dealer, DealerAuthorization, Room, Viewer
from livecommerce.timeutil import iso, utcnow
from livecommerce.validation import Id, Name, StrictBody, Url, no_body, parse_body
from livecommerce.views import brand_view, dealer_view


class BrandCreate(StrictBody):
    name: Name


class DealerCreate(StrictBody):
    name: Name
    upline_id: Id | None = None


class ViewerCreate(StrictBody):
    name: Name | None = None


class Authorize(StrictBody):
    dealer_id: Id


Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$")]


class DealerProfile(StrictBody):
    logo_url: Url | None = None
    color: Color | None = None
    allowed_sites: Annotated[list[Url], Field(max_length=50)] | None = None


async def create_brand(request: Request) -> Response:
    app = ctx(request)
    await app.auth.require(request, "admin")
    body = await parse_body(request, BrandCreate)
    brand_id = new_id()
    token, token_hash = make_token("brand", brand_id)
    brand = Brand(id=brand_id, name=body.name, token_hash=token_hash)
    async with app.db.write() as session:
        session.add(brand)
    return json_response({**brand_view(brand), "token": token}, 201)


async def create_dealer(request: Request) -> Response:
    app = ctx(request)
    await app.auth.require(request, "admin")
    body = await parse_body(request, DealerCreate)
    dealer_id = new_id()
    token, token_hash = make_token("dealer", dealer_id)
    dealer = Dealer(id=dealer_id, name=body.name, upline_id=body.upline_id, token_hash=token_hash)
    async with app.db.write() as session:
        if body.upline_id is not None:
            upline = await session.get(Dealer, body.upline_id)
            if upline is None:
                raise invalid("upline_id names no dealer")
            if upline.upline_id is not None:
                raise invalid("an upline may not have an upline of its own (two levels at most)")
        session.add(dealer)
    return json_response({**dealer_view(dealer), "token": token}, 201)


async def create_viewer(request: Request) -> Response:
    app = ctx(request)
    body = await parse_body(request, ViewerCreate)
    viewer_id = new_id()
    token, token_hash = make_token("viewer", viewer_id)
    async with app.db.write() as session:
        session.add(Viewer(id=viewer_id, name=body.name, token_hash=token_hash))
    await app.auth.remember_viewer(viewer_id, token_hash)
    return json_response({"id": viewer_id, "name": body.name, "token": token}, 201)


async def _own_brand(request: Request, principal: Principal, brand_id: str) -> None:
    """404 for a brand that does not exist, 403 for another brand's."""
    async with ctx(request).db.read() as session:
        if await session.get(Brand, brand_id) is None:
            raise not_found("brand")
    if principal.id != brand_id:
        raise forbidden("a brand may only manage itself")


async def authorize_dealer(request: Request) -> Response:
    app = ctx(request)
    brand_id = request.path_params["brand_id"]
    principal = await app.auth.require(request, "brand")
    await _own_brand(request, principal, brand_id)
    body = await parse_body(request, Authorize)
    async with app.db.write() as session:
        if await session.get(Dealer, body.dealer_id) is None:
            raise not_found("dealer")
        grant = await session.get(DealerAuthorization, (brand_id, body.dealer_id))
        if grant is None:
            grant = DealerAuthorization(brand_id=brand_id, dealer_id=body.dealer_id)
        else:
            grant.revoked_at = None
        session.add(grant)
    view = {"brand_id": brand_id, "dealer_id": body.dealer_id, "created_at": iso(grant.created_at)}
    return json_response(view, 201)


async def revoke_dealer(request: Request) -> Response:
    """Revoke: the dealer's mirrors of this brand end; past orders keep their attribution."""
    app = ctx(request)
    brand_id = request.path_params["brand_id"]
    dealer_id = request.path_params["dealer_id"]
    principal = await app.auth.require(request, "brand")
    await _own_brand(request, principal, brand_id)
    async with app.db.write() as session:
        grant = await session.get(DealerAuthorization, (brand_id, dealer_id))
        if grant is None:
            raise not_found("authorization")
        grant.revoked_at = grant.revoked_at or utcnow()
        session.add(grant)
        mirrors = (
            await session.exec(
                select(Room).where(
                    Room.brand_id == brand_id, Room.dealer_id == dealer_id, Room.status != "ended"
                )
            )
        ).all()
        for room in mirrors:
            room.status = "ended"
            room.ended_at = utcnow()
            session.add(room)
    for room in mirrors:
        assert room.brand_room_id is not None
        await app.broker.publish_one(
            room.brand_room_id, {"type": "status", "status": "ended"}, scope=room.id
        )
    return json_response(
        {
            "brand_id": brand_id,
            "dealer_id": dealer_id,
            "revoked_at": iso(grant.revoked_at),
            "ended_rooms": [room.id for room in mirrors],
        }
    )


async def put_dealer_profile(request: Request) -> Response:
    app = ctx(request)
    dealer_id = request.path_params["dealer_id"]
    principal = await app.auth.require(request, "dealer")
    async with app.db.read() as session:
        if await session.get(Dealer, dealer_id) is None:
            raise not_found("dealer")
    if principal.id != dealer_id:
        raise forbidden("a dealer may only brand itself")
    body = await parse_body(request, DealerProfile)
    async with app.db.write() as session:
        dealer = await session.get(Dealer, dealer_id)
        if dealer is None:
            raise not_found("dealer")
        fields = body.model_fields_set
        if "logo_url" in fields:
            dealer.logo_url = body.logo_url
        if "color" in fields:
            dealer.color = body.color
        if "allowed_sites" in fields:
            sites = [site.rstrip("/") for site in body.allowed_sites or []]
            dealer.allowed_sites = json.dumps(sites)
        session.add(dealer)
    app.origins.invalidate()
    return json_response(dealer_view(dealer))


async def rotate_token(request: Request) -> Response:
    app = ctx(request)
    kind: Literal["brand", "dealer"] = (
        "brand" if request.url.path.startswith("/api/brands/") else "dealer"
    )
    entity_id = request.path_params["entity_id"]
    principal = await app.auth.require(request, "admin", kind)
    await no_body(request)
    table: type[Brand] | type[Dealer] = Brand if kind == "brand" else Dealer
    token, token_hash = make_token(kind, entity_id)
    async with app.db.read() as session:
        if await session.get(table, entity_id) is None:
            raise not_found(kind)
    if principal.role != "admin" and principal.id != entity_id:
        raise forbidden(f"a {kind} may only rotate its own token")
    async with app.db.write() as session:
        row = await session.get(table, entity_id)
        if row is None:
            raise not_found(kind)
        row.token_hash = token_hash
        session.add(row)
    return json_response({"id": entity_id, "token": token})


async def get_dealer(request: Request) -> Response:
    app = ctx(request)
    dealer_id = request.path_params["dealer_id"]
    principal = await app.auth.require(request, "admin", "dealer", "brand")
    async with app.db.read() as session:
        dealer = await session.get(Dealer, dealer_id)
        if dealer is None:
            raise not_found("dealer")
        if principal.role == "dealer" and principal.id != dealer_id:
            raise forbidden("a dealer may only read itself")
    return json_response(dealer_view(dealer))


routes = [
    ApiRoute("/api/brands", create_brand, method="POST", summary="Create a brand",
             roles=["admin"], body=BrandCreate, status=201),
    ApiRoute("/api/dealers", create_dealer, method="POST", summary="Create a dealer",
             roles=["admin"], body=DealerCreate, status=201),
    ApiRoute("/api/viewers", create_viewer, method="POST", summary="Create a viewer token",
             roles=["anyone"], body=ViewerCreate, status=201),
    ApiRoute("/api/brands/{brand_id}/dealers", authorize_dealer, method="POST",
             summary="Authorize a dealer to mirror this brand's rooms", roles=["brand"],
             body=Authorize, status=201),
    ApiRoute("/api/brands/{brand_id}/dealers/{dealer_id}", revoke_dealer, method="DELETE",
             summary="Revoke a dealer; its mirrors of this brand end", roles=["brand"]),
    ApiRoute("/api/dealers/{dealer_id}", get_dealer, method="GET", summary="Read a dealer",
             roles=["admin", "brand", "dealer"]),
    ApiRoute("/api/dealers/{dealer_id}/profile", put_dealer_profile, method="PUT",
             summary="Set a dealer's branding and embedding sites", roles=["dealer"],
             body=DealerProfile),
    ApiRoute("/api/brands/{entity_id}/token", rotate_token, method="POST",
             summary="Rotate a brand's token", roles=["brand", "admin"]),
    ApiRoute("/api/dealers/{entity_id}/token", rotate_token, method="POST",
             summary="Rotate a dealer's token", roles=["dealer", "admin"]),
]  # fmt: skip
