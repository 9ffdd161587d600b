"""Running the server: embedded Redis in the supervising process, schema once, then uvicorn
(in process for one worker, uvicorn's supervisor for several)."""

from __future__ import annotations

import asyncio
import os
import signal

import uvicorn

from livecommerce.app import admin_token_for, create_app
from livecommerce.db import Database
from livecommerce.embedded_redis import EmbeddedRedis
from livecommerce.settings import Settings


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


def uvicorn_options(settings: Settings) -> dict[str, object]:
    return {
        "host": settings.host,
        "port": settings.port,
        "ws": "websockets",
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
    settings = settings.with_(admin_token=admin_token_for(settings))
    embedded, settings = start_embedded_redis(settings)
    try:
        prepare_schema(settings)
        if announce:
            print(f"livecommerce serving on http://{settings.host}:{settings.port}", flush=True)
            print(f"admin token: {settings.admin_token}", flush=True)
        if settings.workers > 1:
            _export(settings)
            uvicorn.run(
                "livecommerce.app:app_from_env",
                factory=True,
                workers=settings.workers,
                **uvicorn_options(settings),  # type: ignore[arg-type]
            )
        else:
            config = uvicorn.Config(create_app(settings), **uvicorn_options(settings))  # type: ignore[arg-type]
            uvicorn.Server(config).run()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0
