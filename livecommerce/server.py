"""Running the server: embedded Redis in the supervising process, schema once, then uvicorn
(in process for one worker, uvicorn's supervisor for several)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette

from livecommerce.app import admin_token_for, app_from_env, create_app
from livecommerce.db import Database
from livecommerce.embedded_redis import EmbeddedRedis
from livecommerce.settings import Settings

if TYPE_CHECKING:
    from livecommerce.hub import Hub


def _export(settings: Settings) -> None:
    """Hand the effective settings to worker processes through their environment."""
    values = {
        "DATA_DIR": str(settings.data_dir),
        "REDIS_URL": settings.redis_url or "",
        "HOST": settings.host,
        "PORT": str(settings.port),
        "PUBLIC_URL": settings.public_url or "",
        "DEV_PAYMENTS": "1" if settings.dev_payments else "0",
        "ADMIN_TOKEN": settings.admin_token or "",
    }
    for name, value in values.items():
        if value:
            os.environ["LIVECOMMERCE_" + name] = value


def _hub_of(app: object) -> Hub | None:
    """The hub of the Starlette app inside uvicorn's middleware wrappers, once started."""
    for _ in range(16):
        state = getattr(app, "state", None)
        context = getattr(state, "lc", None) if state is not None else None
        if context is not None:
            hub: Hub | None = context.hub
            return hub
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


_UVICORN_SHUTDOWN = uvicorn.Server.shutdown


async def _shutdown_closing_websockets(
    self: uvicorn.Server, sockets: list[socket.socket] | None = None
) -> None:
    """Close WebSockets with 1001 (going away: reconnect with ``since``) before uvicorn's own
    shutdown would close them with 1012."""
    for server in self.servers:
        server.close()
    hub = _hub_of(self.config.loaded_app)
    if hub is not None:
        await hub.close_all()
    await _UVICORN_SHUTDOWN(self, sockets)


class HubServer(uvicorn.Server):
    """uvicorn's server, closing WebSockets with 1001 on shutdown."""

    shutdown = _shutdown_closing_websockets


def worker_app() -> Starlette:
    """The app factory of ``--workers N`` processes. uvicorn's supervisor builds each worker's
    server itself, so teach uvicorn's class the 1001 close in that (spawned) process."""
    uvicorn.Server.shutdown = _shutdown_closing_websockets  # type: ignore[method-assign]
    return app_from_env()


def uvicorn_options(settings: Settings) -> dict[str, object]:
    return {
        "host": settings.host,
        "port": settings.port,
        # measured: websockets-sansio holds an idle connection in less memory than the legacy
        # websockets impl and accepts faster than wsproto (docs/benchmarks.md, Fan-out)
        "ws": "websockets-sansio",
        "ws_max_size": 64 * 1024,
        "ws_per_message_deflate": False,
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        "backlog": 4096,
        "access_log": False,  # a WebSocket URL carries its token: never log it
        "timeout_graceful_shutdown": 5,
        "timeout_keep_alive": 30,
        "log_level": "info",
    }


async def _prepare(settings: Settings) -> None:
    db = Database(settings)
    try:
        await db.create_schema()
    finally:
        await db.close()


def prepare_schema(settings: Settings) -> None:
    asyncio.run(_prepare(settings))


def start_embedded_redis(settings: Settings) -> tuple[EmbeddedRedis | None, Settings]:
    """Start an embedded redis-server unless settings name one; the settings that point at it."""
    if settings.redis_url:
        return None, settings
    embedded = EmbeddedRedis(settings.data_dir)
    return embedded, settings.with_(redis_url=embedded.start())


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def exit_cleanly_on_signals() -> None:
    """uvicorn re-raises the signal that stopped it once it has shut down gracefully; make that
    a clean exit that still runs our ``finally`` blocks (stopping the embedded Redis)."""
    signal.signal(signal.SIGINT, _exit_cleanly)
    signal.signal(signal.SIGTERM, _exit_cleanly)


def run_server(settings: Settings, announce: bool = True) -> int:
    """Start the embedded Redis if needed, then serve until interrupted."""
    exit_cleanly_on_signals()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    generated = not settings.admin_token  # a token the operator set is never echoed
    settings = settings.with_(admin_token=admin_token_for(settings))
    embedded, settings = start_embedded_redis(settings)
    try:
        prepare_schema(settings)
        if announce:
            print(f"livecommerce serving on http://{settings.host}:{settings.port}", flush=True)
            if generated:
                token_file = settings.data_dir / "admin_token"
                print(f"admin token (kept in {token_file}): {settings.admin_token}", flush=True)
        if settings.workers > 1:
            _export(settings)
            uvicorn.run(
                "livecommerce.server:worker_app",
                factory=True,
                workers=settings.workers,
                **uvicorn_options(settings),  # type: ignore[arg-type]
            )
        else:
            config = uvicorn.Config(create_app(settings), **uvicorn_options(settings))  # type: ignore[arg-type]
            HubServer(config).run()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0
