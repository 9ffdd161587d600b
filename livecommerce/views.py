"""JSON shapes of stored things, one function per thing."""

from __future__ import annotations

import json
from typing import Any

from livecommerce.models import Brand, Dealer, Order, Product, Room
from livecommerce.settings import Settings
from livecommerce.timeutil import iso


def brand_view(brand: Brand) -> dict[str, Any]:
    return {"id": brand.id, "name": brand.name, "created_at": iso(brand.created_at)}


def dealer_view(dealer: Dealer) -> dict[str, Any]:
    return {
        "id": dealer.id,
        "name": dealer.name,
        "upline_id": dealer.upline_id,
        "logo_url": dealer.logo_url,
        "color": dealer.color,
        "allowed_sites": json.loads(dealer.allowed_sites or "[]"),
        "created_at": iso(dealer.created_at),
    }


def product_view(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "brand_id": product.brand_id,
        "sku": product.sku,
        "title": product.title,
        "price_cents": product.price_cents,
        "image_url": product.image_url,
        "dealer_bps": product.dealer_bps,
        "upline_bps": product.upline_bps,
        "created_at": iso(product.created_at),
    }


def card_product(product: Product) -> dict[str, Any]:
    """The product as a card event carries it."""
    return {
        "id": product.id,
        "sku": product.sku,
        "title": product.title,
        "price_cents": product.price_cents,
        "image_url": product.image_url,
    }


def public_base(settings: Settings, request_base: str) -> str:
    return (settings.public_url or request_base).rstrip("/")


def room_status(room: Room, brand_room: Room | None) -> str:
    """A mirror follows its brand room's status unless it was ended itself (revoked)."""
    if room.kind == "dealer" and brand_room is not None and room.status != "ended":
        return brand_room.status
    return room.status


def room_view(room: Room, base_url: str, brand_room: Room | None = None) -> dict[str, Any]:
    return {
        "id": room.id,
        "kind": room.kind,
        "brand_id": room.brand_id,
        "dealer_id": room.dealer_id,
        "brand_room_id": room.brand_room_id,
        "title": room.title,
        "stream_url": (brand_room.stream_url if brand_room is not None else room.stream_url),
        "status": room_status(room, brand_room),
        "starts_at": iso(brand_room.starts_at if brand_room is not None else room.starts_at),
        "created_at": iso(room.created_at),
        "watch_url": f"{base_url}/watch/{room.id}",
        "embed_url": f"{base_url}/embed/{room.id}",
    }


def order_view(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "seckill_id": order.seckill_id,
        "room_id": order.room_id,
        "dealer_id": order.dealer_id,
        "viewer_id": order.viewer_id,
        "product_id": order.product_id,
        "qty": order.qty,
        "unit_price_cents": order.unit_price_cents,
        "amount_cents": order.amount_cents,
        "refunded_qty": order.refunded_qty,
        "status": order.status,
        "request_id": order.request_id,
        "created_at": iso(order.created_at),
        "expires_at": iso(order.expires_at),
        "paid_at": iso(order.paid_at),
    }
