"""Several server processes on one Redis: ``serve --workers 2``, and two separate servers sharing
Redis and the database. Host actions reach viewers on every process, buys through all of them
never oversell, and viewer counts agree."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.test_seckill import seckill, world
from tests.wsclient import RoomClient


def _ws(server: ServerProcess, room: dict[str, Any], token: str) -> str:
    return f"{server.ws_url}/ws/rooms/{room['id']}?token={token}"


async def _buy_until_sold_out(
    base_urls: list[str], viewers: list[dict[str, Any]], sk: dict[str, Any], room_id: str
) -> list[dict[str, Any]]:
    """Every viewer buys 1 unit through the servers in turn; the orders answered 201."""
    won: list[dict[str, Any]] = []
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in base_urls]
    try:

        async def attempt(index: int, viewer: dict[str, Any]) -> None:
            client = clients[index % len(clients)]
            body = {"room_id": room_id, "qty": 1, "request_id": uuid.uuid4().hex}
            response = await client.post(
                f"/api/seckills/{sk['id']}/orders",
                json=body,
                headers={"Authorization": f"Bearer {viewer['token']}"},
            )
            assert response.status_code in (201, 409), response.text
            if response.status_code == 201:
                won.append(response.json())
            else:
                assert response.json()["error"] == "sold_out"

        await asyncio.gather(*(attempt(i, v) for i, v in enumerate(viewers)))
    finally:
        for client in clients:
            await client.aclose()
    return won


async def _count_seen(client: RoomClient, room_id: str, count: int) -> bool:
    try:
        await client.next(
            "viewers", where=lambda e: e["room_id"] == room_id and e["count"] == count, wait_s=15
        )
    except TimeoutError:
        return False
    return True


async def test_two_servers_sharing_redis_agree_and_never_oversell() -> None:
    with ServerProcess() as first:
        env = {
            "LIVECOMMERCE_REDIS_URL": f"unix://{first.data_dir}/redis/redis.sock",
            "DATABASE_URL": f"sqlite:///{first.data_dir}/livecommerce.db",
            "LIVECOMMERCE_ADMIN_TOKEN": first.admin_token,
        }
        with ServerProcess(env=env) as second:
            api = Api(first.base_url, first.admin_token)
            w = world(api)
            mirror = w["mirrors"][0]
            viewers = [api.viewer() for _ in range(40)]
            async with (
                RoomClient(_ws(first, mirror, viewers[0]["token"])) as on_first,
                RoomClient(_ws(first, mirror, viewers[1]["token"])) as also_first,
                RoomClient(_ws(second, mirror, viewers[2]["token"])) as on_second,
            ):
                for client in (on_first, also_first, on_second):
                    await client.next("snapshot")
                # viewer counts: both processes report the room's total, 3
                assert await _count_seen(on_first, mirror["id"], 3)
                assert await _count_seen(on_second, mirror["id"], 3)
                # a host action through the second server reaches viewers on the first
                product = api.product(w["brand"], sku=f"X-{uuid.uuid4().hex[:8]}")
                pin = Api(second.base_url, first.admin_token)
                path = f"/api/rooms/{w['room']['id']}/cards"
                pin.ok(pin.post(path, w["brand"]["token"], {"product_id": product["id"]}), 201)
                card = await on_first.next("card")
                assert card == await on_second.next("card")
                # buys through both never oversell
                sk = seckill(api, w, stock=25, per_viewer_limit=1)
                won = await _buy_until_sold_out(
                    [first.base_url, second.base_url], viewers, sk, mirror["id"]
                )
                assert len(won) == 25
                assert api.ok(api.get(f"/api/seckills/{sk['id']}"))["left"] == 0


async def test_serve_with_two_workers_fans_out_and_never_oversells() -> None:
    with ServerProcess(workers=2) as server:
        api = Api(server.base_url, server.admin_token)
        w = world(api)
        mirror = w["mirrors"][0]
        viewers = [api.viewer() for _ in range(30)]
        clients = [RoomClient(_ws(server, mirror, v["token"])) for v in viewers[:8]]
        for client in clients:
            await client.__aenter__()
        try:
            for client in clients:
                await client.next("snapshot")
            product = api.product(w["brand"], sku=f"W-{uuid.uuid4().hex[:8]}")
            path = f"/api/rooms/{w['room']['id']}/cards"
            api.ok(api.post(path, w["brand"]["token"], {"product_id": product["id"]}), 201)
            cards = [await client.next("card") for client in clients]
            assert all(card == cards[0] for card in cards)  # one seq, one frame, every process
            sk = seckill(api, w, stock=20, per_viewer_limit=1)
            won = await _buy_until_sold_out([server.base_url] * 3, viewers, sk, mirror["id"])
            assert len(won) == 20
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)
