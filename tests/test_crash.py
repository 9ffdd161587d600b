"""kill -9 during a buy spike, then start again on the same data dir: every order a client got a
201 for is listed exactly once, and no unit is lost or sold twice (sold + left == stock)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.test_seckill import seckill, world
from tests.test_stress_buy import list_all, make_viewers

STOCK = 300
BUYERS = 600


@pytest.mark.slow
async def test_kill_9_mid_spike_loses_no_order_and_no_unit() -> None:
    server = ServerProcess(env={"LIVECOMMERCE_DEV_PAYMENTS": "1"})
    server.start()
    try:
        api = Api(server.base_url, server.admin_token)
        w = world(api)
        sk = seckill(api, w, stock=STOCK, per_viewer_limit=1)
        rooms = [w["room"]["id"], w["mirrors"][0]["id"]]
        confirmed: dict[str, dict[str, Any]] = {}
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as client:
            viewers = await make_viewers(client, BUYERS)

            async def buyer(index: int, viewer: dict[str, Any]) -> None:
                body = {"room_id": rooms[index % 2], "qty": 1, "request_id": uuid.uuid4().hex}
                headers = {"Authorization": f"Bearer {viewer['token']}"}
                try:
                    response = await client.post(
                        f"/api/seckills/{sk['id']}/orders", json=body, headers=headers
                    )
                except httpx.HTTPError:
                    return  # the server died under this request: no promise was made
                if response.status_code == 201:
                    confirmed[response.json()["id"]] = response.json()

            async def killer() -> None:
                while len(confirmed) < STOCK // 3:
                    await asyncio.sleep(0.005)
                await asyncio.to_thread(server.kill)

            await asyncio.gather(killer(), *(buyer(i, v) for i, v in enumerate(viewers)))
        assert 0 < len(confirmed) < STOCK  # killed mid-spike

        started = time.monotonic()
        server.start()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            while True:
                listed = await list_all(client, w["brand"]["token"], "")
                ids = [o["id"] for o in listed if o["seckill_id"] == sk["id"]]
                if set(confirmed) <= set(ids) or time.monotonic() - started > 10:
                    break
                await asyncio.sleep(0.2)
            assert set(confirmed) <= set(ids), len(set(confirmed) - set(ids))
            assert len(ids) == len(set(ids))  # exactly once
            left = (await client.get(f"/api/seckills/{sk['id']}")).json()["left"]
            held = sum(o["qty"] for o in listed if o["seckill_id"] == sk["id"])
            assert held + left == STOCK, (held, left)
            # the restarted server keeps selling from where it was, without overselling
            more = await make_viewers(client, 5)
            answer = await client.post(
                f"/api/seckills/{sk['id']}/orders",
                json={"room_id": rooms[0], "qty": 1, "request_id": "after"},
                headers={"Authorization": f"Bearer {more[0]['token']}"},
            )
            assert answer.status_code == (201 if left > 0 else 409)
    finally:
        server.close()
