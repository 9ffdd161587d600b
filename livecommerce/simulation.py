"""``livecommerce demo``'s audience: a few simulated viewers in every mirror who chat, like and,
once the seckill opens, buy and pay, through the same public HTTP and WebSocket API a browser
uses. So a newcomer opening any page of the demo sees it move."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from livecommerce.timeutil import now_ms, parse_iso, to_ms

log = logging.getLogger("livecommerce.simulation")

VIEWERS_PER_ROOM = 3
NAMES = ["Anna", "Bo", "Chen", "Dara", "Eli", "Fei", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea"]
LINES = [
    "Hi from the shop!", "Does it work for dry skin?", "How long does one bottle last?",
    "Love this colour", "Is there a travel size?", "Just ordered one!", "Can you show it again?",
    "What's in the serum?", "My sister swears by this", "Shipping to Hangzhou?",
    "The flash sale price is great", "Waiting for the seckill...",
]  # fmt: skip


@dataclass
class SimulatedViewer:
    name: str
    room_id: str
    base_url: str
    seckill_id: str | None
    seckill_starts_ms: int
    wants_units: int


def ws_base(base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}"


async def simulate_audience(world: dict[str, Any]) -> None:
    """Run until cancelled. Failures (a server restarting, a refused buy) are logged and the
    viewer carries on: the demo's audience never takes the demo down."""
    # every simulated request would otherwise print an httpx INFO line over the demo's output
    logging.getLogger("httpx").setLevel(logging.WARNING)
    seckill = world.get("seckill") or {}
    starts = seckill.get("starts_at")
    starts_ms = to_ms(parse_iso(starts)) if isinstance(starts, str) else now_ms()
    rng = random.Random()
    viewers = [
        SimulatedViewer(
            name=rng.choice(NAMES),
            room_id=dealer["mirror"]["id"],
            base_url=world["base_url"],
            seckill_id=seckill.get("id"),
            seckill_starts_ms=starts_ms,
            wants_units=rng.choice([0, 1, 1, 2]),
        )
        for dealer in world.get("dealers", [])
        for _ in range(VIEWERS_PER_ROOM)
    ]
    async with (
        httpx.AsyncClient(base_url=world["base_url"], timeout=10) as http,
        asyncio.TaskGroup() as group,
    ):
        for index, viewer in enumerate(viewers):
            group.create_task(_live(http, viewer, delay_s=0.5 * index))


async def _live(http: httpx.AsyncClient, viewer: SimulatedViewer, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    rng = random.Random()
    bought = 0
    while True:
        try:
            response = await http.post("/api/viewers", json={"name": viewer.name})
            response.raise_for_status()
            token = response.json()["token"]
            url = f"{ws_base(viewer.base_url)}/ws/rooms/{quote(viewer.room_id)}?token={token}"
            async with connect(url, open_timeout=10) as socket:
                drain = asyncio.create_task(_drain(socket))
                try:
                    while not drain.done():
                        await asyncio.sleep(rng.uniform(4, 12))
                        await _act(socket, rng)
                        if bought < viewer.wants_units and _seckill_open(viewer):
                            bought += await _buy_and_pay(http, viewer, token, rng)
                finally:
                    drain.cancel()
        except asyncio.CancelledError:
            raise
        except (httpx.HTTPError, WebSocketException, OSError, KeyError, ValueError) as exc:
            log.info("simulated viewer %s: %s; retrying", viewer.name, exc)
        await asyncio.sleep(rng.uniform(2, 5))


async def _drain(socket: ClientConnection) -> None:
    """Read (and drop) what the room sends, so the server never sees a slow consumer."""
    async for _message in socket:
        pass


async def _act(socket: ClientConnection, rng: random.Random) -> None:
    if rng.random() < 0.6:
        await socket.send(json.dumps({"type": "chat", "text": rng.choice(LINES)}))
    if rng.random() < 0.7:
        await socket.send(json.dumps({"type": "like", "count": rng.randint(1, 5)}))


def _seckill_open(viewer: SimulatedViewer) -> bool:
    return viewer.seckill_id is not None and now_ms() >= viewer.seckill_starts_ms


async def _buy_and_pay(
    http: httpx.AsyncClient, viewer: SimulatedViewer, token: str, rng: random.Random
) -> int:
    """One unit: reserve, then (usually) pay a moment later. Returns units kept."""
    headers = {"Authorization": f"Bearer {token}"}
    body = {"room_id": viewer.room_id, "qty": 1, "request_id": f"sim-{rng.getrandbits(64):x}"}
    response = await http.post(f"/api/seckills/{viewer.seckill_id}/orders", json=body,
                               headers=headers)  # fmt: skip
    if response.status_code not in (200, 201):
        # sold out, over the limit or ended: this viewer stops trying
        return viewer.wants_units
    order = response.json()
    await asyncio.sleep(rng.uniform(1, 4))
    if rng.random() < 0.85:
        await http.post(f"/api/orders/{order['id']}/pay", headers=headers)
    return 1
