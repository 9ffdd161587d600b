"""Which browser origins may call the API (CORS) and open WebSockets.

The server's own origin is always allowed; ``LIVECOMMERCE_ALLOWED_ORIGINS`` and every dealer's
``allowed_sites`` add others. Dealer sites are read from SQL at most every few seconds.
"""

from __future__ import annotations

import json
import time

from sqlmodel import select

from livecommerce.db import Database
from livecommerce.models import Dealer

REFRESH_S = 3.0


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def own_origin(scheme: str, host_header: str | None) -> str | None:
    """``scheme://host[:port]`` of a request, as a browser would send it in ``Origin``."""
    if not host_header:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return normalize_origin(f"{scheme}://{host_header}")


class OriginPolicy:
    def __init__(self, db: Database, configured: tuple[str, ...]) -> None:
        self.db = db
        self.configured = frozenset(normalize_origin(o) for o in configured)
        self._dealer_sites: frozenset[str] = frozenset()
        self._loaded_at = 0.0

    async def dealer_sites(self) -> frozenset[str]:
        if time.monotonic() - self._loaded_at > REFRESH_S:
            async with self.db.read() as session:
                rows = (await session.exec(select(Dealer.allowed_sites))).all()
            sites: set[str] = set()
            for raw in rows:
                sites.update(normalize_origin(site) for site in json.loads(raw or "[]"))
            self._dealer_sites = frozenset(sites)
            self._loaded_at = time.monotonic()
        return self._dealer_sites

    def invalidate(self) -> None:
        self._loaded_at = 0.0

    async def allows(
        self, origin: str, own: str | None, extra: frozenset[str] = frozenset()
    ) -> bool:
        """Whether ``origin`` may call the API (``extra``: a room's dealer sites, for sockets)."""
        origin = normalize_origin(origin)
        if origin == own or origin in self.configured or origin in extra:
            return True
        return origin in await self.dealer_sites()
