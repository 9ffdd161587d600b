"""The foundation against a real server: the brand → product → room → live → mirror flow, role
refusals, malformed input, unknown ids, and the embedded Redis stopping with the server."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from livecommerce.process import ServerProcess
from tests.conftest import Api


def test_brand_product_room_live_mirror_flow(api: Api) -> None:
    brand = api.brand("Aurora")
    assert brand["token"].startswith("brand_") and brand["name"] == "Aurora"
    product = api.product(brand, sku="SERUM", price_cents=12900, dealer_bps=1500, upline_bps=300)
    assert product["price_cents"] == 12900 and product["brand_id"] == brand["id"]
    room = api.room(brand, live=False, stream_url="https://cdn.example/live.m3u8")
    assert room["status"] == "scheduled" and room["kind"] == "brand"
    live = api.ok(api.post(f"/api/rooms/{room['id']}/live", brand["token"]), 200)
    assert live["status"] == "live"
    upline = api.dealer("Store")
    dealer = api.dealer("Assistant", upline_id=upline["id"])
    mirror = api.mirror(brand, room, dealer)
    assert mirror["kind"] == "dealer" and mirror["brand_room_id"] == room["id"]
    assert mirror["dealer_id"] == dealer["id"] and mirror["status"] == "live"
    assert mirror["watch_url"] == f"{api.base_url}/watch/{mirror['id']}"
    assert mirror["embed_url"].startswith("http://") and mirror["embed_url"].endswith(mirror["id"])
    seen = api.ok(api.get(f"/api/rooms/{room['id']}", brand["token"]))
    assert [m["id"] for m in seen["mirrors"]] == [mirror["id"]]
    assert api.ok(api.get(f"/api/rooms/{mirror['id']}", dealer["token"]))["id"] == mirror["id"]
    ended = api.ok(api.post(f"/api/rooms/{room['id']}/end", brand["token"]), 200)
    assert ended["status"] == "ended"
    assert api.ok(api.get(f"/api/rooms/{mirror['id']}", dealer["token"]))["status"] == "ended"
    again = api.post(f"/api/rooms/{room['id']}/live", brand["token"])
    assert again.status_code == 409 and again.json()["error"] == "room_ended"


def test_dealer_rooms_listing_shows_own_mirrors_and_mirrorable_rooms(api: Api) -> None:
    brand, other_brand = api.brand(), api.brand()
    room, other_room = api.room(brand), api.room(other_brand)
    dealer = api.dealer()
    mirror = api.mirror(brand, room, dealer)
    ids = {r["id"] for r in api.ok(api.get("/api/rooms", dealer["token"]))["items"]}
    assert {room["id"], mirror["id"]} <= ids and other_room["id"] not in ids


def test_only_an_authorized_dealer_mirrors_and_only_brand_rooms(api: Api) -> None:
    brand = api.brand()
    room = api.room(brand)
    stranger = api.dealer()
    refused = api.post(f"/api/rooms/{room['id']}/mirrors", stranger["token"], {})
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    dealer = api.dealer()
    mirror = api.mirror(brand, room, dealer)
    nested = api.post(f"/api/rooms/{mirror['id']}/mirrors", dealer["token"], {})
    assert nested.status_code == 409 and nested.json()["error"] == "not_a_brand_room"
    second = api.post(f"/api/rooms/{room['id']}/mirrors", dealer["token"], {"title": "Second"})
    assert second.status_code == 201 and second.json()["id"] != mirror["id"]


def test_upline_must_exist_and_be_top_level(api: Api) -> None:
    assert (
        api.post("/api/dealers", api.admin_token, {"name": "x", "upline_id": "nope"}).status_code
        == 422
    )
    top = api.dealer("Top")
    middle = api.dealer("Middle", upline_id=top["id"])
    third = api.post("/api/dealers", api.admin_token, {"name": "x", "upline_id": middle["id"]})
    assert third.status_code == 422


@pytest.mark.parametrize(
    ("method", "path", "who", "status"),
    [
        ("POST", "/api/brands", None, 401),
        ("POST", "/api/brands", "bad", 401),
        ("POST", "/api/brands", "viewer", 403),
        ("POST", "/api/brands", "brand", 403),
        ("POST", "/api/brands", "dealer", 403),
        ("POST", "/api/dealers", "brand", 403),
        ("POST", "/api/products", "dealer", 403),
        ("POST", "/api/products", "viewer", 403),
        ("POST", "/api/products", "admin", 403),
        ("POST", "/api/rooms", "dealer", 403),
        ("POST", "/api/rooms", "viewer", 403),
        ("GET", "/api/rooms", "viewer", 403),
        ("GET", "/api/products", "dealer", 403),
        ("GET", "/metrics", None, 401),
        ("GET", "/metrics", "brand", 403),
    ],
)
def test_roles_are_refused_where_they_do_not_belong(
    api: Api, method: str, path: str, who: str | None, status: int
) -> None:
    tokens = {
        None: None,
        "bad": "brand_nothing_nothing",
        "viewer": api.viewer()["token"],
        "brand": api.brand()["token"],
        "dealer": api.dealer()["token"],
        "admin": api.admin_token,
    }
    response = api.request(method, path, tokens[who], {"name": "x"} if method == "POST" else None)
    assert response.status_code == status
    assert response.json()["error"] in ("unauthorized", "forbidden")


def test_a_brand_cannot_touch_another_brands_room_or_dealers(api: Api) -> None:
    owner, other = api.brand(), api.brand()
    room = api.room(owner, live=False)
    assert api.post(f"/api/rooms/{room['id']}/live", other["token"]).status_code == 403
    assert api.get(f"/api/rooms/{room['id']}", other["token"]).status_code == 403
    dealer = api.dealer()
    path = f"/api/brands/{owner['id']}/dealers"
    assert api.post(path, other["token"], {"dealer_id": dealer["id"]}).status_code == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (b'"text"', 400),
        (b"[" * 40 + b"]" * 40, 422),
        (b'{"sku": 123, "title": "t", "price_cents": 1, "dealer_bps": 0}', 422),
        (b'{"sku": "a", "title": "t", "price_cents": "100", "dealer_bps": 0}', 422),
        (b'{"sku": "a", "title": "t", "price_cents": 1.5, "dealer_bps": 0}', 422),
        (b'{"sku": "a", "title": "t", "price_cents": true, "dealer_bps": 0}', 422),
        (b'{"sku": "a", "title": "t", "price_cents": 0, "dealer_bps": 0}', 422),
        (
            b'{"sku": "a", "title": "t", "price_cents": 99999999999999999999999, "dealer_bps": 0}',
            422,
        ),
        (b'{"sku": "a", "title": "t", "price_cents": 1, "dealer_bps": 10001}', 422),
        (
            b'{"sku": "a", "title": "t", "price_cents": 1, "dealer_bps": 9000, "upline_bps": 2000}',
            422,
        ),
        (b'{"sku": "' + b"s" * 65 + b'", "title": "t", "price_cents": 1, "dealer_bps": 0}', 422),
        (b'{"sku": "a", "title": "", "price_cents": 1, "dealer_bps": 0}', 422),
        (b'{"sku": "a", "title": "t", "price_cents": NaN, "dealer_bps": 0}', 400),
        (
            b'{"sku": "a", "title": "t", "price_cents": 1, "dealer_bps": 0, "pad": "'
            + b"x" * 70_000
            + b'"}',
            413,
        ),
    ],
)
def test_malformed_bodies_get_4xx_json(api: Api, body: bytes, status: int) -> None:
    brand = api.brand()
    response = api.http.post(
        "/api/products",
        content=body,
        headers={"Authorization": f"Bearer {brand['token']}", "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    payload = response.json()
    assert isinstance(payload["error"], str) and isinstance(payload["message"], str)


def test_unknown_ids_are_404(api: Api) -> None:
    brand = api.brand()
    dealer = api.dealer()
    for path in ("/api/rooms/nope", "/api/rooms/%00%ff", "/api/rooms/" + "x" * 300):
        response = api.get(path, brand["token"])
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert api.post("/api/rooms/nope/live", brand["token"]).status_code == 404
    assert api.post("/api/rooms/nope/mirrors", dealer["token"], {}).status_code == 404
    response = api.post(f"/api/brands/{brand['id']}/dealers", brand["token"], {"dealer_id": "no"})
    assert response.status_code == 404
    assert api.get("/api/no/such/route").json()["error"] == "not_found"


def test_duplicate_sku_is_409(api: Api) -> None:
    brand = api.brand()
    api.product(brand, sku="DUP")
    again = api.post("/api/products", brand["token"],
                     {"sku": "DUP", "title": "t", "price_cents": 1, "dealer_bps": 0})  # fmt: skip
    assert again.status_code == 409 and again.json()["error"] == "duplicate_sku"


def test_healthz_metrics_and_openapi(api: Api) -> None:
    assert api.get("/healthz").json()["status"] == "ok"
    metrics = api.get("/metrics", api.admin_token)
    assert metrics.status_code == 200 and "livecommerce_http_requests_total" in metrics.text
    schema = api.get("/openapi.json").json()
    assert "/api/brands" in schema["paths"] and "post" in schema["paths"]["/api/brands"]
    assert "BrandCreate" in schema["components"]["schemas"]


def test_paging_never_repeats_or_skips(api: Api) -> None:
    brand = api.brand()
    made = [api.product(brand, sku=f"P{i}")["id"] for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = api.ok(api.get("/api/products", brand["token"], params=params))
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made)
    assert api.get("/api/products", brand["token"], params={"limit": "0"}).status_code == 422
    assert api.get("/api/products", brand["token"], params={"cursor": "%%%"}).status_code == 422


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_embedded_redis_stops_with_the_server() -> None:
    with ServerProcess() as server:
        pid = int((server.data_dir / "redis" / "redis.pid").read_text())
        assert _pid_alive(pid)
        assert server.stop() == 0
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _pid_alive(pid)


def test_embedded_redis_dies_with_a_killed_server_and_restart_works() -> None:
    with ServerProcess() as server:
        pid = int((server.data_dir / "redis" / "redis.pid").read_text())
        server.stop(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _pid_alive(pid)
        server.start()
        assert httpx.get(f"{server.base_url}/healthz").json()["status"] == "ok"


def test_a_crashed_embedded_redis_is_restarted_with_its_data() -> None:
    with ServerProcess() as server:
        api = Api(server.base_url, server.admin_token)
        brand = api.brand()
        room = api.room(brand)
        time.sleep(1.5)  # AOF is fsynced every second
        pid = int((server.data_dir / "redis" / "redis.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=2).json()["redis"] == "ok":
                    new_pid = int((server.data_dir / "redis" / "redis.pid").read_text())
                    if new_pid != pid:
                        break
            except (httpx.HTTPError, ValueError, OSError):
                pass
            time.sleep(0.2)
        else:
            pytest.fail("the embedded Redis did not come back")
        assert api.ok(api.post(f"/api/rooms/{room['id']}/end", brand["token"]))["status"] == "ended"
