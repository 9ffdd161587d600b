"""``livecommerce demo``: the server plus a seeded brand, dealers, mirrored rooms and a seckill,
seeded through the public API (so the demo exercises what clients use)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn

from livecommerce import demo_stream
from livecommerce.app import admin_token_for, create_app
from livecommerce.server import (
    HubServer,
    exit_cleanly_on_signals,
    prepare_schema,
    start_embedded_redis,
    uvicorn_options,
)
from livecommerce.settings import Settings

log = logging.getLogger("livecommerce")

PRODUCTS = [
    {"sku": "AUR-SERUM-30", "title": "Aurora Glow Serum 30 ml", "price_cents": 12900,
     "dealer_bps": 1500, "upline_bps": 300},
    {"sku": "AUR-LIP-07", "title": "Velvet Lip Tint No. 7", "price_cents": 5900,
     "dealer_bps": 1200, "upline_bps": 200},
    {"sku": "AUR-MASK-5", "title": "Night Repair Mask (5 pack)", "price_cents": 8900,
     "dealer_bps": 1000, "upline_bps": 0},
]  # fmt: skip


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        response = await self.client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} → {response.status_code}: {response.text}")
        return response.json()


async def seed(base_url: str, admin_token: str, stream_url: str | None = None) -> dict[str, Any]:
    """Create the demo world and return what to print. Without ``stream_url`` the room has no
    video and the pages show their placeholder."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        api = Api(client)
        brand = await api.call("POST", "/api/brands", admin_token, {"name": "Aurora Cosmetics"})
        products = [await api.call("POST", "/api/products", brand["token"], p) for p in PRODUCTS]
        room = await api.call(
            "POST", "/api/rooms", brand["token"],
            {"title": "Aurora Live: Winter Glow Launch",
             **({"stream_url": stream_url} if stream_url else {})},
        )  # fmt: skip
        await api.call("POST", f"/api/rooms/{room['id']}/live", brand["token"])
        store = await api.call("POST", "/api/dealers", admin_token, {"name": "City Beauty Store"})
        assistant = await api.call(
            "POST", "/api/dealers", admin_token, {"name": "Mei (City Beauty assistant)",
                                                  "upline_id": store["id"]}
        )  # fmt: skip
        retailer = await api.call("POST", "/api/dealers", admin_token, {"name": "Lin's Shop"})
        dealers = []
        for dealer in (store, assistant, retailer):
            await api.call(
                "POST", f"/api/brands/{brand['id']}/dealers", brand["token"],
                {"dealer_id": dealer["id"]},
            )  # fmt: skip
            mirror = await api.call(
                "POST", f"/api/rooms/{room['id']}/mirrors", dealer["token"],
                {"title": f"{dealer['name']} × Aurora Live"},
            )  # fmt: skip
            dealers.append({**dealer, "mirror": mirror})
        await api.call(
            "POST", f"/api/rooms/{room['id']}/cards", brand["token"],
            {"product_id": products[0]["id"]},
        )  # fmt: skip
        starts = datetime.now(UTC) + timedelta(minutes=1)
        seckill = await api.call(
            "POST", f"/api/rooms/{room['id']}/seckills", brand["token"],
            {"product_id": products[1]["id"], "price_cents": 2900, "stock": 200,
             "per_viewer_limit": 2, "starts_at": starts.isoformat().replace("+00:00", "Z"),
             "allocations": {dealers[0]["mirror"]["id"]: 20}},
        )  # fmt: skip
    return {
        "base_url": base_url,
        "admin_token": admin_token,
        "brand": brand,
        "room": room,
        "products": products,
        "dealers": dealers,
        "seckill": seckill,
    }


def describe(world: dict[str, Any]) -> str:
    base = world["base_url"]
    lines = [
        "",
        "livecommerce demo is running. Open:",
        f"  host console      {base}/host#token={world['brand']['token']}",
    ]
    for dealer in world["dealers"]:
        lines.append(
            f"  dealer console    {base}/dealer#token={dealer['token']}   ({dealer['name']})"
        )
    lines.append(f"  brand room        {world['room']['watch_url']}")
    for dealer in world["dealers"]:
        lines.append(f"  watch (mirror)    {dealer['mirror']['watch_url']}   ({dealer['name']})")
    lines += [
        f"  embed widget      {world['dealers'][0]['mirror']['embed_url']}",
        f"  seckill           opens at {world['seckill'].get('starts_at')} "
        f"(stock {world['seckill'].get('stock')})",
        "",
        "Tokens:",
        f"  admin             {world['admin_token']}",
        f"  brand             {world['brand']['token']}",
        *[f"  dealer {d['name']:<28} {d['token']}" for d in world["dealers"]],
        "",
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)


async def _demo(settings: Settings, simulate: bool) -> None:
    """Serve in this task (so a signal's clean exit unwinds it directly) while another task
    seeds the world once the server is up, then runs the simulated audience."""
    config = uvicorn.Config(create_app(settings), **uvicorn_options(settings))  # type: ignore[arg-type]
    server = HubServer(config)
    # ffmpeg renders the looping test stream while the server starts (once per data dir)
    stream_ready = asyncio.create_task(demo_stream.generate(settings.data_dir))
    showing = asyncio.create_task(_seed_and_simulate(server, settings, simulate, stream_ready))
    showing.add_done_callback(_report_failure)
    try:
        await server.serve()
    finally:
        for task in (showing, stream_ready):
            task.cancel()
        await asyncio.gather(showing, stream_ready, return_exceptions=True)


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the demo could not seed its world", exc_info=task.exception())


async def _seed_and_simulate(
    server: uvicorn.Server, settings: Settings, simulate: bool, stream_ready: asyncio.Task[bool]
) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base_url = settings.public_url or f"http://{host}:{settings.port}"
    assert settings.admin_token is not None
    stream_url = base_url + demo_stream.PLAYLIST_PATH if await stream_ready else None
    world = await seed(base_url, settings.admin_token, stream_url)
    (settings.data_dir / "demo.json").write_text(json.dumps(world, indent=2))
    print(describe(world), flush=True)
    if simulate:
        from livecommerce.simulation import simulate_audience

        await simulate_audience(world)


def run_demo(settings: Settings, simulate: bool = True) -> int:
    exit_cleanly_on_signals()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.with_(admin_token=admin_token_for(settings), dev_payments=True)
    embedded, settings = start_embedded_redis(settings)
    try:
        prepare_schema(settings)
        asyncio.run(_demo(settings, simulate))
    finally:
        if embedded is not None:
            embedded.stop()
    return 0
