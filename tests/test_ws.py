"""The room socket's handshake rules, close codes, bad frames and graceful shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.wsclient import RoomClient


def ws(server: ServerProcess, room_id: str, token: str | None, extra: str = "") -> str:
    query = f"?token={token}" if token is not None else "?"
    return f"{server.ws_url}/ws/rooms/{room_id}{query}{extra}"


async def close_code(url: str, **kwargs: Any) -> int | None:
    async with RoomClient(url, **kwargs) as client:
        return await client.closed_with(10)


async def test_refusals_close_with_documented_codes(server: ServerProcess, api: Api) -> None:
    brand, other_brand = api.brand(), api.brand("Other")
    room = api.room(brand)
    dealer_a, dealer_b = api.dealer("A"), api.dealer("B")
    mirror_a = api.mirror(brand, room, dealer_a)
    api.authorize(brand, dealer_b)
    viewer = api.viewer()
    assert await close_code(ws(server, room["id"], None)) == 4401
    assert await close_code(ws(server, room["id"], "viewer_x_nope")) == 4401
    assert await close_code(ws(server, "no-such-room", viewer["token"])) == 4404
    assert await close_code(ws(server, mirror_a["id"], dealer_b["token"])) == 4403
    assert await close_code(ws(server, room["id"], other_brand["token"])) == 4403
    assert await close_code(ws(server, room["id"], viewer["token"], "&format=xml")) == 4400


async def test_allowed_sockets_get_hello_then_snapshot(server: ServerProcess, api: Api) -> None:
    brand = api.brand()
    room = api.room(brand, live=False)
    dealer = api.dealer()
    mirror = api.mirror(brand, room, dealer)
    viewer = api.viewer()
    allowed = [(room["id"], viewer["token"]), (mirror["id"], dealer["token"]),
               (room["id"], dealer["token"]), (room["id"], brand["token"])]  # fmt: skip
    for room_id, token in allowed:
        async with RoomClient(ws(server, room_id, token)) as client:
            hello = await client.recv()
            assert hello["type"] == "hello" and hello["room_id"] == room_id
            assert hello["viewer_id"] == (viewer["id"] if token == viewer["token"] else None)
            snapshot = await client.recv()
            assert snapshot["type"] == "snapshot" and snapshot["room"]["status"] == "scheduled"
            assert set(snapshot) >= {"seq", "ts", "room", "cards", "seckills", "viewers", "chat"}
    api.ok(api.post(f"/api/rooms/{room['id']}/end", brand["token"]), 200)
    async with RoomClient(ws(server, mirror["id"], viewer["token"])) as client:
        await client.recv()
        assert (await client.recv())["room"]["status"] == "ended"


async def test_origin_rule(server: ServerProcess, api: Api) -> None:
    brand = api.brand()
    room = api.room(brand)
    dealer = api.dealer()
    mirror = api.mirror(brand, room, dealer)
    token = api.viewer()["token"]
    own = f"http://127.0.0.1:{server.port}"
    async with RoomClient(ws(server, room["id"], token), origin=own) as client:  # type: ignore[arg-type]
        assert (await client.recv())["type"] == "hello"
    evil = "https://evil.example"
    assert await close_code(ws(server, room["id"], token), origin=evil) == 1008
    assert await close_code(ws(server, mirror["id"], token), origin=evil) == 1008
    shop = "https://shop.example"
    profile = api.put(f"/api/dealers/{dealer['id']}/profile", dealer["token"],
                      {"allowed_sites": [shop]})  # fmt: skip
    if profile.status_code == 200:  # the profile call belongs to another part; test when present
        await asyncio.sleep(2.5)  # the room directory caches a room for up to 2 s
        async with RoomClient(ws(server, mirror["id"], token), origin=shop) as client:  # type: ignore[arg-type]
            assert (await client.recv())["type"] == "hello"
        assert await close_code(ws(server, room["id"], token), origin=shop) == 1008


async def test_bad_frames_get_error_events(server: ServerProcess, api: Api) -> None:
    brand = api.brand()
    room = api.room(brand)
    viewer = api.viewer()
    async with RoomClient(ws(server, room["id"], viewer["token"])) as client:
        await client.recv()
        await client.recv()
        for bad in ["not json", "[1,2]", '{"type":"dance"}', '{"type":"chat","text":5}',
                    '{"type":"chat","text":""}', '{"type":"like","count":101}',
                    "[" * 100 + "]" * 100, b"\x01\x02"]:  # fmt: skip
            await client.send(bad)
            error = await client.next("error")
            assert error["error"] == "invalid", (bad, error)
            assert isinstance(error["seq"], int)
        await client.send('{"type":"buy","seckill_id":"x","qty":"1","request_id":"r-1"}')
        error = await client.next("error")
        assert error["error"] == "invalid" and error["request_id"] == "r-1"
        await client.send({"type": "ping"})
        await client.send({"type": "chat", "text": "still here"})
        assert (await client.next("chat"))["text"] == "still here"
    async with RoomClient(ws(server, room["id"], brand["token"])) as host:
        await host.recv()
        await host.recv()
        await host.send({"type": "chat", "text": "brand chat"})
        assert (await host.next("error"))["error"] == "forbidden"


async def test_chat_rate_limit_and_flood_close(server: ServerProcess, api: Api) -> None:
    brand = api.brand()
    room = api.room(brand)
    viewer = api.viewer()
    async with RoomClient(ws(server, room["id"], viewer["token"])) as client:
        await client.recv()
        await client.recv()
        for i in range(4):
            await client.send({"type": "chat", "text": f"spam {i}"})
        assert (await client.next("error"))["error"] == "rate_limited"
        for _ in range(40):
            await client.send({"type": "ping"})
        assert await client.closed_with(10) == 4429


async def test_oversized_frame_closes_1009(server: ServerProcess, api: Api) -> None:
    brand = api.brand()
    room = api.room(brand)
    async with connect(ws(server, room["id"], api.viewer()["token"]), max_size=None) as client:
        await client.recv()
        await client.send('{"type":"chat","text":"' + "x" * 70_000 + '"}')
        try:
            async with asyncio.timeout(10):
                while True:
                    await client.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 1009


async def test_graceful_shutdown_closes_with_1001() -> None:
    server = ServerProcess().start()
    try:
        api = Api(server.base_url, server.admin_token)
        brand = api.brand()
        room = api.room(brand)
        async with RoomClient(ws(server, room["id"], api.viewer()["token"])) as client:
            await client.recv()
            await client.recv()
            stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
            assert await client.closed_with(15) == 1001
            assert await stopping == 0
    finally:
        server.close()
