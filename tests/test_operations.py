"""Second-day operations through a real server: token rotation and dealer revocation."""

from __future__ import annotations

import uuid

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.test_seckill import seckill, world
from tests.wsclient import RoomClient


def test_rotated_tokens_stop_working_at_once(api: Api) -> None:
    brand, dealer = api.brand(), api.dealer()
    for kind, party in (("brands", brand), ("dealers", dealer)):
        rotated = api.ok(api.post(f"/api/{kind}/{party['id']}/token", party["token"]), 200)
        assert rotated["token"] != party["token"]
        assert api.get("/api/rooms", party["token"]).status_code == 401
        assert api.get("/api/rooms", rotated["token"]).status_code == 200
        by_admin = api.ok(api.post(f"/api/{kind}/{party['id']}/token", api.admin_token), 200)
        assert api.get("/api/rooms", rotated["token"]).status_code == 401
        assert api.get("/api/rooms", by_admin["token"]).status_code == 200
    other = api.brand()
    assert api.post(f"/api/brands/{brand['id']}/token", other["token"]).status_code == 403


def test_repeated_webhook_put_gives_a_new_secret(api: Api) -> None:
    brand = api.brand()
    path = f"/api/brands/{brand['id']}/webhook"
    first = api.ok(api.put(path, brand["token"], {"url": "http://127.0.0.1:9/hook"}), 200)
    second = api.ok(api.put(path, brand["token"], {"url": "http://127.0.0.1:9/hook"}), 200)
    assert first["secret"] and second["secret"] and first["secret"] != second["secret"]


async def test_revoking_a_dealer_ends_its_mirrors_and_keeps_past_orders(
    server: ServerProcess, api: Api
) -> None:
    w = world(api)
    brand, dealer, mirror = w["brand"], w["dealer"], w["mirrors"][0]
    sk = seckill(api, w, stock=10, per_viewer_limit=5)
    viewer = api.viewer()
    body = {"room_id": mirror["id"], "qty": 1, "request_id": uuid.uuid4().hex}
    order = api.ok(api.post(f"/api/seckills/{sk['id']}/orders", viewer["token"], body), 201)
    api.ok(api.post(f"/api/orders/{order['id']}/pay", viewer["token"]), 200)
    url = f"{server.ws_url}/ws/rooms/{mirror['id']}?token={viewer['token']}"
    async with RoomClient(url) as client:
        await client.next("snapshot")
        revoked = api.delete(f"/api/brands/{brand['id']}/dealers/{dealer['id']}", brand["token"])
        assert api.ok(revoked, 200)["ended_rooms"] == [mirror["id"]]
        assert (await client.next("status"))["status"] == "ended"
    assert api.ok(api.get(f"/api/rooms/{mirror['id']}", dealer["token"]))["status"] == "ended"
    again = api.post(f"/api/rooms/{w['room']['id']}/mirrors", dealer["token"], {})
    assert again.status_code == 403
    kept = api.ok(api.get(f"/api/orders/{order['id']}", brand["token"]), 200)
    assert kept["room_id"] == mirror["id"] and kept["dealer_id"] == dealer["id"]
    assert kept["status"] == "paid"
    ledger = api.ok(api.get(f"/api/ledger?party=dealer:{dealer['id']}", dealer["token"]), 200)
    assert any(e["order_id"] == order["id"] and e["kind"] == "sale" for e in ledger["items"])


def test_per_ip_buy_limit_throttles_many_tokens_from_one_address() -> None:
    with ServerProcess(env={"LIVECOMMERCE_IP_RATE_LIMIT": "5"}) as server:
        api = Api(server.base_url, server.admin_token)
        w = world(api)
        sk = seckill(api, w, stock=100, per_viewer_limit=5)
        viewers = [api.viewer() for _ in range(12)]  # a scalper's many tokens, one address
        path = f"/api/seckills/{sk['id']}/orders"
        answers = [
            api.post(path, v["token"], {"room_id": w["room"]["id"], "qty": 1,
                                        "request_id": uuid.uuid4().hex})
            for v in viewers
        ]  # fmt: skip
        throttled = [a for a in answers if a.status_code == 429]
        assert throttled and all(a.status_code in (201, 429) for a in answers)
        assert throttled[0].json()["error"] == "rate_limited"
        assert int(throttled[0].headers["Retry-After"]) >= 1
