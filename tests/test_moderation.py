"""Moderation (issue 12): hide a chat line, mute a viewer; who may, and what everyone sees."""

from __future__ import annotations

from typing import Any

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.wsclient import RoomClient


def ws(server: ServerProcess, room: dict[str, Any], token: str, extra: str = "") -> str:
    return f"{server.ws_url}/ws/rooms/{room['id']}?token={token}{extra}"


async def greet(client: RoomClient) -> dict[str, Any]:
    await client.next("hello")
    return await client.next("snapshot")


async def test_hide_reaches_the_room_and_the_line_leaves_snapshots_and_replays(
    server: ServerProcess, api: Api
) -> None:
    brand = api.brand()
    room = api.room(brand)
    dealer, other = api.dealer("Mine"), api.dealer("Other")
    mirror = api.mirror(brand, room, dealer)
    api.mirror(brand, room, other)
    ann = api.viewer("Ann")
    async with (
        RoomClient(ws(server, mirror, ann["token"])) as viewer,
        RoomClient(ws(server, room, brand["token"])) as host,
    ):
        first = await greet(viewer)
        await greet(host)
        await viewer.send({"type": "chat", "text": "spam spam"})
        line = await viewer.next("chat")
        await viewer.send({"type": "chat", "text": "kind words"})
        await viewer.next("chat")
        path = f"/api/rooms/{mirror['id']}/chat/{line['id']}/hide"
        assert api.post(path, other["token"]).status_code == 403
        assert api.post(path, ann["token"]).status_code == 403
        missing = f"/api/rooms/{mirror['id']}/chat/nope/hide"
        assert api.post(missing, dealer["token"]).status_code == 404
        assert (
            api.post(f"/api/rooms/nope/chat/{line['id']}/hide", dealer["token"]).status_code == 404
        )
        api.ok(api.post(path, dealer["token"]), 200)
        hidden = await viewer.next("chat_hidden")
        assert (hidden["room_id"], hidden["chat_id"]) == (mirror["id"], line["id"])
        assert (await host.next("chat_hidden"))["chat_id"] == line["id"]
    async with RoomClient(ws(server, mirror, ann["token"])) as late:
        snapshot = await greet(late)
        assert [c["text"] for c in snapshot["chat"]] == ["kind words"]
    async with RoomClient(ws(server, mirror, ann["token"], f"&since={first['seq']}")) as back:
        await back.next("hello")
        replayed = [await back.recv() for _ in range(2)]
        assert [e["type"] for e in replayed] == ["chat", "chat_hidden"]
        assert replayed[0]["text"] == "kind words"


async def test_brand_moderates_every_mirror(server: ServerProcess, api: Api) -> None:
    brand = api.brand()
    room = api.room(brand)
    mirror = api.mirror(brand, room, api.dealer())
    bob = api.viewer("Bob")
    async with RoomClient(ws(server, mirror, bob["token"])) as viewer:
        await greet(viewer)
        await viewer.send({"type": "chat", "text": "buy my stuff elsewhere"})
        line = await viewer.next("chat")
        api.ok(api.post(f"/api/rooms/{mirror['id']}/chat/{line['id']}/hide", brand["token"]), 200)
        assert (await viewer.next("chat_hidden"))["chat_id"] == line["id"]
        foreign = api.brand("Foreign")
        refused = api.post(f"/api/rooms/{mirror['id']}/mutes", foreign["token"],
                           {"viewer_id": bob["id"]})  # fmt: skip
        assert refused.status_code == 403
        api.ok(api.post(f"/api/rooms/{mirror['id']}/mutes", brand["token"],
                        {"viewer_id": bob["id"]}), 201)  # fmt: skip
        await viewer.send({"type": "chat", "text": "again"})
        assert (await viewer.next("error"))["error"] == "muted"


async def test_muted_viewer_chat_reaches_nobody(server: ServerProcess, api: Api) -> None:
    brand = api.brand()
    room = api.room(brand)
    dealer = api.dealer()
    mirror = api.mirror(brand, room, dealer)
    spammer, reader = api.viewer("Spam"), api.viewer("Reader")
    path = f"/api/rooms/{mirror['id']}/mutes"
    assert api.post(path, dealer["token"], {"viewer_id": "nobody"}).status_code == 404
    assert api.post(path, dealer["token"], {"viewer_id": 7}).status_code == 422
    assert api.post("/api/rooms/nope/mutes", dealer["token"],
                    {"viewer_id": spammer["id"]}).status_code == 404  # fmt: skip
    assert api.post(path, api.dealer("Stranger")["token"],
                    {"viewer_id": spammer["id"]}).status_code == 403  # fmt: skip
    api.ok(api.post(path, dealer["token"], {"viewer_id": spammer["id"]}), 201)
    api.ok(api.post(path, dealer["token"], {"viewer_id": spammer["id"]}), 201)  # idempotent
    async with (
        RoomClient(ws(server, mirror, spammer["token"])) as muted,
        RoomClient(ws(server, mirror, reader["token"])) as other,
        RoomClient(ws(server, room, spammer["token"])) as elsewhere,
    ):
        for client in (muted, other, elsewhere):
            await greet(client)
        await muted.send({"type": "chat", "text": "buy followers"})
        assert (await muted.next("error"))["error"] == "muted"
        assert await other.silent_for(0.8, "chat")
        await elsewhere.send({"type": "chat", "text": "muted only in that mirror"})
        assert (await elsewhere.next("chat"))["text"] == "muted only in that mirror"
