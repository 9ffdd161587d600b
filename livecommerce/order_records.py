"""Reservations as the seckill scripts record them in Redis (a JSON object of strings, see
``seckill.lua``), turned into the API's order shape and into SQL rows.

An order id is ``<time-sortable id>-<seckill id>``, so any process can find the Redis hash that
holds an order the writer has not saved yet.
"""

from __future__ import annotations

import json
import re
from typing import Any

from livecommerce.models import Order
from livecommerce.timeutil import from_ms, iso

ORDER_ID = re.compile(r"^[0-9a-z]{18}-([0-9a-z]{18})$")
Record = dict[str, str]


def new_order_id(new_id: str, seckill_id: str) -> str:
    return f"{new_id}-{seckill_id}"


def seckill_of(order_id: str) -> str | None:
    """The seckill an order id belongs to, or None when it is not an order id at all."""
    match = ORDER_ID.match(order_id)
    return match.group(1) if match else None


def parse_record(raw: bytes | str) -> Record:
    record: Record = json.loads(raw)
    return record


def split_status(raw: bytes | str | None) -> tuple[str, int | None]:
    """``paid:<ms>`` → ("paid", ms); any other status → (status, None)."""
    text = raw.decode() if isinstance(raw, bytes) else (raw or "reserved")
    status, _, paid = text.partition(":")
    return status, int(paid) if paid else None


def record_view(record: Record, status: str, paid_ms: int | None) -> dict[str, Any]:
    """The order as ``GET /api/orders/{id}`` shows it (same fields as ``views.order_view``)."""
    qty = int(record["qty"])
    price = int(record["price"])
    return {
        "id": record["id"],
        "seckill_id": record["seckill_id"],
        "room_id": record["room_id"],
        "dealer_id": record["dealer_id"] or None,
        "viewer_id": record["viewer_id"],
        "product_id": record["product_id"],
        "qty": qty,
        "unit_price_cents": price,
        "amount_cents": price * qty,
        "refunded_qty": 0,
        "status": status,
        "request_id": record["request_id"],
        "created_at": iso(from_ms(int(record["created"]))),
        "expires_at": iso(from_ms(int(record["expires"]))),
        "paid_at": iso(from_ms(paid_ms)) if paid_ms is not None else None,
    }


def record_row(
    record: Record, status: str = "reserved", paid_ms: int | None = None
) -> dict[str, Any]:
    """The SQL row of a reservation (column → value), for a multi-row insert."""
    qty = int(record["qty"])
    price = int(record["price"])
    return {
        "id": record["id"],
        "seckill_id": record["seckill_id"],
        "room_id": record["room_id"],
        "brand_room_id": record["brand_room_id"],
        "brand_id": record["brand_id"],
        "dealer_id": record["dealer_id"] or None,
        "upline_id": record["upline_id"] or None,
        "viewer_id": record["viewer_id"],
        "product_id": record["product_id"],
        "qty": qty,
        "unit_price_cents": price,
        "amount_cents": price * qty,
        "refunded_qty": 0,
        "allocated_units": int(record["allocated"]),
        "status": status,
        "request_id": record["request_id"],
        "platform_fee_bps": int(record["fee_bps"]),
        "dealer_bps": int(record["dealer_bps"]),
        "upline_bps": int(record["upline_bps"]),
        "created_at": from_ms(int(record["created"])),
        "expires_at": from_ms(int(record["expires"])),
        "paid_at": from_ms(paid_ms) if paid_ms is not None else None,
    }


def record_order(record: Record, status: str = "reserved", paid_ms: int | None = None) -> Order:
    return Order(**record_row(record, status, paid_ms))
