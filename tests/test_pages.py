"""The pages, end to end: a real server, real headless Chromium, and what people see."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from livecommerce import demo_stream
from livecommerce.process import ServerProcess, free_port
from livecommerce.routes.pages import content_security_policy, origin_of
from livecommerce.simulation import simulate_audience
from tests.browser import (
    DESKTOP,
    LAUNCH_ARGS,
    PHONE,
    Problems,
    chromium_path,
    open_page,
    screenshot,
    site,
)
from tests.conftest import Api

TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=path, args=LAUNCH_ARGS)
        yield chromium
        await chromium.close()


def world(api: Api, dealers: int = 1, **product: Any) -> dict[str, Any]:
    """A live brand room, ``dealers`` dealers each with a mirror, and one product."""
    brand = api.brand("Aurora Cosmetics")
    room = api.room(brand, title="Winter Glow Launch")
    fields = {"title": "Glow Serum 30 ml", "price_cents": 12900, "dealer_bps": 1500, **product}
    item = api.product(brand, sku=f"GLOW-{room['id'][-6:]}", **fields)
    made = []
    for index in range(dealers):
        dealer = api.dealer(f"Dealer {index + 1}")
        made.append({**dealer, "mirror": api.mirror(brand, room, dealer)})
    return {"brand": brand, "room": room, "product": item, "dealers": made}


def iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def fits_the_screen(page: Page) -> None:
    """Nothing sticks out sideways (a phone would have to scroll to see it)."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


async def connected(page: Page) -> None:
    """Wait until the page's room socket has said hello."""
    await expect(page.locator("body")).to_have_attribute(
        "data-connection", "live", timeout=TIMEOUT_MS
    )


# ---------- HTTP only: headers ----------


def test_every_page_sends_a_content_security_policy(api: Api) -> None:
    data = world(api)
    mirror = data["dealers"][0]["mirror"]
    for path in ("/", "/host", "/dealer", f"/watch/{mirror['id']}"):
        response = api.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-frame-options"] == "DENY"


def test_embed_may_be_framed_only_by_the_dealers_sites(api: Api) -> None:
    data = world(api)
    dealer = data["dealers"][0]
    sites = ["https://shop.example.com/", "http://localhost:8123/path"]
    api.ok(api.put(f"/api/dealers/{dealer['id']}/profile", dealer["token"],
                   {"allowed_sites": sites}), 200)  # fmt: skip
    response = api.get(f"/embed/{dealer['mirror']['id']}")
    assert response.status_code == 200
    assert "x-frame-options" not in response.headers
    policy = response.headers["content-security-policy"]
    ancestors = re.search(r"frame-ancestors ([^;]*)", policy)
    assert ancestors is not None
    assert ancestors.group(1).split() == [
        "'self'",
        "http://localhost:8123",
        "https://shop.example.com",
    ]
    assert api.get("/embed/no-such-room").status_code == 404


def test_listed_sites_cannot_inject_policy_directives() -> None:
    assert origin_of("https://a.example; script-src *") is None
    assert origin_of("javascript:alert(1)") is None
    assert origin_of("https://shop.example.com:8443/x?y") == "https://shop.example.com:8443"
    assert content_security_policy(["https://a.example"]).endswith(
        "frame-ancestors 'self' https://a.example"
    )


def test_public_room_read_needs_no_token_and_shows_branding(api: Api) -> None:
    data = world(api)
    dealer = data["dealers"][0]
    api.ok(api.put(f"/api/dealers/{dealer['id']}/profile", dealer["token"],
                   {"color": "#123abc"}), 200)  # fmt: skip
    face = api.ok(api.get(f"/api/rooms/{dealer['mirror']['id']}/public"), 200)
    assert face["title"] == dealer["mirror"]["title"]
    assert face["status"] == "live"
    assert face["dealer"] == {"id": dealer["id"], "name": dealer["name"], "logo_url": None,
                              "color": "#123abc"}  # fmt: skip
    assert "token" not in str(face)
    assert api.get("/api/rooms/nothing-here/public").status_code == 404


# ---------- the browser ----------


@pytest.mark.browser
async def test_pages_load_without_errors(server: ServerProcess, api: Api, browser: Browser) -> None:
    data = world(api)
    dealer = data["dealers"][0]
    problems = Problems()
    pages = [
        ("/", "h1"),
        ("/host", "#login"),
        ("/dealer", "#login"),
        (f"/host#token={data['brand']['token']}", "#console"),
        (f"/dealer#token={dealer['token']}", "#console"),
        (f"/watch/{dealer['mirror']['id']}", "#chat-input"),
        (f"/watch/{data['room']['id']}", "#chat-input"),
        (f"/embed/{dealer['mirror']['id']}", "#chat-input"),
    ]
    for path, visible in pages:
        context, page = await open_page(browser, server.base_url + path, problems)
        await expect(page.locator(visible)).to_be_visible(timeout=TIMEOUT_MS)
        if path.startswith(("/watch", "/embed")):
            await connected(page)
        await page.wait_for_timeout(300)
        assert "token=" not in page.url  # a console drops its token from the address bar
        await context.close()
    problems.assert_clean()


@pytest.mark.browser
async def test_host_pins_a_card_and_dealer_room_viewers_see_it_without_a_click(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    data = world(api)
    mirror = data["dealers"][0]["mirror"]
    problems = Problems()
    watchers = []
    for viewport in (PHONE, DESKTOP):
        context, page = await open_page(
            browser, f"{server.base_url}/watch/{mirror['id']}", problems, viewport
        )
        await connected(page)
        watchers.append((context, page))
    host_context, host = await open_page(
        browser, f"{server.base_url}/host#token={data['brand']['token']}", problems
    )
    pin = host.locator(f'[data-product-id="{data["product"]["id"]}"] button')
    await expect(pin).to_have_text("Pin", timeout=TIMEOUT_MS)
    await connected(host)
    await pin.click()
    await expect(pin).to_have_text("Unpin")
    for _context, page in watchers:
        card = page.locator(".product-card", has_text="Glow Serum 30 ml")
        await expect(card).to_be_visible(timeout=TIMEOUT_MS)
        await expect(card).to_be_in_viewport()
        await fits_the_screen(page)
    # a second card pins beside the first; unpinning takes one away everywhere
    second = api.product(data["brand"], sku=f"LIP-{mirror['id'][-6:]}", title="Velvet Lip Tint")
    api.ok(api.post(f"/api/rooms/{data['room']['id']}/cards", data["brand"]["token"],
                    {"product_id": second["id"]}), (200, 201))  # fmt: skip
    for _context, page in watchers:
        await expect(page.locator(".product-card")).to_have_count(2, timeout=TIMEOUT_MS)
    await pin.click()
    for _context, page in watchers:
        await expect(page.locator(".product-card")).to_have_count(1, timeout=TIMEOUT_MS)
        await expect(page.locator(".product-card")).to_contain_text("Velvet Lip Tint")
    await screenshot(watchers[0][1], "watch-phone")
    await screenshot(watchers[1][1], "watch-desktop")
    for context, _page in watchers:
        await context.close()
    await host_context.close()
    problems.assert_clean()


@pytest.mark.browser
async def test_two_mirrors_buy_and_both_stock_bars_drop_to_the_exact_unit(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    data = world(api, dealers=2)
    brand, room = data["brand"], data["room"]
    problems = Problems()
    viewers = []
    for dealer in data["dealers"]:
        context, page = await open_page(
            browser, f"{server.base_url}/watch/{dealer['mirror']['id']}", problems, PHONE
        )
        await connected(page)
        viewers.append((context, page))
    seckill = api.ok(api.post(f"/api/rooms/{room['id']}/seckills", brand["token"], {
        "product_id": data["product"]["id"], "price_cents": 2900, "stock": 2,
        "per_viewer_limit": 1, "starts_at": iso_in(4),
    }), 201)  # fmt: skip
    panel = f'[data-seckill-id="{seckill["id"]}"]'
    (_, first), (_, second) = viewers
    for page in (first, second):
        buy = page.locator(f"{panel} button.buy")
        await expect(buy).to_have_attribute("data-kind", "not_started", timeout=TIMEOUT_MS)
        await expect(buy).to_contain_text("Starts in")
        await expect(page.locator(f"{panel} .sk-left")).to_have_attribute("data-left", "2")
    # the countdown runs on server time: the button turns to "buy" by itself
    for page in (first, second):
        await expect(page.locator(f"{panel} button.buy")).to_have_attribute(
            "data-kind", "buy", timeout=TIMEOUT_MS
        )
    await first.locator(f"{panel} button.buy").click()
    await expect(first.locator(f"{panel} button.buy")).to_have_attribute("data-kind", "pay")
    for page in (first, second):
        await expect(page.locator(f"{panel} .sk-left")).to_have_attribute(
            "data-left", "1", timeout=TIMEOUT_MS
        )
    await second.locator(f"{panel} button.buy").click()
    await expect(second.locator(f"{panel} button.buy")).to_have_attribute("data-kind", "pay")
    for page in (first, second):
        await expect(page.locator(f"{panel} .sk-left")).to_have_attribute(
            "data-left", "0", timeout=TIMEOUT_MS
        )
        await expect(page.locator(f"{panel} .sk-state")).to_have_text("Sold out")
        await fits_the_screen(page)
        await expect(page.locator(f"{panel} .bar > div")).to_have_attribute("style", "width: 0%;")
    # a reload keeps the viewer (same token) and its reservation, still payable
    await second.reload()
    await connected(second)
    await expect(second.locator(f"{panel} button.buy")).to_have_attribute(
        "data-kind", "pay", timeout=TIMEOUT_MS
    )
    # the buyer pays (dev payment); a third viewer only sees the sold-out state
    await first.locator(f"{panel} button.buy").click()
    await expect(first.locator(f"{panel} button.buy")).to_have_attribute(
        "data-kind", "paid", timeout=TIMEOUT_MS
    )
    third_context, third = await open_page(
        browser, f"{server.base_url}/watch/{data['dealers'][0]['mirror']['id']}", problems, PHONE
    )
    await expect(third.locator(f"{panel} button.buy")).to_have_attribute(
        "data-kind", "sold_out", timeout=TIMEOUT_MS
    )
    await expect(third.locator(f"{panel} .sk-left")).to_have_attribute("data-left", "0")
    await screenshot(first, "watch-seckill-phone")
    for context, _page in viewers:
        await context.close()
    await third_context.close()
    problems.assert_clean()


@pytest.mark.browser
async def test_chat_stays_in_its_mirror_and_markup_renders_as_text(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    data = world(api, dealers=2)
    problems = Problems()
    (ctx_a, room_a), (ctx_b, room_b) = [
        await open_page(browser, f"{server.base_url}/watch/{d['mirror']['id']}", problems, PHONE)
        for d in data["dealers"]
    ]
    for page in (room_a, room_b):
        await connected(page)
    hostile = "<script>window.__pwned = 1</script><b>bold</b><img src=x onerror=alert(1)>"
    box = room_a.get_by_label("Chat", exact=True)
    await expect(box).to_be_visible()
    await box.fill(hostile)
    await box.press("Enter")
    line = room_a.locator("#chat li .text", has_text="window.__pwned")
    await expect(line).to_have_text(hostile, timeout=TIMEOUT_MS)
    assert await room_a.locator("#chat b, #chat img, #chat script").count() == 0
    assert await room_a.evaluate("window.__pwned") is None
    # room B's own line arrives, room A's never does
    await room_b.get_by_label("Chat", exact=True).fill("hello from B")
    await room_b.get_by_label("Chat", exact=True).press("Enter")
    await expect(room_b.locator("#chat li .text", has_text="hello from B")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    assert await room_b.locator("#chat li", has_text="__pwned").count() == 0
    assert await room_a.locator("#chat li", has_text="hello from B").count() == 0
    await ctx_a.close()
    await ctx_b.close()
    problems.assert_clean()


@pytest.mark.browser
async def test_reconnect_resumes_with_since_and_catches_up(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    data = world(api)
    problems = Problems()
    context, page = await open_page(
        browser, f"{server.base_url}/watch/{data['dealers'][0]['mirror']['id']}", problems, PHONE
    )
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    await connected(page)
    await page.evaluate("window.lcWatch.drop()")
    api.ok(api.post(f"/api/rooms/{data['room']['id']}/cards", data["brand"]["token"],
                    {"product_id": data["product"]["id"]}), (200, 201))  # fmt: skip
    await expect(page.locator(".product-card", has_text="Glow Serum")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    await connected(page)
    assert sockets and "since=" in sockets[-1]
    await context.close()
    assert not problems.page_errors


@pytest.mark.browser
async def test_embed_snippet_works_on_a_listed_site_and_is_refused_elsewhere(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    data = world(api)
    dealer = data["dealers"][0]
    mirror = dealer["mirror"]
    api.ok(api.post(f"/api/rooms/{data['room']['id']}/cards", data["brand"]["token"],
                    {"product_id": data["product"]["id"]}), (200, 201))  # fmt: skip
    listed_port, other_port = free_port(), free_port()
    problems = Problems()
    # the dealer lists its shop in the console's branding form
    console_context, console = await open_page(
        browser, f"{server.base_url}/dealer#token={dealer['token']}", problems
    )
    await console.locator("#sites").fill(f"http://localhost:{listed_port}")
    await console.get_by_role("button", name="Save branding").click()
    await expect(console.locator("#profile-saved")).to_have_text("saved", timeout=TIMEOUT_MS)
    snippet = await console.get_by_label("Embed (script tag)").input_value()
    assert f'data-room="{mirror["id"]}"' in snippet
    await console_context.close()

    html = (
        f'<!doctype html><link rel="icon" href="data:,"><title>Shop</title><h1>Shop</h1>{snippet}'
    )
    with site(html, listed_port) as shop:
        context, page = await open_page(browser, shop, problems, PHONE)
        frame_element = page.locator("iframe[data-livecommerce-room]")
        await expect(frame_element).to_be_visible(timeout=TIMEOUT_MS)
        frame = page.frame_locator("iframe[data-livecommerce-room]")
        await expect(frame.locator("#title")).to_have_text(mirror["title"], timeout=TIMEOUT_MS)
        await expect(frame.locator(".product-card", has_text="Glow Serum")).to_be_visible(
            timeout=TIMEOUT_MS
        )
        await expect(frame.locator("body")).to_have_attribute("data-connection", "live")
        await screenshot(page, "embed-on-dealer-site")
        await context.close()
    problems.assert_clean()

    refused = Problems()
    with site(html, other_port) as stranger:
        context, page = await open_page(browser, stranger, refused, PHONE)
        await expect(page.locator("iframe[data-livecommerce-room]")).to_be_attached()
        await page.wait_for_timeout(1500)
        frame = page.frame_locator("iframe[data-livecommerce-room]")
        assert await frame.locator("#title").count() == 0
        await context.close()
    assert any("frame-ancestors" in message for message in refused.console_errors)


@pytest.mark.browser
async def test_dealer_console_shows_the_commission_of_an_order_paid_in_its_room(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    data = world(api, price_cents=12900, dealer_bps=1500)
    dealer = data["dealers"][0]
    seckill = api.ok(api.post(f"/api/rooms/{data['room']['id']}/seckills", data["brand"]["token"],
                              {"product_id": data["product"]["id"], "price_cents": 12900,
                               "stock": 10, "per_viewer_limit": 2}), 201)  # fmt: skip
    viewer = api.viewer()
    order = api.ok(api.post(f"/api/seckills/{seckill['id']}/orders", viewer["token"],
                            {"room_id": dealer["mirror"]["id"], "qty": 1,
                             "request_id": "commission-1"}), 201)  # fmt: skip
    api.ok(api.post(f"/api/orders/{order['id']}/pay", viewer["token"]), 200)
    commission = 12900 * 1500 // 10000  # 1935 cents
    problems = Problems()
    context, page = await open_page(
        browser, f"{server.base_url}/dealer#token={dealer['token']}", problems
    )
    row = page.locator("#ledger tbody tr", has_text=order["id"])
    await expect(row).to_contain_text("dealer", timeout=TIMEOUT_MS)
    await expect(row.locator(".amount")).to_contain_text("19.35")
    await expect(page.locator("#earnings")).to_contain_text("19.35")
    await screenshot(page, "dealer")
    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Download statement (CSV)").click()
    download = await download_info.value
    statement = await asyncio.to_thread(Path(await download.path()).read_text)
    assert statement.splitlines()[0].startswith("date,kind,role,order_id")
    assert order["id"] in statement and "1935" in statement
    await context.close()
    problems.assert_clean()
    assert commission == 1935


@pytest.mark.browser
async def test_host_hides_a_line_everywhere_and_mutes_a_viewer(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    data = world(api)
    mirror = data["dealers"][0]["mirror"]
    problems = Problems()
    host_context, host = await open_page(
        browser, f"{server.base_url}/host#token={data['brand']['token']}", problems
    )
    await connected(host)
    await expect(host.locator("#room-name")).to_have_text("Winter Glow Launch", timeout=TIMEOUT_MS)
    (spam_ctx, spammer), (other_ctx, other) = [
        await open_page(browser, f"{server.base_url}/watch/{mirror['id']}", problems, PHONE)
        for _ in range(2)
    ]
    for page in (spammer, other):
        await connected(page)

    async def say(page: Page, text: str) -> None:
        await page.get_by_label("Chat", exact=True).fill(text)
        await page.get_by_label("Chat", exact=True).press("Enter")

    await say(spammer, "BUY CHEAP FAKES at spam.example")
    feed_line = host.locator("#feed .line", has_text="spam.example")
    await expect(feed_line).to_be_visible(timeout=TIMEOUT_MS)
    await expect(feed_line.locator(".tag")).to_have_text(mirror["title"])
    await expect(other.locator("#chat li", has_text="spam.example")).to_be_visible()
    await screenshot(host, "host")
    await feed_line.get_by_role("button", name=re.compile("^Hide")).click()
    for page in (other, spammer):
        await expect(page.locator("#chat li", has_text="spam.example")).to_have_count(
            0, timeout=TIMEOUT_MS
        )
    await expect(feed_line).to_have_count(0)

    await say(spammer, "second spam line")
    line = host.locator("#feed .line", has_text="second spam line")
    await expect(line).to_be_visible(timeout=TIMEOUT_MS)
    await line.get_by_role("button", name=re.compile("^Mute")).click()
    await expect(line.locator("button.mute")).to_have_text("Muted", timeout=TIMEOUT_MS)
    await say(spammer, "third spam line")
    await expect(spammer.locator("#chat-error")).not_to_be_empty(timeout=TIMEOUT_MS)
    await say(other, "a normal line")
    await expect(other.locator("#chat li", has_text="a normal line")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    assert await other.locator("#chat li", has_text="third spam line").count() == 0
    assert await host.locator("#feed .line", has_text="third spam line").count() == 0
    for context in (host_context, spam_ctx, other_ctx):
        await context.close()
    problems.assert_clean()


@pytest.mark.browser
async def test_dealer_branding_shows_on_the_watch_page(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    data = world(api)
    dealer = data["dealers"][0]
    logo = f"{server.base_url}/static/favicon.svg"
    api.ok(api.put(f"/api/dealers/{dealer['id']}/profile", dealer["token"],
                   {"color": "#0a7d33", "logo_url": logo}), 200)  # fmt: skip
    problems = Problems()
    for path in ("watch", "embed"):
        context, page = await open_page(
            browser, f"{server.base_url}/{path}/{dealer['mirror']['id']}", problems, PHONE
        )
        await expect(page.locator("#logo")).to_be_visible(timeout=TIMEOUT_MS)
        await expect(page.locator("#logo")).to_have_attribute("src", logo)
        border = await page.locator(".room-head").evaluate(
            "node => getComputedStyle(node).borderBottomColor"
        )
        assert border == "rgb(10, 125, 51)"
        if path == "embed":
            await screenshot(page, "embed")
        await context.close()
    problems.assert_clean()


@pytest.mark.browser
async def test_unreachable_stream_shows_the_placeholder(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    brand = api.brand()
    room = api.room(brand, title="Broken stream", stream_url="http://127.0.0.1:9/none.m3u8")
    problems = Problems()
    context, page = await open_page(browser, f"{server.base_url}/watch/{room['id']}", problems)
    await expect(page.locator("#placeholder-title")).to_have_text(
        "Stream unavailable", timeout=TIMEOUT_MS
    )
    await expect(page.locator("#placeholder")).to_be_visible()
    await context.close()
    assert not problems.page_errors


@pytest.mark.browser
async def test_demo_stream_plays_in_the_watch_page(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    if not await demo_stream.generate(server.data_dir):
        pytest.skip("ffmpeg is not installed")
    playlist = api.get(demo_stream.PLAYLIST_PATH)
    assert playlist.status_code == 200 and "#EXTM3U" in playlist.text
    assert api.get("/demo-stream/..%2Fadmin_token").status_code == 404
    brand = api.brand()
    room = api.room(brand, title="Demo stream",
                    stream_url=server.base_url + demo_stream.PLAYLIST_PATH)  # fmt: skip
    problems = Problems()
    context, page = await open_page(browser, f"{server.base_url}/watch/{room['id']}", problems)
    await expect(page.locator("#placeholder")).to_be_hidden(timeout=20_000)
    playing = await page.locator("#video").evaluate("v => v.currentTime > 0 && !v.paused")
    assert playing
    await screenshot(page, "watch-stream-desktop")
    await context.close()
    problems.assert_clean()


async def test_demo_audience_chats_and_buys_in_the_mirrors(api: Api) -> None:
    data = world(api, dealers=2)
    brand, room = data["brand"], data["room"]
    seckill = api.ok(api.post(f"/api/rooms/{room['id']}/seckills", brand["token"], {
        "product_id": data["product"]["id"], "price_cents": 2900, "stock": 100,
        "per_viewer_limit": 2,
    }), 201)  # fmt: skip
    audience = {"base_url": api.base_url, "dealers": data["dealers"], "seckill": seckill}
    task = asyncio.create_task(simulate_audience(audience))
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            stats = api.ok(api.get(f"/api/rooms/{room['id']}/stats", brand["token"]), 200)
            if stats["orders"] > 0 and stats["viewers_now"] > 0:
                break
        else:
            pytest.fail(f"the simulated audience bought nothing: {stats}")
        assert not task.done(), "the simulation stopped by itself"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    bought = {r["room_id"] for r in stats["rooms"] if r["orders"]}
    assert bought <= {d["mirror"]["id"] for d in data["dealers"]}


@pytest.mark.browser
async def test_host_runs_a_broadcast_from_the_console(
    server: ServerProcess, api: Api, browser: Browser
) -> None:
    brand = api.brand("Console Brand")
    problems = Problems()
    context, host = await open_page(browser, f"{server.base_url}/host#token={brand['token']}",
                                    problems)  # fmt: skip
    await expect(host.locator("#console")).to_be_visible(timeout=TIMEOUT_MS)
    await host.locator("summary", has_text="New room").click()
    await host.get_by_label("Title").first.fill("Console launch")
    await host.get_by_role("button", name="Create room").click()
    await expect(host.locator("#room-name")).to_have_text("Console launch", timeout=TIMEOUT_MS)
    await expect(host.locator("#room-status")).to_have_text("scheduled")
    await host.get_by_role("button", name="Go live").click()
    await expect(host.locator("#room-status")).to_have_text("live", timeout=TIMEOUT_MS)
    watch_url = await host.locator("#room-watch").get_attribute("href")
    assert watch_url is not None

    await host.locator("summary", has_text="New product").click()
    await host.get_by_label("SKU").fill("CONSOLE-1")
    await host.get_by_label("Price (cents)").first.fill("4900")
    await host.locator("#p-title").fill("Console Cream")
    await host.get_by_role("button", name="Add product").click()
    product_row = host.locator("#products li", has_text="Console Cream")
    await expect(product_row).to_be_visible(timeout=TIMEOUT_MS)
    await connected(host)
    await product_row.get_by_role("button", name="Pin").click()
    await expect(product_row.get_by_role("button")).to_have_text("Unpin", timeout=TIMEOUT_MS)

    await host.locator("summary", has_text="Start a flash sale").click()
    await host.locator("#sk-price").fill("1900")
    await host.locator("#sk-stock").fill("7")
    await host.locator("#sk-limit").fill("2")
    await host.get_by_role("button", name="Start flash sale").click()
    await expect(host.locator("#seckill-list li .sk-left")).to_have_text(
        "7 / 7 left", timeout=TIMEOUT_MS
    )

    viewer_context, viewer = await open_page(browser, watch_url, problems, PHONE)
    await expect(viewer.locator(".product-card", has_text="Console Cream")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    await expect(viewer.locator(".seckill .sk-left")).to_have_attribute("data-left", "7")
    await expect(viewer.locator(".seckill .sk-title")).to_contain_text("Console Cream")
    await viewer.locator(".seckill button.buy").click()
    await expect(host.locator("#seckill-list li .sk-left")).to_have_text(
        "6 / 7 left", timeout=TIMEOUT_MS
    )
    await host.get_by_role("button", name="End broadcast").click()
    await expect(viewer.locator("#status")).to_have_text("ended", timeout=TIMEOUT_MS)
    await expect(viewer.locator("#placeholder-title")).to_have_text("This broadcast has ended")
    for ctx_ in (context, viewer_context):
        await ctx_.close()
    problems.assert_clean()
