"""Browser-facing defences: CORS from the same allow-list as WebSocket origins, security headers
on every answer, and tokens that never reach the server's log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.wsclient import RoomClient

ALLOWED = "https://shop.example"


@pytest.fixture(scope="module")
def guarded() -> Iterator[ServerProcess]:
    with ServerProcess(env={"LIVECOMMERCE_ALLOWED_ORIGINS": ALLOWED}) as server:
        yield server


def test_cors_follows_the_allow_list(guarded: ServerProcess) -> None:
    api = Api(guarded.base_url, guarded.admin_token)
    preflight = {"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}  # fmt: skip
    ok = api.http.options("/api/viewers", headers=preflight)
    assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in ok.headers["access-control-allow-headers"]
    foreign = api.http.options(
        "/api/viewers", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and foreign.json()["error"] == "forbidden"
    simple = api.http.post("/api/viewers", json={}, headers={"Origin": ALLOWED})
    assert simple.status_code == 201 and simple.headers["access-control-allow-origin"] == ALLOWED
    other = api.http.post("/api/viewers", json={}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_dealer_sites_join_the_cors_list(guarded: ServerProcess) -> None:
    api = Api(guarded.base_url, guarded.admin_token)
    dealer = api.dealer()
    site = "https://dealer-shop.example"
    body = {"allowed_sites": [site]}
    api.ok(api.put(f"/api/dealers/{dealer['id']}/profile", dealer["token"], body), 200)
    preflight = {"Origin": site, "Access-Control-Request-Method": "GET"}
    assert api.http.options("/api/rooms", headers=preflight).status_code == 204


def test_every_answer_carries_security_headers(guarded: ServerProcess) -> None:
    api = Api(guarded.base_url, guarded.admin_token)
    for response in (
        api.get("/healthz"),
        api.get("/api/rooms/nope"),
        api.post("/api/viewers", body={}),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"


async def test_tokens_never_reach_the_log(guarded: ServerProcess) -> None:
    api = Api(guarded.base_url, guarded.admin_token)
    brand = api.brand()
    room = api.room(brand)
    viewer = api.viewer()
    url = f"{guarded.ws_url}/ws/rooms/{room['id']}?token={viewer['token']}"
    async with RoomClient(url) as client:
        await client.next("snapshot")
    async with RoomClient(f"{guarded.ws_url}/ws/rooms/{room['id']}?token=viewer_x_wrong") as bad:
        assert await bad.closed_with() == 4401
    log = guarded.log_tail(5_000_000)
    secret = viewer["token"].split("_", 2)[2]
    assert secret not in log and brand["token"] not in log
    assert "viewer_x_wrong" not in log


def test_an_admin_token_set_by_the_operator_is_never_printed() -> None:
    secret = "admin-token-set-by-the-operator"
    with ServerProcess(env={"LIVECOMMERCE_ADMIN_TOKEN": secret}) as server:
        assert Api(server.base_url, secret).get("/metrics", secret).status_code == 200
        assert secret not in server.log_tail(1_000_000)
