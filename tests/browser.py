"""Real headless Chromium for the page tests: launch options, pages that record every console
error and uncaught exception, and a tiny static site on another origin (for the embed)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def chromium_path() -> str:
    """The Chromium to drive; without one, skip locally but fail in CI."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is required in CI (/usr/bin/chromium not found)")
        pytest.skip("no Chromium on this machine")
    return path


@dataclass
class Problems:
    """What a page complained about: uncaught errors and console errors."""

    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} @ {message.location.get('url')}")

    def assert_clean(self) -> None:
        assert not self.page_errors, f"uncaught page errors: {self.page_errors}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


async def open_page(
    browser: Browser,
    url: str,
    problems: Problems,
    viewport: dict[str, int] | None = None,
    **context_options: Any,
) -> tuple[BrowserContext, Page]:
    """A fresh context (own storage, like a separate person) with one page at ``url``."""
    context = await browser.new_context(viewport=viewport or DESKTOP, **context_options)  # type: ignore[arg-type]
    page = await context.new_page()
    problems.watch(page)
    await page.goto(url)
    return context, page


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=False)
    return path


@contextmanager
def site(html: str, port: int) -> Iterator[str]:
    """Serve one HTML page at ``http://localhost:<port>/`` (another origin than the server's
    ``127.0.0.1``) until the block ends."""
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/", "/index.html"):
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        server.shutdown()
        server.server_close()
