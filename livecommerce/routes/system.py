"""Liveness, metrics and the OpenAPI schema."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from livecommerce.api import ApiRoute, json_response, openapi_schema
from livecommerce.context import ctx


async def healthz(request: Request) -> Response:
    app = ctx(request)
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(app.redis.ping(), timeout=2)
        checks["redis"] = "ok"
    except Exception as exc:  # a liveness probe reports, it does not fail
        checks["redis"] = f"error: {type(exc).__name__}"
    status = "ok" if all(value == "ok" for value in checks.values()) else "degraded"
    return json_response({"status": status, **checks})


async def metrics(request: Request) -> Response:
    app = ctx(request)
    await app.auth.require(request, "admin")
    return Response(app.metrics.render(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    return json_response(openapi_schema(request.app.routes))


routes = [
    ApiRoute("/healthz", healthz, method="GET", summary="Liveness", roles=["anyone"]),
    ApiRoute("/metrics", metrics, method="GET", summary="Prometheus metrics", roles=["admin"],
             content_type="text/plain"),
    ApiRoute("/openapi.json", openapi, method="GET", summary="This schema", roles=["anyone"]),
]  # fmt: skip
