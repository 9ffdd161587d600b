"""A flash-sale spike against a real server: 2,000 viewers in 20 dealer rooms race for 500
units (limit 2), with repeats and over-limit requests mixed in. Exactly 500 units are sold,
nobody exceeds the limit, every repeat gets its first order, and SQL agrees after the writer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Api
from tests.test_seckill import seckill, world

VIEWERS = 2000
ROOMS = 20
STOCK = 500
LIMIT = 2


async def make_viewers(client: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(100)

    async def one() -> dict[str, Any]:
        async with gate:
            response = await client.post("/api/viewers", json={})
            assert response.status_code == 201
            viewer: dict[str, Any] = response.json()
            return viewer

    return await asyncio.gather(*(one() for _ in range(count)))


async def list_all(client: httpx.AsyncClient, token: str, query: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        response = await client.get(f"/api/orders?limit=1000{query}{cursor}",
                                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        page = response.json()
        items += page["items"]
        if not page["next_cursor"]:
            return items
        cursor = f"&cursor={page['next_cursor']}"


@pytest.mark.slow
async def test_spike_sells_exactly_the_stock(api: Api) -> None:
    w = world(api, mirrors=1)
    rooms = [w["mirrors"][0]["id"]] + [
        api.ok(api.post(f"/api/rooms/{w['room']['id']}/mirrors", w["dealer"]["token"], {}), 201)[
            "id"
        ]
        for _ in range(ROOMS - 1)
    ]
    sk = seckill(api, w, stock=STOCK, per_viewer_limit=LIMIT)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=120, limits=limits) as client:
        made = time.monotonic()
        viewers = await make_viewers(client, VIEWERS)
        print(f"{VIEWERS} viewers made in {time.monotonic() - made:.1f}s")
        path = f"/api/seckills/{sk['id']}/orders"
        gate = asyncio.Semaphore(150)

        async def shopper(index: int, viewer: dict[str, Any]) -> list[tuple[str, int, Any]]:
            headers = {"Authorization": f"Bearer {viewer['token']}"}
            room = rooms[index % ROOMS]
            plan = [("a", 1), ("a", 1), ("b", 2), ("c", 3)] if index % 3 else [("a", 2), ("a", 2)]
            seen = []
            for request_id, qty in plan:
                body = {"room_id": room, "qty": qty, "request_id": request_id}
                async with gate:  # httpx's pool slows down badly with thousands of waiters
                    response = await client.post(path, headers=headers, json=body)
                seen.append((request_id, response.status_code, response.json()))
            return seen

        started = time.monotonic()
        results = await asyncio.gather(*(shopper(i, v) for i, v in enumerate(viewers)))
        elapsed = time.monotonic() - started

        sold = 0
        orders: dict[str, dict[str, Any]] = {}
        for viewer, seen in zip(viewers, results, strict=True):
            first: dict[str, str] = {}
            units = 0
            for request_id, status, body in seen:
                assert status in (200, 201, 409), (status, body)
                if status == 201:
                    assert request_id not in first
                    first[request_id] = body["id"]
                    units += body["qty"]
                    orders[body["id"]] = body
                elif status == 200:
                    assert body["id"] == first[request_id]  # a repeat returns its first order
                else:
                    assert body["error"] in ("sold_out", "limit_exceeded"), body
            assert units <= LIMIT, (viewer["id"], seen)
            sold += units
        assert sold == STOCK
        assert (await client.get(f"/api/seckills/{sk['id']}")).json()["left"] == 0

        deadline = time.monotonic() + 15
        while True:
            listed = await list_all(client, w["brand"]["token"], "&status=reserved")
            mine = [o for o in listed if o["seckill_id"] == sk["id"]]
            if len(mine) == len(orders) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert sorted(o["id"] for o in mine) == sorted(orders)
        assert sum(o["qty"] for o in mine) == STOCK
        per_room = {o["room_id"] for o in mine}
        assert per_room <= set(rooms)
    print(f"{VIEWERS * 3} buy requests in {elapsed:.1f}s")
