"""Every HTTP route and WebSocket action, called with every role, checked against ONE table of
who may do what (design.md §5). "allow" means the answer is neither 401 nor 403; "deny" means it
is 401 (no or bad token) or 403 (a token of the wrong role or another owner's)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from livecommerce.process import ServerProcess
from tests.conftest import Api
from tests.wsclient import RoomClient

ROLES = ("none", "bad", "viewer", "other_viewer", "dealer", "other_dealer", "brand",
         "other_brand", "admin")  # fmt: skip


@dataclass
class World:
    """Brand A with a live room mirrored by dealer A (upline: other dealer), a seckill, and an
    order by viewer A in dealer A's mirror; brand B, dealer B and viewer B are strangers."""

    api: Api
    brand: dict[str, Any] = field(init=False)
    other_brand: dict[str, Any] = field(init=False)
    dealer: dict[str, Any] = field(init=False)
    other_dealer: dict[str, Any] = field(init=False)
    viewer: dict[str, Any] = field(init=False)
    other_viewer: dict[str, Any] = field(init=False)
    product: dict[str, Any] = field(init=False)
    room: dict[str, Any] = field(init=False)
    mirror: dict[str, Any] = field(init=False)
    seckill: dict[str, Any] = field(init=False)
    order: dict[str, Any] = field(init=False)
    paid_order: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        api = self.api
        self.brand, self.other_brand = api.brand("A"), api.brand("B")
        self.other_dealer = api.dealer("Other")
        self.dealer = api.dealer("Dealer", upline_id=self.other_dealer["id"])
        self.viewer, self.other_viewer = api.viewer("v"), api.viewer("w")
        self.product = api.product(self.brand, sku=f"S-{uuid.uuid4().hex[:8]}")
        self.room = api.room(self.brand)
        self.mirror = api.mirror(self.brand, self.room, self.dealer)
        self.api.authorize(self.brand, self.other_dealer)
        body = {"product_id": self.product["id"], "price_cents": 500, "stock": 50,
                "per_viewer_limit": 5}  # fmt: skip
        self.seckill = api.ok(
            api.post(f"/api/rooms/{self.room['id']}/seckills", self.brand["token"], body), 201
        )
        self.order = self.buy()
        self.paid_order = self.buy()
        api.ok(api.post(f"/api/orders/{self.paid_order['id']}/pay", self.viewer["token"]), 200)

    def buy(self) -> dict[str, Any]:
        body = {"room_id": self.mirror["id"], "qty": 1, "request_id": uuid.uuid4().hex}
        path = f"/api/seckills/{self.seckill['id']}/orders"
        return dict(self.api.ok(self.api.post(path, self.viewer["token"], body), 201))

    def token(self, role: str) -> str | None:
        if role == "none":
            return None
        if role == "bad":
            return "viewer_nobody_secret"
        if role == "admin":
            return self.api.admin_token
        return str(getattr(self, role)["token"])


Call = Callable[[World], tuple[str, str, Any]]


@dataclass(frozen=True)
class Rule:
    name: str
    call: Call
    allowed: frozenset[str]
    destructive: bool = False


def rule(name: str, call: Call, allowed: str, destructive: bool = False) -> Rule:
    return Rule(name, call, frozenset(allowed.split()), destructive)


ANYONE = " ".join(ROLES)

TABLE = [
    rule("create brand", lambda w: ("POST", "/api/brands", {"name": "n"}), "admin"),
    rule("create dealer", lambda w: ("POST", "/api/dealers", {"name": "n"}), "admin"),
    rule("create viewer", lambda w: ("POST", "/api/viewers", {}), ANYONE),
    rule("authorize dealer", lambda w: ("POST", f"/api/brands/{w.brand['id']}/dealers",
                                        {"dealer_id": w.other_dealer["id"]}), "brand"),
    rule("revoke dealer", lambda w: ("DELETE", f"/api/brands/{w.brand['id']}/dealers/"
                                     f"{w.dealer['id']}", None), "brand", destructive=True),
    rule("create product", lambda w: ("POST", "/api/products", {
        "sku": uuid.uuid4().hex[:10], "title": "t", "price_cents": 100, "dealer_bps": 100}),
        "brand other_brand"),
    rule("list products", lambda w: ("GET", "/api/products", None), "brand other_brand"),
    rule("create room", lambda w: ("POST", "/api/rooms", {"title": "t"}), "brand other_brand"),
    rule("list rooms", lambda w: ("GET", "/api/rooms", None),
         "brand other_brand dealer other_dealer admin"),
    rule("read brand room", lambda w: ("GET", f"/api/rooms/{w.room['id']}", None),
         "brand dealer other_dealer admin"),
    rule("read mirror", lambda w: ("GET", f"/api/rooms/{w.mirror['id']}", None),
         "brand dealer admin"),
    rule("go live", lambda w: ("POST", f"/api/rooms/{w.room['id']}/live", None), "brand"),
    rule("end room", lambda w: ("POST", f"/api/rooms/{w.room['id']}/end", None), "brand",
         destructive=True),
    rule("mirror", lambda w: ("POST", f"/api/rooms/{w.room['id']}/mirrors", {}),
         "dealer other_dealer"),
    rule("pin card", lambda w: ("POST", f"/api/rooms/{w.room['id']}/cards",
                                {"product_id": w.product["id"]}), "brand"),
    rule("unpin card", lambda w: ("DELETE", f"/api/rooms/{w.room['id']}/cards/"
                                  f"{w.product['id']}", None), "brand", destructive=True),
    rule("create seckill", lambda w: ("POST", f"/api/rooms/{w.room['id']}/seckills", {
        "product_id": w.product["id"], "price_cents": 100, "stock": 5, "per_viewer_limit": 1}),
        "brand"),
    rule("read seckill", lambda w: ("GET", f"/api/seckills/{w.seckill['id']}", None), ANYONE),
    rule("end seckill", lambda w: ("POST", f"/api/seckills/{w.seckill['id']}/end", None),
         "brand", destructive=True),
    rule("buy", lambda w: ("POST", f"/api/seckills/{w.seckill['id']}/orders", {
        "room_id": w.mirror["id"], "qty": 1, "request_id": uuid.uuid4().hex}),
        "viewer other_viewer"),
    rule("read order", lambda w: ("GET", f"/api/orders/{w.order['id']}", None),
         "viewer brand dealer admin"),
    rule("list orders", lambda w: ("GET", "/api/orders", None),
         "viewer other_viewer brand other_brand dealer other_dealer admin"),
    rule("cancel order", lambda w: ("POST", f"/api/orders/{w.order['id']}/cancel", None),
         "viewer", destructive=True),
    rule("pay order", lambda w: ("POST", f"/api/orders/{w.order['id']}/pay", None), "viewer",
         destructive=True),
    rule("refund order", lambda w: ("POST", f"/api/orders/{w.paid_order['id']}/refund", {}),
         "brand", destructive=True),
    rule("dealer ledger", lambda w: ("GET", f"/api/ledger?party=dealer:{w.dealer['id']}", None),
         "dealer admin"),
    rule("brand ledger", lambda w: ("GET", f"/api/ledger?party=brand:{w.brand['id']}", None),
         "brand admin"),
    rule("platform ledger", lambda w: ("GET", "/api/ledger?party=platform", None), "admin"),
    rule("dealer statement", lambda w: ("GET", f"/api/statements/dealer:{w.dealer['id']}.csv",
                                        None), "dealer admin"),
    rule("payout", lambda w: ("POST", "/api/payouts", {"party": f"dealer:{w.dealer['id']}"}),
         "admin"),
    rule("dealer profile", lambda w: ("PUT", f"/api/dealers/{w.dealer['id']}/profile",
                                      {"color": "#112233"}), "dealer"),
    rule("hide chat", lambda w: ("POST", f"/api/rooms/{w.mirror['id']}/chat/nochat/hide", None),
         "dealer brand"),
    rule("mute", lambda w: ("POST", f"/api/rooms/{w.mirror['id']}/mutes",
                            {"viewer_id": w.other_viewer["id"]}), "dealer brand"),
    rule("rotate brand token", lambda w: ("POST", f"/api/brands/{w.brand['id']}/token", None),
         "brand admin", destructive=True),
    rule("rotate dealer token", lambda w: ("POST", f"/api/dealers/{w.dealer['id']}/token", None),
         "dealer admin", destructive=True),
    rule("brand webhook", lambda w: ("PUT", f"/api/brands/{w.brand['id']}/webhook",
                                     {"url": "http://127.0.0.1:9/hook"}), "brand"),
    rule("customers", lambda w: ("GET", f"/api/dealers/{w.dealer['id']}/customers", None),
         "dealer"),
    rule("brand room stats", lambda w: ("GET", f"/api/rooms/{w.room['id']}/stats", None),
         "brand admin"),
    rule("mirror stats", lambda w: ("GET", f"/api/rooms/{w.mirror['id']}/stats", None),
         "dealer brand admin"),
    rule("read product", lambda w: ("GET", f"/api/products/{w.product['id']}", None), "brand"),
    rule("public product", lambda w: ("GET", f"/api/products/{w.product['id']}/public", None),
         ANYONE),
    rule("public room", lambda w: ("GET", f"/api/rooms/{w.mirror['id']}/public", None), ANYONE),
    rule("read dealer", lambda w: ("GET", f"/api/dealers/{w.dealer['id']}", None),
         "dealer brand other_brand admin"),
    rule("dealer balance", lambda w: ("GET", f"/api/balances/dealer:{w.dealer['id']}", None),
         "dealer admin"),
    rule("brand balance", lambda w: ("GET", f"/api/balances/brand:{w.brand['id']}", None),
         "brand admin"),
    rule("metrics", lambda w: ("GET", "/metrics", None), "admin"),
    rule("healthz", lambda w: ("GET", "/healthz", None), ANYONE),
    rule("openapi", lambda w: ("GET", "/openapi.json", None), ANYONE),
]  # fmt: skip


@pytest.fixture(scope="module")
def shared_world(api: Api) -> World:
    return World(api)


@pytest.mark.parametrize(
    ("entry", "role"),
    list(itertools.product(TABLE, ROLES)),
    ids=[f"{r.name}-{role}" for r, role in itertools.product(TABLE, ROLES)],
)
def test_who_may_do_what(api: Api, shared_world: World, entry: Rule, role: str) -> None:
    world = World(api) if entry.destructive else shared_world
    method, path, body = entry.call(world)
    response = api.request(method, path, world.token(role), body)
    assert response.status_code < 500, response.text
    if role in entry.allowed:
        assert response.status_code not in (401, 403), (role, response.status_code, response.text)
    else:
        expected = (401,) if role in ("none", "bad") else (403, 404)
        assert response.status_code in expected, (role, response.status_code, response.text)
        assert response.json()["error"] in ("unauthorized", "forbidden", "not_found")


# WebSocket: who may join a dealer's mirror, and who may chat and buy once in -----------------

WS_JOIN = {"none": 4401, "bad": 4401, "viewer": None, "other_viewer": None, "dealer": None,
           "other_dealer": 4403, "brand": None, "other_brand": 4403, "admin": None}  # fmt: skip
WS_ACTS = frozenset({"viewer", "other_viewer"})  # chat and buy need a viewer token


@pytest.mark.parametrize("role", ROLES)
async def test_who_may_join_a_mirror_and_act_in_it(
    server: ServerProcess, api: Api, role: str
) -> None:
    world = World(api)  # the HTTP table mutes viewers in the shared world
    token = world.token(role)
    query = f"?token={token}" if token else ""
    async with RoomClient(f"{server.ws_url}/ws/rooms/{world.mirror['id']}{query}") as client:
        refused = WS_JOIN[role]
        if refused is not None:
            assert await client.closed_with() == refused
            return
        await client.next("snapshot")
        await client.send({"type": "chat", "text": "hello"})
        buy = {
            "type": "buy",
            "seckill_id": world.seckill["id"],
            "qty": 1,
            "request_id": uuid.uuid4().hex,
        }
        await client.send(buy)
        if role in WS_ACTS:
            chat = await client.next("chat", where=lambda e: e["text"] == "hello")
            assert chat["room_id"] == world.mirror["id"]
            answer = await client.next(
                "order", where=lambda e: e["request_id"] == buy["request_id"]
            )
            assert answer["result"] == "ok"
        else:
            first = await client.next("error")
            second = await client.next("error")
            assert {first["error"], second["error"]} == {"forbidden"}
            assert (
                second.get("request_id") == buy["request_id"]
                or first.get("request_id") == buy["request_id"]
            )
