"""``create_app(settings)``: the routes, the middleware, and a lifespan that opens and closes
every resource (embedded Redis, Redis client, SQL, background services)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from livecommerce import ws
from livecommerce.auth import Authenticator
from livecommerce.broker import Broker
from livecommerce.context import AppContext
from livecommerce.db import Database
from livecommerce.embedded_redis import EmbeddedRedis
from livecommerce.errors import (
    ApiError,
    handle_api_error,
    handle_backend_unavailable,
    handle_http_exception,
    handle_unexpected,
)
from livecommerce.hub import Hub
from livecommerce.ids import new_secret
from livecommerce.metrics import Metrics
from livecommerce.middleware import (
    CorsMiddleware,
    MetricsMiddleware,
    RawSendMiddleware,
    SafePathMiddleware,
)
from livecommerce.orders import start_order_pipeline
from livecommerce.origins import OriginPolicy
from livecommerce.payments import Payments
from livecommerce.redisconn import redis_client
from livecommerce.routes import (
    cards,
    moderation,
    money,
    orders,
    pages,
    parties,
    products,
    public,
    reports,
    rooms,
    seckills,
    system,
)
from livecommerce.settings import Settings
from livecommerce.webhooks import WebhookDispatcher

log = logging.getLogger("livecommerce")


def admin_token_for(settings: Settings) -> str:
    """The admin token: from settings, else generated once into ``data_dir/admin_token``."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.data_dir / "admin_token"
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = "admin_" + new_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    return token


def all_routes() -> list[BaseRoute]:
    return [
        *system.routes,
        *parties.routes,
        *products.routes,
        *rooms.routes,
        *cards.routes,
        *seckills.routes,
        *orders.routes,
        *moderation.routes,
        *ws.routes,
        *public.routes,
        *money.routes,
        *reports.routes,
        *pages.routes,
    ]


async def _open_redis(settings: Settings, stack: AsyncExitStack) -> Redis:
    url = settings.redis_url
    if not url:
        embedded = EmbeddedRedis(Path(settings.data_dir))
        url = await asyncio.to_thread(embedded.start)
        stack.push_async_callback(asyncio.to_thread, embedded.stop)
        log.info("embedded redis-server started at %s", url)
    client = redis_client(url)
    stack.push_async_callback(client.aclose)
    await client.ping()
    return client


def create_app(settings: Settings) -> Starlette:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            admin_token = admin_token_for(settings)
            redis = await _open_redis(settings, stack)
            db = Database(settings)
            stack.push_async_callback(db.close)
            await db.create_schema()
            context = AppContext(
                settings=settings,
                db=db,
                redis=redis,
                auth=Authenticator(db, admin_token, redis),
                broker=Broker(redis),
                metrics=metrics,
                admin_token=admin_token,
                origins=OriginPolicy(db, settings.allowed_origins),
            )
            dispatcher = WebhookDispatcher(db)
            await dispatcher.start()
            stack.push_async_callback(dispatcher.stop)
            context.payments = Payments(webhooks=dispatcher)
            hub = Hub(redis, context.broker, metrics, db)
            await hub.start()
            stack.push_async_callback(hub.stop)
            context.hub = hub
            await start_order_pipeline(context, stack)
            app.state.lc = context
            yield

    app = Starlette(
        routes=all_routes(),
        middleware=[
            Middleware(RawSendMiddleware),
            Middleware(SafePathMiddleware),
            Middleware(MetricsMiddleware, metrics=metrics),
            Middleware(CorsMiddleware),
        ],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            RedisConnectionError: handle_backend_unavailable,
            OperationalError: handle_backend_unavailable,
            InterfaceError: handle_backend_unavailable,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    return app


def app_from_env() -> Starlette:
    """The factory uvicorn workers import: settings from the environment."""
    return create_app(Settings.from_env())
