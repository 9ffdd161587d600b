"""The pages in ``static/``, found beside the package (a checkout) or inside it (a wheel)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from livecommerce.errors import not_found

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def static_dir() -> Path:
    for candidate in (PACKAGE_DIR.parent / "static", PACKAGE_DIR / "static"):
        if candidate.is_dir():
            return candidate
    return PACKAGE_DIR.parent / "static"


def page(path: str, filename: str) -> Route:
    async def serve(_request: Request) -> Response:
        file = static_dir() / filename
        if not file.is_file():
            raise not_found("page")
        return FileResponse(file, media_type="text/html")

    return Route(path, serve, methods=["GET"], name=filename)


routes: list[BaseRoute] = [
    page("/", "index.html"),
    page("/host", "host.html"),
    page("/dealer", "dealer.html"),
    page("/watch/{room_id}", "watch.html"),
    page("/embed/{room_id}", "embed.html"),
    Mount("/static", app=StaticFiles(directory=static_dir(), check_dir=False), name="static"),
]
