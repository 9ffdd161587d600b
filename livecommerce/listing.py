"""Keyset-paged listings: ``{"items": [...], "next_cursor": ...}`` that never repeat or skip."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar
from starlette.requests import Request

from livecommerce.errors import ApiError
from livecommerce.validation import query_int

Row = TypeVar("Row")


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(422, "invalid", "?cursor= is not a cursor this server issued") from None
    if not key or len(key) > 128:
        raise ApiError(422, "invalid", "?cursor= is not a cursor this server issued")
    return key


async def keyset_page(
    session: AsyncSession,
    request: Request,
    statement: SelectOfScalar[Row],
    key: Any,
    view: Callable[[Row], Any],
) -> dict[str, Any]:
    """One page of ``statement`` ordered by the unique column ``key``."""
    limit = query_int(request, "limit", 100, 1, 1000)
    cursor = request.query_params.get("cursor")
    if cursor:
        condition: ColumnElement[bool] = key > decode_cursor(cursor)
        statement = statement.where(condition)
    rows: Sequence[Row] = (await session.exec(statement.order_by(key).limit(limit + 1))).all()
    items = [view(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(str(rows[limit - 1].id))  # type: ignore[attr-defined]
    return {"items": items, "next_cursor": next_cursor}
