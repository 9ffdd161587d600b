"""The seckill engine against a real server: creating (and refusing) seckills, every buy result
code, idempotency, allocations, rate limits, the WebSocket buy, and the events rooms receive."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.wsclient import RoomClient


def iso_in(seconds: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


def world(api: Api, mirrors: int = 1) -> dict[str, Any]:
    brand = api.brand()
    product = api.product(brand, sku=f"SK-{uuid.uuid4().hex[:10]}")
    room = api.room(brand)
    dealer = api.dealer()
    rooms = [api.mirror(brand, room, dealer) if i == 0 else
             api.ok(api.post(f"/api/rooms/{room['id']}/mirrors", dealer["token"], {}), 201)
             for i in range(mirrors)]  # fmt: skip
    return {"brand": brand, "product": product, "room": room, "dealer": dealer, "mirrors": rooms}


def seckill(api: Api, w: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"product_id": w["product"]["id"], "price_cents": 990, "stock": 10,
            "per_viewer_limit": 2, **fields}  # fmt: skip
    return api.ok(
        api.post(f"/api/rooms/{w['room']['id']}/seckills", w["brand"]["token"], body), 201
    )


def buy(api: Api, viewer: dict[str, Any], sk: dict[str, Any], room_id: str, qty: int = 1,
        request_id: str | None = None) -> Any:  # fmt: skip
    body = {"room_id": room_id, "qty": qty, "request_id": request_id or uuid.uuid4().hex}
    return api.post(f"/api/seckills/{sk['id']}/orders", viewer["token"], body)


def test_create_returns_the_seckill_open_now(api: Api) -> None:
    w = world(api)
    mirror = w["mirrors"][0]
    sk = seckill(api, w, stock=10, allocations={mirror["id"]: 3})
    assert sk["state"] == "open" and sk["stock"] == 10 and sk["left"] == 10
    assert sk["room_id"] == w["room"]["id"] and sk["allocations"] == {mirror["id"]: 3}
    assert sk["starts_at"].endswith("Z") and sk["ends_at"] is None
    public = api.ok(api.get(f"/api/seckills/{sk['id']}"), 200)  # no token needed
    assert public["left"] == 10 and public["state"] == "open"


def test_create_refuses_bad_seckills(api: Api) -> None:
    w = world(api)
    other = world(api)
    path = f"/api/rooms/{w['room']['id']}/seckills"
    token = w["brand"]["token"]
    base = {"product_id": w["product"]["id"], "price_cents": 990, "stock": 10,
            "per_viewer_limit": 2}  # fmt: skip
    no_limit = {k: v for k, v in base.items() if k != "per_viewer_limit"}
    at = iso_in(60)
    cases: list[tuple[dict[str, Any], int]] = [
        (no_limit, 422),
        ({**base, "per_viewer_limit": 0}, 422),
        ({**base, "stock": 0}, 422),
        ({**base, "stock": "10"}, 422),
        ({**base, "price_cents": 10_000_000_001}, 422),
        ({**base, "allocations": {other["mirrors"][0]["id"]: 1}}, 422),
        ({**base, "allocations": {w["room"]["id"]: 1}}, 422),
        ({**base, "allocations": {w["mirrors"][0]["id"]: 0}}, 422),
        ({**base, "allocations": {w["mirrors"][0]["id"]: 11}}, 422),
        ({**base, "starts_at": at, "ends_at": at}, 422),
        ({**base, "ends_at": iso_in(-60)}, 422),
        ({**base, "ends_at": "yesterday"}, 422),
        ({**base, "product_id": other["product"]["id"]}, 422),
    ]
    for body, status in cases:
        response = api.post(path, token, body)
        assert response.status_code == status, (body, response.text)
    mirror_path = f"/api/rooms/{w['mirrors'][0]['id']}/seckills"
    assert api.post(mirror_path, token, base).json()["error"] == "not_a_brand_room"
    assert api.post(path, other["brand"]["token"], base).status_code == 403
    assert api.post("/api/rooms/nope/seckills", token, base).status_code == 404
    assert api.post(path, w["dealer"]["token"], base).status_code == 403
    assert api.get("/api/seckills/nope").status_code == 404


def test_buy_result_codes(api: Api) -> None:
    w = world(api)
    mirror = w["mirrors"][0]["id"]
    sk = seckill(api, w, stock=3, per_viewer_limit=2)
    first, second = api.viewer(), api.viewer()
    order = api.ok(buy(api, first, sk, mirror, 2, "r1"), 201)
    assert order["status"] == "reserved" and order["qty"] == 2
    assert order["dealer_id"] == w["dealer"]["id"] and order["room_id"] == mirror
    assert order["amount_cents"] == 1980 and order["unit_price_cents"] == 990
    assert order["seckill_id"] == sk["id"] and order["request_id"] == "r1"
    repeat = buy(api, first, sk, mirror, 2, "r1")
    assert repeat.status_code == 200 and repeat.json()["id"] == order["id"]
    assert buy(api, first, sk, mirror, 1, "r1").status_code == 422  # same id, other qty
    assert buy(api, first, sk, w["room"]["id"], 2, "r1").status_code == 422  # other room
    assert buy(api, first, sk, mirror, 1).json()["error"] == "limit_exceeded"
    assert buy(api, second, sk, mirror, 3).json()["error"] == "limit_exceeded"
    refused = buy(api, second, sk, mirror, 2, "r2")
    assert refused.status_code == 409 and refused.json()["error"] == "sold_out"
    brand_room_order = api.ok(buy(api, second, sk, w["room"]["id"], 1, "r2"), 201)
    assert brand_room_order["dealer_id"] is None  # a refused request id is evaluated again
    assert buy(api, api.viewer(), sk, mirror).json()["error"] == "sold_out"
    assert buy(api, first, sk, mirror, 0).status_code == 422
    assert buy(api, first, sk, mirror, 10_001).status_code == 422
    assert buy(api, first, sk, "nope").status_code == 404
    assert buy(api, first, sk, world(api)["room"]["id"]).status_code == 422
    assert buy(api, first, {"id": "nope"}, mirror).status_code == 404
    assert api.post(f"/api/seckills/{sk['id']}/orders", w["brand"]["token"], {}).status_code == 403
    no_token = api.post(f"/api/seckills/{sk['id']}/orders", None, {"room_id": mirror})
    assert no_token.status_code == 401
    assert api.ok(api.get(f"/api/seckills/{sk['id']}"))["state"] == "sold_out"


def test_not_started_and_ended(api: Api) -> None:
    w = world(api)
    room = w["room"]["id"]
    later = seckill(api, w, starts_at=iso_in(3600))
    assert later["state"] == "scheduled"
    assert buy(api, api.viewer(), later, room).json()["error"] == "not_started"
    sk = seckill(api, w)
    viewer = api.viewer()
    order = api.ok(buy(api, viewer, sk, room, 1, "before-end"), 201)
    ended = api.ok(api.post(f"/api/seckills/{sk['id']}/end", w["brand"]["token"]), 200)
    assert ended["state"] == "ended"
    refused = buy(api, api.viewer(), sk, room)
    assert refused.status_code == 409 and refused.json()["error"] == "ended"
    # the reservation made before the end is still the same order, and still payable
    assert buy(api, viewer, sk, room, 1, "before-end").json()["id"] == order["id"]
    paid = api.ok(api.post(f"/api/orders/{order['id']}/pay", viewer["token"]), 200)
    assert paid["status"] == "paid"
    other = world(api)
    assert api.post(f"/api/seckills/{sk['id']}/end", other["brand"]["token"]).status_code == 403
    past = seckill(api, w, starts_at=iso_in(-60), ends_at=iso_in(-1))
    assert past["state"] == "ended"
    assert buy(api, viewer, past, room).json()["error"] == "ended"


def test_allocation_is_drawn_first_and_reserved_for_its_room(api: Api) -> None:
    w = world(api, mirrors=2)
    allocated, plain = w["mirrors"][0]["id"], w["mirrors"][1]["id"]
    sk = seckill(api, w, stock=4, per_viewer_limit=5, allocations={allocated: 3})
    api.ok(buy(api, api.viewer(), sk, plain, 1), 201)  # the pool's only unit
    assert buy(api, api.viewer(), sk, plain, 1).json()["error"] == "sold_out"
    assert buy(api, api.viewer(), sk, w["room"]["id"], 1).json()["error"] == "sold_out"
    api.ok(buy(api, api.viewer(), sk, allocated, 3), 201)
    view = api.ok(api.get(f"/api/seckills/{sk['id']}"))
    assert view["left"] == 0 and view["allocations_left"] == {allocated: 0}


async def test_buy_rate_limit_answers_429_with_retry_after(api: Api) -> None:
    w = world(api)
    sk = seckill(api, w, stock=1000, per_viewer_limit=1000)
    viewer = api.viewer()
    headers = {"Authorization": f"Bearer {viewer['token']}"}
    async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        statuses = await asyncio.gather(*(
            client.post(f"/api/seckills/{sk['id']}/orders", headers=headers,
                        json={"room_id": w["room"]["id"], "qty": 1, "request_id": f"q{i}"})
            for i in range(40)
        ))  # fmt: skip
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and len(limited) <= 20, [r.status_code for r in statuses]
    assert sum(r.status_code == 201 for r in statuses) >= 20
    assert limited[0].json()["error"] == "rate_limited"
    assert int(limited[0].headers["retry-after"]) >= 1


async def test_ws_buy_answers_the_buyer_and_rooms_see_stock_and_sold_out(
    api: Api, server: ServerProcess
) -> None:
    w = world(api)
    mirror = w["mirrors"][0]["id"]
    buyer, watcher = api.viewer(), api.viewer()
    url = f"{server.ws_url}/ws/rooms/{mirror}?token="
    async with RoomClient(url + buyer["token"]) as ws, RoomClient(url + watcher["token"]) as other:
        await ws.next("snapshot")
        await other.next("snapshot")
        sk = seckill(api, w, stock=2, per_viewer_limit=2)
        announced = await other.next("seckill", lambda e: e["id"] == sk["id"])
        assert announced["state"] == "open" and announced["left"] == 2
        await ws.send({"type": "buy", "seckill_id": sk["id"], "qty": 2, "request_id": "w1"})
        answer = await ws.next("order")
        assert answer["result"] == "ok" and answer["request_id"] == "w1"
        assert answer["order"]["room_id"] == mirror and answer["order"]["qty"] == 2
        stock = await other.next("stock", lambda e: e["seckill_id"] == sk["id"] and e["left"] == 0)
        assert stock["left"] == 0
        sold = await other.next("seckill", lambda e: e["id"] == sk["id"])
        assert sold["state"] == "sold_out"
        ticker = await other.next("ticker", lambda e: e["seckill_id"] == sk["id"])
        assert ticker["count"] == 2
        assert await other.silent_for(0.5, "order")  # the answer went to the buyer only
        await ws.send({"type": "buy", "seckill_id": sk["id"], "qty": 2, "request_id": "w1"})
        again = await ws.next("order")
        assert again["result"] == "duplicate" and again["order"]["id"] == answer["order"]["id"]
        await ws.send({"type": "buy", "seckill_id": sk["id"], "qty": 0, "request_id": "w2"})
        bad = await ws.next("error")
        assert bad["error"] == "invalid" and bad["request_id"] == "w2"


async def test_scheduled_seckill_opens_and_ends_at_its_times(
    api: Api, server: ServerProcess
) -> None:
    w = world(api)
    url = f"{server.ws_url}/ws/rooms/{w['mirrors'][0]['id']}?token={api.viewer()['token']}"
    async with RoomClient(url) as ws:
        snapshot = await ws.next("snapshot")
        assert snapshot["seckills"] == []
        sk = seckill(api, w, starts_at=iso_in(1.0), ends_at=iso_in(2.5))
        first = await ws.next("seckill", lambda e: e["id"] == sk["id"])
        assert first["state"] == "scheduled"
        opened = await ws.next("seckill", lambda e: e["id"] == sk["id"], wait_s=5)
        assert opened["state"] == "open"
        closed = await ws.next("seckill", lambda e: e["id"] == sk["id"], wait_s=5)
        assert closed["state"] == "ended"
    async with RoomClient(url) as ws:
        snapshot = await ws.next("snapshot")
        assert [(s["id"], s["state"]) for s in snapshot["seckills"]] == [(sk["id"], "ended")]


async def test_snapshot_left_is_per_room_for_allocated_rooms(
    api: Api, server: ServerProcess
) -> None:
    w = world(api, mirrors=2)
    allocated, plain = w["mirrors"][0]["id"], w["mirrors"][1]["id"]
    sk = seckill(api, w, stock=10, allocations={allocated: 4})
    token = api.viewer()["token"]
    for room_id, left in ((allocated, 10), (plain, 6), (w["room"]["id"], 6)):
        async with RoomClient(f"{server.ws_url}/ws/rooms/{room_id}?token={token}") as ws:
            snapshot = await ws.next("snapshot")
            mine = [s for s in snapshot["seckills"] if s["id"] == sk["id"]]
            assert mine[0]["left"] == left, (room_id, mine)
    await asyncio.sleep(0)
