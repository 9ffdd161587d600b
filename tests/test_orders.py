"""Orders against a real server with a short pay timeout: expiry gives units back, the viewer's
cancel (and its races with payment), who may read which orders, listings, and room end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.test_seckill import buy, seckill, world


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    env = {"LIVECOMMERCE_DEV_PAYMENTS": "1", "LIVECOMMERCE_PAY_TIMEOUT_S": "2"}
    with ServerProcess(env=env) as process:
        yield Api(process.base_url, process.admin_token)


def wait_for(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def listed(api: Api, token: str, query: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = api.ok(api.get(f"/api/orders?limit=2{query}{cursor}", token), 200)
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        cursor = f"&cursor={page['next_cursor']}"


def test_unpaid_reservation_expires_and_gives_units_back(short: Api) -> None:
    api = short
    w = world(api)
    mirror = w["mirrors"][0]["id"]
    sk = seckill(api, w, stock=2, per_viewer_limit=2, allocations={mirror: 1})
    viewer = api.viewer()
    order = api.ok(buy(api, viewer, sk, mirror, 2), 201)
    assert api.ok(api.get(f"/api/orders/{order['id']}", viewer["token"]))["status"] == "reserved"
    assert buy(api, viewer, sk, mirror, 1).json()["error"] == "limit_exceeded"
    expired = wait_for(
        lambda: api.get(f"/api/orders/{order['id']}", viewer["token"]).json()["status"] == "expired"
    )
    assert expired
    view = api.ok(api.get(f"/api/seckills/{sk['id']}"))
    assert view["left"] == 2 and view["allocations_left"] == {mirror: 1}
    paid = api.post(f"/api/orders/{order['id']}/pay", viewer["token"])
    assert paid.status_code == 409 and paid.json()["error"] == "expired"
    again = api.ok(buy(api, viewer, sk, mirror, 2), 201)  # limit and stock are back
    assert again["id"] != order["id"]
    in_sql = wait_for(lambda: listed(api, w["brand"]["token"], "&status=expired"))
    assert [o["id"] for o in in_sql] == [order["id"]]


def test_viewer_cancel_releases_at_once_and_only_once(short: Api) -> None:
    api = short
    w = world(api)
    room = w["room"]["id"]
    sk = seckill(api, w, stock=1, per_viewer_limit=1)
    viewer, stranger = api.viewer(), api.viewer()
    order = api.ok(buy(api, viewer, sk, room), 201)
    path = f"/api/orders/{order['id']}/cancel"
    assert api.post(path, stranger["token"]).status_code == 403
    assert api.post(path, w["brand"]["token"]).status_code == 403
    assert api.post("/api/orders/nope/cancel", viewer["token"]).status_code == 404
    cancelled = api.ok(api.post(path, viewer["token"]), 200)
    assert cancelled["status"] == "cancelled"
    assert api.ok(api.post(path, viewer["token"]), 200)["status"] == "cancelled"
    assert api.ok(api.get(f"/api/seckills/{sk['id']}"))["left"] == 1
    second = api.ok(buy(api, stranger, sk, room), 201)
    api.ok(api.post(f"/api/orders/{second['id']}/pay", stranger["token"]), 200)
    refused = api.post(f"/api/orders/{second['id']}/cancel", stranger["token"])
    assert refused.status_code == 409 and refused.json()["error"] == "paid"
    assert api.ok(api.get(f"/api/seckills/{sk['id']}"))["left"] == 0


def test_cancel_racing_payment_has_one_winner(short: Api) -> None:
    api = short
    w = world(api)
    room = w["room"]["id"]
    sk = seckill(api, w, stock=20, per_viewer_limit=20)
    with ThreadPoolExecutor(8) as pool:
        for _ in range(8):
            viewer = api.viewer()
            order = api.ok(buy(api, viewer, sk, room), 201)
            cancel = pool.submit(api.post, f"/api/orders/{order['id']}/cancel", viewer["token"])
            pay = pool.submit(api.post, f"/api/orders/{order['id']}/pay", viewer["token"])
            codes = sorted([cancel.result().status_code, pay.result().status_code])
            assert codes == [200, 409], codes
            final = api.ok(api.get(f"/api/orders/{order['id']}", viewer["token"]))
            assert final["status"] == ("paid" if pay.result().status_code == 200 else "cancelled")
    paid = len(wait_for(lambda: listed(api, w["brand"]["token"], "&status=paid")) or [])
    assert api.ok(api.get(f"/api/seckills/{sk['id']}"))["left"] == 20 - paid


def test_who_reads_which_orders(short: Api) -> None:
    api = short
    w = world(api, mirrors=2)
    other_dealer = api.dealer()
    other_mirror = api.mirror(w["brand"], w["room"], other_dealer)["id"]
    sk = seckill(api, w, stock=10, per_viewer_limit=5)
    viewer, stranger = api.viewer(), api.viewer()
    in_mirror = api.ok(buy(api, viewer, sk, w["mirrors"][0]["id"]), 201)
    in_second = api.ok(buy(api, viewer, sk, w["mirrors"][1]["id"]), 201)
    in_other = api.ok(buy(api, stranger, sk, other_mirror), 201)
    in_brand_room = api.ok(buy(api, stranger, sk, w["room"]["id"]), 201)
    path = f"/api/orders/{in_mirror['id']}"
    for token in (viewer["token"], w["brand"]["token"], w["dealer"]["token"], api.admin_token):
        assert api.ok(api.get(path, token))["id"] == in_mirror["id"]
    for token in (stranger["token"], other_dealer["token"], world(api)["brand"]["token"]):
        assert api.get(path, token).status_code == 403
    assert api.get(path).status_code == 401
    assert api.get("/api/orders/nope", viewer["token"]).status_code == 404
    assert api.get(f"/api/orders/{'0' * 18}-{sk['id']}", viewer["token"]).status_code == 404
    ids = {in_mirror["id"], in_second["id"], in_other["id"], in_brand_room["id"]}

    def ids_of(token: str, query: str = "") -> set[str]:
        return {o["id"] for o in listed(api, token, query)}

    assert wait_for(lambda: ids_of(w["brand"]["token"]) == ids)
    assert ids_of(w["dealer"]["token"]) == {in_mirror["id"], in_second["id"]}
    assert ids_of(other_dealer["token"]) == {in_other["id"]}
    assert ids_of(viewer["token"]) == {in_mirror["id"], in_second["id"]}
    room_query = f"&room_id={w['mirrors'][1]['id']}"
    assert ids_of(w["brand"]["token"], room_query) == {in_second["id"]}
    api.ok(api.post(f"/api/orders/{in_other['id']}/pay", stranger["token"]), 200)
    assert ids_of(w["brand"]["token"], "&status=paid") == {in_other["id"]}
    assert api.get("/api/orders?status=lost", viewer["token"]).status_code == 422
    assert api.get("/api/orders?limit=0", viewer["token"]).status_code == 422
    assert api.get("/api/orders").status_code == 401


def test_room_end_ends_its_seckills_and_reservations_stay_payable(short: Api) -> None:
    api = short
    w = world(api)
    room = w["room"]["id"]
    first, second = seckill(api, w), seckill(api, w)
    viewer = api.viewer()
    order = api.ok(buy(api, viewer, first, room, 1, uuid.uuid4().hex), 201)
    api.ok(api.post(f"/api/rooms/{room}/end", w["brand"]["token"]), 200)
    for sk in (first, second):
        assert api.ok(api.get(f"/api/seckills/{sk['id']}"))["state"] == "ended"
        assert buy(api, api.viewer(), sk, room).json()["error"] == "ended"
    assert api.ok(api.post(f"/api/orders/{order['id']}/pay", viewer["token"]))["status"] == "paid"
