"""Payments in: the development payment call and the provider's signed webhook.

Both end in the order pipeline's ``pay_order`` (``orders.py``), which moves the reservation to
paid in Redis (one winner against cancel and expiry) and, in one SQL transaction, marks the
order paid and books its ledger entries. This module adds who may pay, the webhook's
signature, replay window and event-id dedupe, and the amount check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from livecommerce.auth import Principal
from livecommerce.context import AppContext
from livecommerce.errors import ApiError, conflict, forbidden, not_found
from livecommerce.models import Order, PaymentEvent
from livecommerce.signatures import HEADER, SignatureError, verify
from livecommerce.validation import Cents, Id, StrictBody, parse_json_bytes, read_body, validate
from livecommerce.views import order_view
from livecommerce.webhooks import WebhookDispatcher

PAID = ("paid", "already_paid")


class PaymentWebhookBody(StrictBody):
    event_id: Id
    order_id: Id
    amount_cents: Cents
    status: Id


async def find_order(app: AppContext, order_id: str) -> Order | None:
    """The order as it stands now, even before the order writer has saved it to SQL."""
    if app.orders is not None:
        return await app.orders.load(order_id)
    async with app.db.read() as session:
        return await session.get(Order, order_id)


async def find_order_view(app: AppContext, order_id: str) -> dict[str, Any] | None:
    order = await find_order(app, order_id)
    return order_view(order) if order is not None else None


async def _pay(app: AppContext, order_id: str, *, late: bool) -> str:
    """Pay through the order pipeline: the Redis transition, then the SQL status and the
    ledger entries in one transaction."""
    if app.orders is None:
        raise ApiError(503, "unavailable", "the order pipeline is not running")
    return (await app.orders.pay_order(order_id, late=late)).result


def refusal(result: str) -> ApiError:
    if result == "not_found":
        return not_found("order")
    messages = {
        "expired": "the reservation expired before it was paid",
        "cancelled": "the reservation was cancelled",
        "refund_due": "the payment came too late; it is due for a refund",
    }
    return conflict(result, messages.get(result, f"the order could not be paid: {result}"))


async def pay_dev(app: AppContext, principal: Principal, order_id: str) -> dict[str, Any]:
    """The development payment: the buyer pays its own reservation at once."""
    view = await find_order_view(app, order_id)
    if view is None:
        raise not_found("order")
    if view["viewer_id"] != principal.id:
        raise forbidden("another viewer's order")
    result = await _pay(app, order_id, late=False)
    if result not in PAID:
        raise refusal(result)
    paid = await find_order_view(app, order_id)
    assert paid is not None
    return paid


async def receive_payment_webhook(app: AppContext, request: Request) -> tuple[int, dict[str, Any]]:
    """Verify, dedupe and apply one provider webhook; returns (status, body)."""
    secret = app.settings.payment_webhook_secret
    if not secret:
        raise ApiError(401, "unauthorized", "the payment webhook is not configured on this server")
    raw = await read_body(request)
    try:
        verify(secret, request.headers.get(HEADER), raw, time.time())
    except SignatureError as exc:
        raise ApiError(401, "bad_signature", str(exc)) from None
    data = parse_json_bytes(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    body = validate(PaymentWebhookBody, data)
    async with app.db.read() as session:
        seen = await session.get(PaymentEvent, body.event_id)
    if seen is not None:
        return 200, {"duplicate": True, "event_id": body.event_id, "result": seen.result}
    if body.status != "succeeded":
        return await _record(app, body, "ignored", None)
    view = await find_order_view(app, body.order_id)
    if view is None:
        raise not_found("order")
    if body.amount_cents != view["amount_cents"]:
        raise conflict(
            "amount_mismatch",
            f"the order is {view['amount_cents']} cents, the payment {body.amount_cents}",
        )
    result = await _pay(app, body.order_id, late=False)
    if result in ("expired", "cancelled"):
        result = await _pay(app, body.order_id, late=True)
    if result == "not_found":
        raise not_found("order")
    return await _record(app, body, result, await find_order_view(app, body.order_id))


async def _record(
    app: AppContext, body: PaymentWebhookBody, result: str, order: dict[str, Any] | None
) -> tuple[int, dict[str, Any]]:
    """Remember the event id; a concurrent delivery of the same event that lost the insert is
    answered as a duplicate (paying is idempotent, so it changed nothing either)."""
    try:
        async with app.db.write() as session:
            session.add(PaymentEvent(event_id=body.event_id, order_id=body.order_id, result=result))
    except IntegrityError:
        return 200, {"duplicate": True, "event_id": body.event_id, "result": result}
    return 200, {"event_id": body.event_id, "result": result, "order": order}


@dataclass
class Payments:
    """What the money side runs in each process: the outgoing webhook dispatcher."""

    webhooks: WebhookDispatcher
