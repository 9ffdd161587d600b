"""Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and slow every request)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from livecommerce.metrics import Metrics
from livecommerce.origins import own_origin

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]


class RawSendMiddleware:
    """Keep the server's own ``send`` in the scope, so the hub can reach the socket's transport
    and write pre-encoded frames without a per-connection await."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            scope["lc.raw_send"] = send
        await self.app(scope, receive, send)


class MetricsMiddleware:
    """Counts requests per route template and status; adds security headers."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = _route_template(scope)
            self.metrics.http_requests.labels(route, str(status)).inc()
            self.metrics.http_latency.labels(route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))


CORS_ALLOW_HEADERS = b"authorization, content-type, idempotency-key"
CORS_ALLOW_METHODS = b"GET, POST, PUT, DELETE, OPTIONS"


class CorsMiddleware:
    """CORS from the same allow-list as WebSocket origins (``origins.OriginPolicy``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _header(scope, b"origin")
        if scope["type"] != "http" or origin is None:
            await self.app(scope, receive, send)
            return
        context = getattr(scope["app"].state, "lc", None)
        own = own_origin(scope.get("scheme", "http"), _header(scope, b"host"))
        allowed = context is not None and await context.origins.allows(origin, own)
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await _preflight(send, origin if allowed else None)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"access-control-allow-origin", origin.encode()),
                    (b"vary", b"Origin"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _preflight(send: Send, origin: str | None) -> None:
    if origin is None:
        body = b'{"error":"forbidden","message":"origin not allowed"}'
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    headers = [
        (b"access-control-allow-origin", origin.encode()),
        (b"access-control-allow-methods", CORS_ALLOW_METHODS),
        (b"access-control-allow-headers", CORS_ALLOW_HEADERS),
        (b"access-control-max-age", b"600"),
        (b"vary", b"Origin"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


MAX_PATH_SEGMENT = 128


class SafePathMiddleware:
    """A path segment no id could be (control characters such as NUL, or absurdly long) names
    nothing: answer 404 before it reaches a database that would choke on it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not _path_is_safe(scope.get("path", "")):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 4404})
                return
            body = b'{"error":"not_found","message":"nothing is at this path"}'
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _path_is_safe(path: str) -> bool:
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        return False
    return all(len(segment) <= MAX_PATH_SEGMENT for segment in path.split("/"))
