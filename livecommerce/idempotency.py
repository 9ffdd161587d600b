"""``Idempotency-Key`` for refunds and payouts: the first answer to a key is stored in the same
write transaction as the change it made, and every repeat gets that answer back unchanged.

The key row is inserted before the work runs. SQLite serializes writers, so a concurrent repeat
waits and then finds the stored answer; on Postgres the second insert blocks on the primary key
until the first transaction ends, then fails, and the repeat reads the stored answer instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request

from livecommerce.db import Database
from livecommerce.errors import ApiError
from livecommerce.models import IdempotencyRecord

HEADER = "idempotency-key"
MAX_KEY = 255

Work = Callable[[AsyncSession], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    replayed: bool  # True: a repeat of an earlier request; nothing was changed this time


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY:
        raise ApiError(422, "invalid", f"Idempotency-Key must be 1 to {MAX_KEY} characters")
    return key


async def run_once(db: Database, scope: str, key: str | None, work: Work) -> Answer:
    """Run ``work`` in one write transaction, at most once per ``(scope, key)``.

    ``work`` returns (status, body) or raises ``ApiError``; a refusal is an answer too and is
    stored for the key. ``work`` must check everything before it writes, so that a refusal has
    changed nothing but the stored answer.
    """
    if key is None:
        async with db.write() as session:
            status, body = await work(session)
        return Answer(status, body, replayed=False)
    for _ in range(3):
        try:
            return await _attempt(db, scope, key, work)
        except IntegrityError:
            continue  # a concurrent request with this key won the insert: read its answer
    raise ApiError(409, "idempotency_conflict", "a request with this Idempotency-Key is running")


async def _attempt(db: Database, scope: str, key: str, work: Work) -> Answer:
    refusal: ApiError | None = None
    async with db.write() as session:
        stored = await session.get(IdempotencyRecord, (scope, key))
        if stored is not None:
            if stored.status_code >= 400:
                body = json.loads(stored.body)
                raise ApiError(stored.status_code, body.pop("error"), body.pop("message"), **body)
            return Answer(stored.status_code, json.loads(stored.body), replayed=True)
        record = IdempotencyRecord(scope=scope, key=key, status_code=0, body="")
        session.add(record)
        await session.flush()
        try:
            status, body = await work(session)
        except ApiError as exc:
            refusal = exc
            status = exc.status
            body = {"error": exc.code, "message": exc.message, **exc.extra}
        record.status_code = status
        record.body = json.dumps(body, separators=(",", ":"))
        session.add(record)
    if refusal is not None:
        raise refusal
    return Answer(status, body, replayed=False)
