"""Outgoing webhooks to brands: a transactional outbox in SQL and a delivery loop.

``enqueue`` adds a row in the same transaction as the order change it reports, so an event is
recorded exactly when its cause is. The ``WebhookDispatcher`` of every process polls for due
rows; a process claims a row with a conditional UPDATE that moves its next attempt past a lease,
so only one process delivers it at a time, and a process that dies mid-delivery only delays the
row by the lease. Failed deliveries are retried with exponential backoff until a 2xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.engine import CursorResult
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from livecommerce.db import Database
from livecommerce.ids import new_id
from livecommerce.models import Brand, Order, WebhookDelivery
from livecommerce.signatures import HEADER, sign
from livecommerce.timeutil import iso, utcnow
from livecommerce.views import order_view

log = logging.getLogger("livecommerce.webhooks")

EVENT_TYPES = ("order.paid", "order.refunded", "order.expired")


def backoff_s(attempts: int, base_s: float, cap_s: float) -> float:
    """Delay before the next try after ``attempts`` failed ones: base, 2×base, 4×base, … cap."""
    return float(min(cap_s, base_s * 2 ** max(0, attempts - 1)))


async def enqueue(session: AsyncSession, brand_id: str, type: str, order: Order) -> None:
    """Record a webhook for ``brand_id`` about ``order`` if the brand has a URL set; delivered
    after the surrounding transaction commits."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook type {type!r}")
    brand = await session.get(Brand, brand_id)
    if brand is None or not brand.webhook_url:
        return
    now = utcnow()
    event_id = "evt_" + new_id()
    body = {"event_id": event_id, "type": type, "created_at": iso(now), "order": order_view(order)}
    session.add(
        WebhookDelivery(
            event_id=event_id,
            brand_id=brand_id,
            type=type,
            body=json.dumps(body, separators=(",", ":")),
            next_attempt_at=now,
            created_at=now,
        )
    )


class WebhookDispatcher:
    """Delivers due outbox rows; one per process, safe to run in many processes at once."""

    def __init__(
        self,
        db: Database,
        *,
        poll_s: float = 0.5,
        lease_s: float = 60.0,
        timeout_s: float = 10.0,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 3600.0,
        batch: int = 50,
    ) -> None:
        self.db = db
        self.poll_s = poll_s
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.batch = batch
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        self._task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            try:
                delivered = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery round failed")
                delivered = 0
            await asyncio.sleep(0 if delivered >= self.batch else self.poll_s)

    async def deliver_due(self) -> int:
        """Claim and deliver the rows that are due now; returns how many were attempted."""
        now = utcnow()
        async with self.db.read() as session:
            statement = (
                select(WebhookDelivery)
                .where(
                    col(WebhookDelivery.delivered_at).is_(None),
                    col(WebhookDelivery.next_attempt_at) <= now,
                )
                .order_by(col(WebhookDelivery.next_attempt_at))
                .limit(self.batch)
            )
            due: Sequence[WebhookDelivery] = (await session.exec(statement)).all()
        claimed = [row for row in due if await self._claim(row.event_id, now)]
        await asyncio.gather(*(self._deliver(row) for row in claimed))
        return len(claimed)

    async def _claim(self, event_id: str, now: datetime) -> bool:
        """Move the row's next attempt past the lease if it is still due: one process wins."""
        statement = (
            update(WebhookDelivery)
            .where(
                col(WebhookDelivery.event_id) == event_id,
                col(WebhookDelivery.delivered_at).is_(None),
                col(WebhookDelivery.next_attempt_at) <= now,
            )
            .values(next_attempt_at=now + timedelta(seconds=self.lease_s))
        )
        async with self.db.write() as session:
            result: CursorResult[tuple[()]] = await session.exec(statement)
            return bool(result.rowcount == 1)

    async def _deliver(self, row: WebhookDelivery) -> None:
        async with self.db.read() as session:
            brand = await session.get(Brand, row.brand_id)
        error: str | None = None
        if brand is None or not brand.webhook_url or not brand.webhook_secret:
            error = "the brand has no webhook URL"
        else:
            error = await self._post(brand.webhook_url, brand.webhook_secret, row)
        await self._record(row, error)

    async def _post(self, url: str, secret: str, row: WebhookDelivery) -> str | None:
        """POST the signed body; ``None`` on a 2xx, else what went wrong."""
        assert self._client is not None
        body = row.body.encode()
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(secret, int(time.time()), body),
            "X-Livecommerce-Event-Id": row.event_id,
            "X-Livecommerce-Event-Type": row.type,
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def _record(self, row: WebhookDelivery, error: str | None) -> None:
        now = utcnow()
        values: dict[str, object] = {"attempts": WebhookDelivery.attempts + 1}
        if error is None:
            values["delivered_at"] = now
            values["last_error"] = None
        else:
            delay = backoff_s(row.attempts + 1, self.backoff_base_s, self.backoff_cap_s)
            values["next_attempt_at"] = now + timedelta(seconds=delay)
            values["last_error"] = error
            log.info("webhook %s to brand %s failed: %s", row.event_id, row.brand_id, error)
        statement = (
            update(WebhookDelivery)
            .where(col(WebhookDelivery.event_id) == row.event_id)
            .values(**values)
        )
        async with self.db.write() as session:
            await session.exec(statement)
