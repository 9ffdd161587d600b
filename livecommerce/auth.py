"""Bearer tokens and roles.

A token reads ``<role>_<id>_<secret>``; only a SHA-256 of the secret is stored, compared in
constant time. Viewer tokens never change and are checked on every buy and every socket, so their
hashes are also kept in Redis (one GET instead of a SQL read during a connection storm) and
verified ones are cached in process; brand and dealer tokens are checked against SQL on every
call, so a rotation takes effect at once everywhere.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from livecommerce.db import Database
from livecommerce.errors import ApiError
from livecommerce.ids import hash_secret, new_secret
from livecommerce.models import Brand, Dealer, Viewer

Role = Literal["admin", "brand", "dealer", "viewer"]
VIEWER_CACHE_SIZE = 200_000
VIEWER_TOKEN_TTL_S = 30 * 86_400  # SQL stays the record; Redis only spares it the reads


def viewer_token_key(viewer_id: str) -> str:
    return f"lc:viewer-token:{viewer_id}"


@dataclass(frozen=True)
class Principal:
    role: Role
    id: str

    @property
    def party(self) -> str:
        return "platform" if self.role == "admin" else f"{self.role}:{self.id}"


def make_token(role: Role, entity_id: str) -> tuple[str, str]:
    """A fresh token for ``entity_id`` and the hash to store."""
    secret = new_secret()
    return f"{role}_{entity_id}_{secret}", hash_secret(secret)


def bearer_token(connection: HTTPConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class Authenticator:
    """Turns a token into a ``Principal`` (or ``None`` when it is not valid)."""

    def __init__(self, db: Database, admin_token: str, redis: Redis) -> None:
        self.db = db
        self.admin_token = admin_token
        self.redis = redis
        self._viewers: OrderedDict[str, Principal] = OrderedDict()

    async def remember_viewer(self, viewer_id: str, token_hash: str) -> None:
        await self.redis.set(viewer_token_key(viewer_id), token_hash, ex=VIEWER_TOKEN_TTL_S)

    async def _viewer_token_hash(self, viewer_id: str) -> str | None:
        cached = await self.redis.get(viewer_token_key(viewer_id))
        if cached is not None:
            return cached.decode() if isinstance(cached, bytes) else str(cached)
        async with self.db.read() as session:
            row = await session.get(Viewer, viewer_id)
        if row is None:
            return None
        await self.remember_viewer(viewer_id, row.token_hash)
        return row.token_hash

    async def principal(self, token: str | None) -> Principal | None:
        if not token or len(token) > 256:
            return None
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return Principal("admin", "admin")
        role, _, rest = token.partition("_")
        entity_id, _, secret = rest.partition("_")
        if not entity_id or not secret:
            return None
        if role == "viewer":
            return await self._viewer(token, entity_id, secret)
        if role not in ("brand", "dealer"):
            return None
        async with self.db.read() as session:
            row: Brand | Dealer | None = await session.get(
                Brand if role == "brand" else Dealer, entity_id
            )
        if row is None or not hmac.compare_digest(row.token_hash, hash_secret(secret)):
            return None
        return Principal(role, entity_id)  # type: ignore[arg-type]

    async def _viewer(self, token: str, viewer_id: str, secret: str) -> Principal | None:
        cached = self._viewers.get(token)
        if cached is not None:
            self._viewers.move_to_end(token)
            return cached
        stored = await self._viewer_token_hash(viewer_id)
        if stored is None or not hmac.compare_digest(stored, hash_secret(secret)):
            return None
        principal = Principal("viewer", viewer_id)
        self._viewers[token] = principal
        if len(self._viewers) > VIEWER_CACHE_SIZE:
            self._viewers.popitem(last=False)
        return principal

    async def require(self, connection: HTTPConnection, *roles: Role) -> Principal:
        """The caller, who must hold one of ``roles`` (401 without a valid token, else 403)."""
        principal = await self.principal(bearer_token(connection))
        if principal is None:
            raise ApiError(401, "unauthorized", "a valid bearer token is required")
        if roles and principal.role not in roles:
            raise ApiError(403, "forbidden", f"this call is for: {', '.join(roles)}")
        return principal

    async def optional(self, connection: HTTPConnection) -> Principal | None:
        token = bearer_token(connection)
        if token is None:
            return None
        principal = await self.principal(token)
        if principal is None:
            raise ApiError(401, "unauthorized", "the bearer token is not valid")
        return principal
