"""The pages in ``static/``, found beside the package (a checkout) or inside it (a wheel), each
with a Content-Security-Policy; plus the demo's HLS test stream from the data dir.

Only the embed page may be framed, and only by the sites its dealer listed (``frame-ancestors``);
every other page refuses framing (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from livecommerce import demo_stream
from livecommerce.context import ctx
from livecommerce.errors import not_found
from livecommerce.models import Dealer, Room

PACKAGE_DIR = Path(__file__).resolve().parent.parent

# No inline script or style anywhere: user text can never become code. Media and segment
# fetches go to the brand's streaming provider, so http(s) sources are allowed there.
BASE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob: https: http:; media-src 'self' blob: https: http:; "
    "connect-src 'self' ws: wss: https: http:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'"
)


def static_dir() -> Path:
    for candidate in (PACKAGE_DIR.parent / "static", PACKAGE_DIR / "static"):
        if candidate.is_dir():
            return candidate
    return PACKAGE_DIR.parent / "static"


def content_security_policy(frame_ancestors: list[str] | None) -> str:
    """The page policy; ``None`` ancestors = not embeddable anywhere."""
    ancestors = " ".join(["'self'", *frame_ancestors]) if frame_ancestors is not None else "'none'"
    return f"{BASE_POLICY}; frame-ancestors {ancestors}"


def origin_of(site: str) -> str | None:
    """``scheme://host[:port]`` of a listed site, or None when it is not a plain http(s) origin
    (anything else could smuggle another directive into the header)."""
    try:
        parts = urlsplit(site.strip())
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return None
    if not all(ch.isalnum() or ch in ".-" for ch in host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _html(filename: str) -> Path:
    file = static_dir() / filename
    if not file.is_file():
        raise not_found("page")
    return file


def page(path: str, filename: str) -> Route:
    async def serve(_request: Request) -> Response:
        return FileResponse(
            _html(filename),
            media_type="text/html",
            headers={
                "Content-Security-Policy": content_security_policy(None),
                "X-Frame-Options": "DENY",
                "Cache-Control": "no-cache",
            },
        )

    return Route(path, serve, methods=["GET"], name=filename)


async def embed_page(request: Request) -> Response:
    """The compact watch page, frameable by the room dealer's sites and the allowed origins."""
    app = ctx(request)
    async with app.db.read() as session:
        room = await session.get(Room, request.path_params["room_id"])
        if room is None:
            raise not_found("room")
        dealer = await session.get(Dealer, room.dealer_id) if room.dealer_id else None
    sites: list[str] = list(app.settings.allowed_origins)
    if dealer is not None:
        sites += json.loads(dealer.allowed_sites or "[]")
    ancestors = sorted({origin for site in sites if (origin := origin_of(site)) is not None})
    return FileResponse(
        _html("embed.html"),
        media_type="text/html",
        headers={
            "Content-Security-Policy": content_security_policy(ancestors),
            "Cache-Control": "no-cache",
        },
    )


async def demo_stream_file(request: Request) -> Response:
    """The demo's HLS playlist and segments, by exact name only (no path from the URL)."""
    name = request.path_params["name"]
    if name not in demo_stream.file_names():
        raise not_found("demo stream file")
    file = demo_stream.stream_dir(ctx(request).settings.data_dir) / name
    if not file.is_file():
        raise not_found("demo stream file")
    media_type = "application/vnd.apple.mpegurl" if name.endswith(".m3u8") else "video/mp2t"
    return FileResponse(file, media_type=media_type, headers={"Cache-Control": "max-age=60"})


routes: list[BaseRoute] = [
    page("/", "index.html"),
    page("/host", "host.html"),
    page("/dealer", "dealer.html"),
    page("/watch/{room_id}", "watch.html"),
    Route("/embed/{room_id}", embed_page, methods=["GET"], name="embed.html"),
    Route("/demo-stream/{name}", demo_stream_file, methods=["GET"], name="demo_stream"),
    Mount("/static", app=StaticFiles(directory=static_dir(), check_dir=False), name="static"),
]
