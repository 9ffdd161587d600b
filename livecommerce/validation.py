"""Request bodies: size and nesting limits before parsing, strict typed models after.

Validation runs before anything that could overflow: Python's ``json`` recurses on nesting and
SQLite stores 64-bit integers, so both are bounded here first.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.requests import Request

from livecommerce.errors import ApiError

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32
MAX_CENTS = 10_000_000_000
MAX_STOCK = 10_000_000
MAX_QTY = 10_000
MAX_URL = 2048

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64)]
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ChatText = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Cents = Annotated[int, Field(ge=1, le=MAX_CENTS)]
Bps = Annotated[int, Field(ge=0, le=10_000)]
Stock = Annotated[int, Field(ge=1, le=MAX_STOCK)]
Qty = Annotated[int, Field(ge=1, le=MAX_QTY)]
Units = Annotated[int, Field(ge=1, le=MAX_STOCK)]

Body = TypeVar("Body", bound=BaseModel)


class StrictBody(BaseModel):
    """Base of every request body: no coercion between JSON types."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


def json_depth_exceeds(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when ``raw`` nests arrays/objects deeper than ``limit`` (strings are skipped)."""
    depth = 0
    in_string = False
    escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_bytes(raw: bytes) -> Any:
    """Parse JSON within the nesting limit; raises ``ApiError`` (400/422) on bad input."""
    if json_depth_exceeds(raw):
        raise ApiError(422, "invalid", f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > MAX_BODY_BYTES:
                raise ApiError(413, "body_too_large", f"body over {MAX_BODY_BYTES} bytes")
        except ValueError:
            raise ApiError(400, "bad_request", "malformed Content-Length") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is ``{}``."""
    raw = await read_body(request)
    if not raw.strip():
        return {}
    data = parse_json_bytes(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    return data


async def no_body(request: Request) -> None:
    """A call without a body accepts an empty body or ``{}`` (anything else that is not a JSON
    object is refused with 400, like every other call)."""
    await json_object(request)


def validate(model: type[Body], data: dict[str, Any]) -> Body:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(part) for part in error["loc"]), "problem": error["msg"]}
            for error in exc.errors(include_url=False, include_input=False)
        ]
        summary = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems[:5])
        raise ApiError(422, "invalid", summary, fields=problems) from None


async def parse_body(request: Request, model: type[Body]) -> Body:
    return validate(model, await json_object(request))


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 12 or not low <= int(raw) <= high:
        raise ApiError(422, "invalid", f"?{name}= must be an integer from {low} to {high}")
    return int(raw)
