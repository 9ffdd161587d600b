"""Fan-out against a real server: mirrors, chat isolation, resume, msgpack, slow consumers,
two processes sharing one Redis, coalesced likes and viewer counts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import msgpack

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.wsclient import RoomClient


def ws(server: ServerProcess, room: dict[str, Any], token: str, extra: str = "") -> str:
    return f"{server.ws_url}/ws/rooms/{room['id']}?token={token}{extra}"


def world(api: Api, mirrors: int = 3) -> dict[str, Any]:
    brand = api.brand()
    room = api.room(brand)
    dealers = [api.dealer(f"Dealer {i}") for i in range(mirrors)]
    rooms = [api.mirror(brand, room, d) for d in dealers]
    return {"brand": brand, "room": room, "dealers": dealers, "mirrors": rooms}


async def greeted(client: RoomClient) -> dict[str, Any]:
    hello = await client.recv()
    assert hello["type"] == "hello"
    snapshot = await client.recv()
    assert snapshot["type"] == "snapshot"
    return snapshot


async def test_card_reaches_brand_room_and_three_mirrors_with_identical_bytes(
    server: ServerProcess, api: Api
) -> None:
    w = world(api)
    product = api.product(w["brand"], title="Mirrored")
    viewer = api.viewer()
    rooms = [w["room"], *w["mirrors"]]
    clients = [RoomClient(ws(server, r, viewer["token"])) for r in rooms]
    for client in clients:
        await client.__aenter__()
        await greeted(client)
    try:
        pinned = api.post(f"/api/rooms/{w['room']['id']}/cards", w["brand"]["token"],
                          {"product_id": product["id"]})  # fmt: skip
        assert pinned.status_code == 201, pinned.text
        cards = [await c.next("card") for c in clients]
        assert {c["seq"] for c in cards} == {cards[0]["seq"]}
        assert cards[0]["product"]["title"] == "Mirrored"
        assert len({c.raw[-1] for c in clients}) == 1  # the same bytes in every room
    finally:
        for client in clients:
            await client.__aexit__()


async def test_pin_several_cards_and_unpin_and_late_joiner_snapshot(
    server: ServerProcess, api: Api
) -> None:
    w = world(api, mirrors=1)
    token = w["brand"]["token"]
    a, b = api.product(w["brand"], sku="A1"), api.product(w["brand"], sku="B1")
    for product in (a, b):
        api.ok(api.post(f"/api/rooms/{w['room']['id']}/cards", token,
                        {"product_id": product["id"]}), 201)  # fmt: skip
    async with RoomClient(ws(server, w["mirrors"][0], api.viewer()["token"])) as client:
        snapshot = await greeted(client)
        assert [c["id"] for c in snapshot["cards"]] == [a["id"], b["id"]]
        api.ok(api.delete(f"/api/rooms/{w['room']['id']}/cards/{a['id']}", token), 200)
        uncard = await client.next("uncard")
        assert uncard["product_id"] == a["id"]
    again = api.delete(f"/api/rooms/{w['room']['id']}/cards/{a['id']}", token)
    assert again.status_code == 404


async def test_cards_refusals(api: Api) -> None:
    w = world(api, mirrors=1)
    other = api.brand("Other")
    product = api.product(w["brand"])
    foreign = api.product(other)
    path = f"/api/rooms/{w['room']['id']}/cards"
    mirror_cards = f"/api/rooms/{w['mirrors'][0]['id']}/cards"
    refused = api.post(mirror_cards, w["brand"]["token"], {"product_id": product["id"]})
    assert refused.json()["error"] == "not_a_brand_room"
    assert api.post(path, w["brand"]["token"], {"product_id": foreign["id"]}).status_code == 404
    assert api.post(path, other["token"], {"product_id": foreign["id"]}).status_code == 403
    assert api.post(path, w["brand"]["token"], {"product_id": 5}).status_code == 422
    assert api.post("/api/rooms/nope/cards", w["brand"]["token"],
                    {"product_id": product["id"]}).status_code == 404  # fmt: skip


async def test_chat_stays_in_its_room_and_reaches_the_brand_feed(
    server: ServerProcess, api: Api
) -> None:
    w = world(api, mirrors=2)
    room_a, room_b = w["mirrors"]
    ann, bob = api.viewer("Ann"), api.viewer("Bob")
    async with (
        RoomClient(ws(server, room_a, ann["token"])) as a,
        RoomClient(ws(server, room_b, bob["token"])) as b,
        RoomClient(ws(server, w["room"], w["brand"]["token"])) as host,
    ):
        for client in (a, b, host):
            await greeted(client)
        await a.send({"type": "chat", "text": "hello from A"})
        line = await a.next("chat")
        assert (line["name"], line["room_id"], line["text"]) == (
            "Ann",
            room_a["id"],
            "hello from A",
        )
        await b.send({"type": "chat", "text": "hello from B"})
        assert (await b.next("chat"))["text"] == "hello from B"
        feed = [await host.next("chat"), await host.next("chat")]
        assert {(e["room_id"], e["text"]) for e in feed} == {
            (room_a["id"], "hello from A"),
            (room_b["id"], "hello from B"),
        }
        assert await b.silent_for(0.7, "chat")  # A's line never reached B
    async with RoomClient(ws(server, room_a, bob["token"])) as late:
        snapshot = await greeted(late)
        assert [c["text"] for c in snapshot["chat"]] == ["hello from A"]


async def test_resume_with_since_replays_missed_events_in_order(
    server: ServerProcess, api: Api
) -> None:
    w = world(api, mirrors=2)
    mine, other = w["mirrors"]
    viewer = api.viewer()
    products = [api.product(w["brand"], sku=f"R{i}") for i in range(3)]
    async with RoomClient(ws(server, mine, viewer["token"])) as client:
        snapshot = await greeted(client)
        last = snapshot["seq"]
    for product in products:
        api.post(f"/api/rooms/{w['room']['id']}/cards", w["brand"]["token"],
                 {"product_id": product["id"]})  # fmt: skip
    async with RoomClient(ws(server, other, viewer["token"])) as chatter:
        await greeted(chatter)
        await chatter.send({"type": "chat", "text": "not for you"})
        await chatter.next("chat")
    async with RoomClient(ws(server, mine, viewer["token"], f"&since={last}")) as client:
        hello = await client.recv()
        assert hello["type"] == "hello"
        replayed = [await client.recv() for _ in range(3)]
        assert [e["type"] for e in replayed] == ["card", "card", "card"]
        assert [e["product"]["id"] for e in replayed] == [p["id"] for p in products]
        seqs = [e["seq"] for e in replayed]
        assert seqs == sorted(seqs) and seqs[0] > last
    async with RoomClient(ws(server, mine, viewer["token"], "&since=0")) as client:
        await client.recv()
        first = await client.recv()
        assert first["type"] in ("card", "status", "snapshot")


async def test_too_old_since_gets_a_fresh_snapshot(server: ServerProcess, api: Api) -> None:
    w = world(api, mirrors=0)
    async with server_redis(server) as redis:
        key = f"lc:{{room:{w['room']['id']}}}:history"
        await redis.xtrim(key, maxlen=0)
        product = api.product(w["brand"])
        for _ in range(3):
            api.post(f"/api/rooms/{w['room']['id']}/cards", w["brand"]["token"],
                     {"product_id": product["id"]})  # fmt: skip
        entries = await redis.xrange(key)
        await redis.xdel(key, entries[0][0])
    async with RoomClient(ws(server, w["room"], api.viewer()["token"], "&since=1")) as client:
        snapshot = await greeted(client)
        assert [c["id"] for c in snapshot["cards"]] == [product["id"]]


def server_redis(server: ServerProcess) -> Any:
    from livecommerce.redisconn import redis_client

    url = (
        server.extra_env.get("LIVECOMMERCE_REDIS_URL")
        or f"unix://{server.data_dir}/redis/redis.sock"
    )
    return redis_client(url)


async def test_msgpack_frames_decode_to_the_same_fields(server: ServerProcess, api: Api) -> None:
    w = world(api, mirrors=1)
    product = api.product(w["brand"])
    viewer = api.viewer()
    async with (
        RoomClient(ws(server, w["mirrors"][0], viewer["token"])) as as_json,
        RoomClient(ws(server, w["mirrors"][0], viewer["token"], "&format=msgpack")) as as_pack,
    ):
        await greeted(as_json)
        assert (await greeted(as_pack))["room"]["id"] == w["mirrors"][0]["id"]
        assert isinstance(as_pack.raw[-1], bytes)
        api.post(f"/api/rooms/{w['room']['id']}/cards", w["brand"]["token"],
                 {"product_id": product["id"]})  # fmt: skip
        assert await as_json.next("card") == await as_pack.next("card")
        await as_pack.send(msgpack.packb({"type": "chat", "text": "packed"}))
        assert (await as_pack.next("chat"))["text"] == "packed"


class StalledSocket:
    """A raw WebSocket client that stops reading, with a small receive buffer."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def close_code(self, timeout: float) -> int | None:
        """Read everything the server sent; the code of its close frame."""
        self.sock.settimeout(timeout)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(1 << 20):
                data += chunk
        self.sock.close()
        data = data.split(b"\r\n\r\n", 1)[1]
        offset = 0
        while offset + 2 <= len(data):
            opcode, length = data[offset] & 0x0F, data[offset + 1] & 0x7F
            offset += 2
            if length == 126:
                length = int.from_bytes(data[offset : offset + 2], "big")
                offset += 2
            elif length == 127:
                length = int.from_bytes(data[offset : offset + 8], "big")
                offset += 8
            if opcode == 8:
                return int.from_bytes(data[offset : offset + 2], "big")
            offset += length
        return None


async def test_slow_consumer_is_closed_4408_while_others_keep_receiving(api: Api) -> None:
    with ServerProcess() as server:
        local = Api(server.base_url, server.admin_token)
        brand = local.brand()
        room = local.room(brand)
        big = [local.product(brand, sku=f"BIG{i}", title="x" * 190, image_url="https://e.x/"
                             + "y" * 1900) for i in range(4)]  # fmt: skip
        viewer = local.viewer()
        slow = StalledSocket(server.port, f"/ws/rooms/{room['id']}?token={viewer['token']}")
        async with RoomClient(ws(server, room, viewer["token"])) as fast:
            await greeted(fast)
            await asyncio.sleep(0.5)
            sent = 0
            for i in range(4000):
                local.post(f"/api/rooms/{room['id']}/cards", brand["token"],
                           {"product_id": big[i % 4]["id"]})  # fmt: skip
                sent += 1
                if i % 50 == 49 and closed_too_slow(local):
                    break
            code = asyncio.get_running_loop().run_in_executor(None, slow.close_code, 10)
            for _ in range(sent):  # the room never slowed down for the slow one
                await fast.next("card")
            assert await code == 4408
            await fast.send({"type": "chat", "text": "still flowing"})
            assert (await fast.next("chat"))["text"] == "still flowing"


def closed_too_slow(api: Api) -> bool:
    metrics = api.get("/metrics", api.admin_token).text
    return 'livecommerce_ws_closed_total{code="4408"}' in metrics


async def test_two_processes_sharing_redis_deliver_each_others_events(api: Api) -> None:
    with ServerProcess() as first:
        redis_url = f"unix://{first.data_dir}/redis/redis.sock"
        db_url = f"sqlite:///{first.data_dir}/livecommerce.db"
        env = {"LIVECOMMERCE_REDIS_URL": redis_url, "DATABASE_URL": db_url,
               "LIVECOMMERCE_ADMIN_TOKEN": first.admin_token}  # fmt: skip
        with ServerProcess(env=env) as second:
            one = Api(first.base_url, first.admin_token)
            w = world(one, mirrors=1)
            product = one.product(w["brand"])
            viewer = one.viewer("Cross")
            async with (
                RoomClient(ws(first, w["room"], viewer["token"])) as on_first,
                RoomClient(ws(second, w["mirrors"][0], viewer["token"])) as on_second,
                RoomClient(ws(first, w["mirrors"][0], viewer["token"])) as mirror_on_first,
            ):
                for client in (on_first, on_second, mirror_on_first):
                    await greeted(client)
                two = Api(second.base_url, first.admin_token)
                two.ok(two.post(f"/api/rooms/{w['room']['id']}/cards", w["brand"]["token"],
                                {"product_id": product["id"]}), 201)  # fmt: skip
                assert (await on_first.next("card"))["product"]["id"] == product["id"]
                assert (await on_second.next("card"))["product"]["id"] == product["id"]
                await on_second.send({"type": "chat", "text": "across"})
                assert (await mirror_on_first.next("chat"))["text"] == "across"


async def test_likes_and_viewer_counts_are_coalesced(server: ServerProcess, api: Api) -> None:
    w = world(api, mirrors=1)
    mirror = w["mirrors"][0]
    viewer = api.viewer()
    async with (
        RoomClient(ws(server, mirror, viewer["token"])) as a,
        RoomClient(ws(server, mirror, viewer["token"])) as b,
        RoomClient(ws(server, w["room"], w["brand"]["token"])) as host,
    ):
        for client in (a, b, host):
            await greeted(client)
        for _ in range(10):
            await a.send({"type": "like", "count": 5})
        loop = asyncio.get_running_loop()
        started = loop.time()
        likes: list[dict[str, Any]] = []
        while loop.time() - started < 2.5:
            try:
                likes.append(await a.next("likes", wait_s=2.6 - (loop.time() - started)))
            except TimeoutError:
                break
        assert likes and likes[-1]["total"] == 50
        assert len(likes) <= 3  # at most two a second, never one per like
        counts = await b.next("viewers", lambda e: e["count"] == 2, wait_s=5)
        assert counts["room_id"] == mirror["id"] and "total" not in counts
        brand_view = await host.next("viewers", lambda e: e.get("total") == 3, wait_s=5)
        assert brand_view["room_id"] == w["room"]["id"]
    assert json.loads(json.dumps(brand_view)) == brand_view
