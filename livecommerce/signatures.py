"""The webhook signature, both ways: ``X-Livecommerce-Signature: t=<unix>,v1=<hex>`` where the
hex is HMAC-SHA256 of ``"<t>.<raw body>"`` under a shared secret. The timestamp is signed too, so
a captured delivery cannot be replayed after the tolerance window."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Livecommerce-Signature"
TOLERANCE_S = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str, header: str | None, body: bytes, now: float, tolerance_s: int = TOLERANCE_S
) -> int:
    """Check ``header`` against ``body``; returns the signed timestamp or raises
    ``SignatureError``. Several ``v1=`` values are allowed (a secret being rotated)."""
    if not header or len(header) > 1024:
        raise SignatureError("missing signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("signature timestamp outside the 5 minute window")
    expected = signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates):
        raise SignatureError("signature does not match")
    return timestamp
