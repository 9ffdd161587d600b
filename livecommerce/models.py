"""SQL tables: everything durable (design.md §2). Money is integer cents, rates basis points."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from livecommerce.timeutil import utcnow

ROOM_KINDS = ("brand", "dealer")
ROOM_STATUSES = ("scheduled", "live", "ended")
ORDER_STATUSES = ("reserved", "paid", "expired", "cancelled", "partially_refunded", "refunded",
                  "refund_due")  # fmt: skip
LEDGER_KINDS = ("sale", "reversal", "payout")
LEDGER_ROLES = ("platform", "dealer", "upline", "brand")


def _cents(**kwargs: object) -> object:
    return Field(sa_type=BigInteger, **kwargs)  # type: ignore[call-overload]


class Brand(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str
    token_hash: str = Field(index=True)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Dealer(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str
    upline_id: str | None = Field(default=None, foreign_key="dealer.id", index=True)
    token_hash: str = Field(index=True)
    logo_url: str | None = None
    color: str | None = None
    allowed_sites: str = Field(default="[]", sa_type=Text)  # JSON list of origins
    created_at: datetime = Field(default_factory=utcnow)


class DealerAuthorization(SQLModel, table=True):
    """A brand allows a dealer to mirror its rooms; revoking sets ``revoked_at`` for good."""

    brand_id: str = Field(primary_key=True, foreign_key="brand.id")
    dealer_id: str = Field(primary_key=True, foreign_key="dealer.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class Viewer(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str | None = None
    token_hash: str = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Product(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("brand_id", "sku"),)

    id: str = Field(primary_key=True, max_length=32)
    brand_id: str = Field(foreign_key="brand.id", index=True)
    sku: str
    title: str
    price_cents: int = _cents()  # type: ignore[assignment]
    image_url: str | None = None
    dealer_bps: int
    upline_bps: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Room(SQLModel, table=True):
    """A brand room (the broadcast) or a dealer room (a mirror of one brand room)."""

    id: str = Field(primary_key=True, max_length=32)
    kind: str  # brand | dealer
    brand_id: str = Field(foreign_key="brand.id", index=True)
    dealer_id: str | None = Field(default=None, foreign_key="dealer.id", index=True)
    brand_room_id: str | None = Field(default=None, index=True)  # set on dealer rooms
    title: str
    stream_url: str | None = None
    status: str = "scheduled"
    starts_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None


class Seckill(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    brand_id: str = Field(foreign_key="brand.id", index=True)
    room_id: str = Field(foreign_key="room.id", index=True)  # the brand room
    product_id: str = Field(foreign_key="product.id")
    price_cents: int = _cents()  # type: ignore[assignment]
    stock: int
    per_viewer_limit: int
    starts_at: datetime
    ends_at: datetime | None = None
    ended_at: datetime | None = None  # ended early (by the brand or its room ending)
    created_at: datetime = Field(default_factory=utcnow)


class SeckillAllocation(SQLModel, table=True):
    """Units of a seckill reserved for one dealer room; the rest is the shared pool."""

    seckill_id: str = Field(primary_key=True, foreign_key="seckill.id")
    room_id: str = Field(primary_key=True, foreign_key="room.id")
    units: int


class Order(SQLModel, table=True):
    """A reservation and what became of it. Rates are frozen here at reservation time."""

    __table_args__ = (Index("ix_order_viewer_request", "viewer_id", "seckill_id", "request_id"),)

    id: str = Field(primary_key=True, max_length=64)
    seckill_id: str = Field(index=True)
    room_id: str = Field(index=True)
    brand_room_id: str = Field(index=True)
    brand_id: str = Field(index=True)
    dealer_id: str | None = Field(default=None, index=True)
    upline_id: str | None = None
    viewer_id: str = Field(index=True)
    product_id: str
    qty: int
    unit_price_cents: int = _cents()  # type: ignore[assignment]
    amount_cents: int = _cents()  # type: ignore[assignment]
    refunded_qty: int = 0
    allocated_units: int = 0  # units drawn from the room's allocation rather than the pool
    status: str = "reserved"
    request_id: str
    platform_fee_bps: int = 0
    dealer_bps: int = 0
    upline_bps: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    paid_at: datetime | None = None


class LedgerEntry(SQLModel, table=True):
    """An immutable money line. Updates and deletes are refused by the database."""

    id: str = Field(primary_key=True, max_length=32)
    order_id: str | None = Field(default=None, index=True)
    room_id: str | None = Field(default=None, index=True)
    party: str = Field(index=True)  # brand:<id> | dealer:<id> | platform
    role: str  # platform | dealer | upline | brand
    kind: str  # sale | reversal | payout
    rate_bps: int
    base_cents: int = _cents()  # type: ignore[assignment]
    amount_cents: int = _cents()  # type: ignore[assignment]  # signed
    available_at: datetime
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Payout(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    party: str = Field(index=True)
    amount_cents: int = _cents()  # type: ignore[assignment]
    entry_id: str
    created_at: datetime = Field(default_factory=utcnow)


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a refund or payout carrying an ``Idempotency-Key``."""

    scope: str = Field(primary_key=True)  # e.g. "refund:<order_id>" or "payout"
    key: str = Field(primary_key=True)
    status_code: int
    body: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow)


class PaymentEvent(SQLModel, table=True):
    """A payment provider webhook already processed (by its ``event_id``)."""

    event_id: str = Field(primary_key=True)
    order_id: str
    result: str
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """Outbox of signed webhooks to brands, retried with backoff until acknowledged."""

    event_id: str = Field(primary_key=True)
    brand_id: str = Field(index=True)
    type: str
    body: str = Field(sa_type=Text)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Mute(SQLModel, table=True):
    room_id: str = Field(primary_key=True)
    viewer_id: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
