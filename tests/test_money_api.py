"""Money through a real server: attribution and commission split, refunds, payouts and
clawback, Idempotency-Key, the payment webhook, statements, stats and customers."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from livecommerce.process import ServerProcess
from livecommerce.signatures import sign
from tests.conftest import Api

SECRET = "whsec_payments_test"
FEE_BPS = 250
PAY_TIMEOUT_S = 4


@pytest.fixture(scope="module")
def money_server(backends: dict[str, str]) -> Iterator[ServerProcess]:
    env = {
        "LIVECOMMERCE_DEV_PAYMENTS": "1",
        "LIVECOMMERCE_PLATFORM_FEE_BPS": str(FEE_BPS),
        "LIVECOMMERCE_FREEZE_DAYS": "0",
        "LIVECOMMERCE_PAY_TIMEOUT_S": str(PAY_TIMEOUT_S),
        "LIVECOMMERCE_PAYMENT_WEBHOOK_SECRET": SECRET,
        **backends,
    }
    with ServerProcess(env=env) as process:
        yield process


@pytest.fixture(scope="module")
def m(money_server: ServerProcess) -> Api:
    return Api(money_server.base_url, money_server.admin_token)


class World:
    """A brand room with three mirrors: dealer D (under upline U), dealer E (no upline)."""

    def __init__(self, api: Api, price: int = 1000, stock: int = 100, limit: int = 5) -> None:
        self.api = api
        self.brand = api.brand("Acme")
        self.product = api.product(self.brand, price_cents=price, dealer_bps=1000,
                                   upline_bps=200)  # fmt: skip
        self.room = api.room(self.brand)
        self.upline = api.dealer("Upline")
        self.d = api.dealer("D", upline_id=self.upline["id"])
        self.e = api.dealer("E")
        self.d_room = api.mirror(self.brand, self.room, self.d)
        self.e_room = api.mirror(self.brand, self.room, self.e)
        self.seckill = self.new_seckill(price, stock, limit)

    def new_seckill(self, price: int, stock: int, limit: int) -> dict[str, Any]:
        body = {"product_id": self.product["id"], "price_cents": price, "stock": stock,
                "per_viewer_limit": limit}  # fmt: skip
        path = f"/api/rooms/{self.room['id']}/seckills"
        return self.api.ok(self.api.post(path, self.brand["token"], body), 201)

    def buy(
        self, viewer: dict[str, Any], room: dict[str, Any], qty: int = 1, seckill: Any = None
    ) -> dict[str, Any]:
        seckill = seckill or self.seckill
        body = {"room_id": room["id"], "qty": qty, "request_id": uuid.uuid4().hex}
        path = f"/api/seckills/{seckill['id']}/orders"
        return self.api.ok(self.api.post(path, viewer["token"], body), 201)

    def pay(self, viewer: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
        return self.api.ok(self.api.post(f"/api/orders/{order['id']}/pay", viewer["token"]), 200)

    def bought(self, room: dict[str, Any], qty: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
        viewer = self.api.viewer("Buyer")
        return viewer, self.pay(viewer, self.buy(viewer, room, qty))

    def refund(self, order: dict[str, Any], body: Any = None, key: str | None = None) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        path = f"/api/orders/{order['id']}/refund"
        return self.api.post(path, self.brand["token"], body, headers=headers)


def entries(api: Api, token: str, party: str, order_id: str | None = None) -> list[dict]:
    found: list[dict] = []
    cursor = None
    while True:
        params = {"party": party, "limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = api.ok(api.get("/api/ledger", token, params=params), 200)
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return [e for e in found if order_id is None or e["order_id"] == order_id]


def order_entries(api: Api, order_id: str, parties: list[str]) -> dict[str, list[dict]]:
    return {p: entries(api, api.admin_token, p, order_id) for p in parties}


def balance(api: Api, party: str, token: str | None = None) -> dict[str, Any]:
    return api.ok(api.get(f"/api/balances/{party}", token or api.admin_token), 200)


def webhook(api: Api, body: dict[str, Any], t: int | None = None, secret: str = SECRET) -> Any:
    raw = json.dumps(body).encode()
    header = sign(secret, int(time.time()) if t is None else t, raw)
    return api.http.post("/api/payments/webhook", content=raw,
                         headers={"X-Livecommerce-Signature": header,
                                  "Content-Type": "application/json"})  # fmt: skip


def test_dealer_room_sale_pays_dealer_upline_platform_and_brand_the_rest(m: Api) -> None:
    w = World(m)
    _, order = w.bought(w.d_room, qty=2)
    assert order["status"] == "paid" and order["dealer_id"] == w.d["id"]
    brand, d, up = f"brand:{w.brand['id']}", f"dealer:{w.d['id']}", f"dealer:{w.upline['id']}"
    found = order_entries(m, order["id"], ["platform", brand, d, up])
    amounts = {party: [(e["role"], e["rate_bps"], e["amount_cents"]) for e in rows]
               for party, rows in found.items()}  # fmt: skip
    assert amounts == {
        "platform": [("platform", FEE_BPS, 50)],
        d: [("dealer", 1000, 200)],
        up: [("upline", 200, 40)],
        brand: [("brand", 10_000 - FEE_BPS - 1000 - 200, 1710)],
    }
    for rows in found.values():
        (entry,) = rows
        assert entry["kind"] == "sale" and entry["base_cents"] == 2000
        assert entry["room_id"] == w.d_room["id"] and entry["available_at"]


def test_dealer_without_upline_and_brand_room_sales(m: Api) -> None:
    w = World(m)
    _, in_e = w.bought(w.e_room)
    _, direct = w.bought(w.room)
    brand, e, up = f"brand:{w.brand['id']}", f"dealer:{w.e['id']}", f"dealer:{w.upline['id']}"
    parties = ["platform", brand, e, up]
    e_parts = {p: sum(x["amount_cents"] for x in rows)
               for p, rows in order_entries(m, in_e["id"], parties).items()}  # fmt: skip
    assert e_parts == {"platform": 25, e: 100, up: 0, brand: 875}
    direct_rows = order_entries(m, direct["id"], parties)
    assert [(x["role"], x["amount_cents"]) for x in direct_rows["platform"]] == [("platform", 25)]
    assert [(x["role"], x["rate_bps"], x["amount_cents"]) for x in direct_rows[brand]] == [
        ("brand", 10_000 - FEE_BPS, 975)
    ]
    assert direct_rows[e] == [] and direct_rows[up] == []


def test_partial_refunds_then_the_rest_reverse_exactly_what_was_booked(m: Api) -> None:
    w = World(m, price=333)
    _, order = w.bought(w.d_room, qty=3)
    first = m.ok(w.refund(order, {"qty": 1}), 200)
    assert first["status"] == "partially_refunded" and first["refunded_qty"] == 1
    assert sum(e["amount_cents"] for e in first["refund"]["entries"]) == -333
    seckill = m.ok(m.get(f"/api/seckills/{w.seckill['id']}"), 200)
    assert seckill["left"] == 100 - 3 + 1  # the refunded unit went back to the open seckill
    rest = m.ok(w.refund(order, {}), 200)
    assert rest["status"] == "refunded" and rest["refunded_qty"] == 3
    assert sum(e["amount_cents"] for e in rest["refund"]["entries"]) == -666
    parties = ["platform", f"brand:{w.brand['id']}", f"dealer:{w.d['id']}",
               f"dealer:{w.upline['id']}"]  # fmt: skip
    for rows in order_entries(m, order["id"], parties).values():
        assert sum(e["amount_cents"] for e in rows) == 0
        assert all(e["kind"] in ("sale", "reversal") for e in rows)
    assert w.refund(order, {}).status_code == 409  # nothing left to refund
    assert w.refund(order, {"qty": 1}).status_code == 422


def test_refund_refusals(m: Api) -> None:
    w = World(m)
    viewer = m.viewer()
    reserved = w.buy(viewer, w.d_room)
    assert w.refund(reserved).status_code == 409
    paid = w.pay(viewer, reserved)
    assert w.refund(paid, {"qty": 0}).status_code == 422
    assert w.refund(paid, {"qty": 2}).status_code == 422
    assert w.refund(paid, {"qty": "1"}).status_code == 422
    other = m.brand("Other")
    assert m.post(f"/api/orders/{paid['id']}/refund", other["token"]).status_code == 403
    assert m.post(f"/api/orders/{paid['id']}/refund", viewer["token"]).status_code == 403
    assert m.post("/api/orders/nope/refund", w.brand["token"]).status_code == 404


def test_payout_then_refund_leaves_a_negative_balance_carried_into_the_statement(m: Api) -> None:
    w = World(m)
    _, order = w.bought(w.d_room)
    party = f"dealer:{w.d['id']}"
    assert balance(m, party, w.d["token"]) == {
        "party": party, "balance_cents": 100, "available_cents": 100, "pending_cents": 0,
        "currency": "CNY"}  # fmt: skip
    payout = m.ok(m.post("/api/payouts", m.admin_token, {"party": party}), 201)
    assert payout["party"] == party and payout["amount_cents"] == 100 and payout["entry_id"]
    again = m.post("/api/payouts", m.admin_token, {"party": party})
    assert again.status_code == 409 and again.json()["error"] == "nothing_available"
    m.ok(w.refund(order), 200)
    assert balance(m, party)["balance_cents"] == -100
    rows = entries(m, w.d["token"], party)
    assert [(e["kind"], e["amount_cents"]) for e in rows] == [
        ("sale", 100), ("payout", -100), ("reversal", -100)]  # fmt: skip
    payout_row = rows[1]
    assert payout_row["order_id"] is None and payout_row["room_id"] is None
    response = m.get(f"/api/statements/{party}.csv", w.d["token"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert list(table[0]) == ["date", "kind", "role", "order_id", "room_id", "rate_bps",
                              "base_cents", "amount_cents", "balance_cents"]  # fmt: skip
    assert [r["kind"] for r in table] == ["opening", "sale", "payout", "reversal", "closing"]
    assert table[0]["balance_cents"] == "0" and table[-1]["balance_cents"] == "-100"
    today = time.strftime("%Y-%m-%d", time.gmtime())
    later = m.get(f"/api/statements/{party}.csv", w.d["token"],
                  params={"from": "2099-01-01", "to": "2099-01-31"})  # fmt: skip
    later_rows = list(csv.DictReader(io.StringIO(later.text)))
    assert [(r["kind"], r["balance_cents"]) for r in later_rows] == [
        ("opening", "-100"), ("closing", "-100")]  # fmt: skip
    same_day = m.get(f"/api/statements/{party}.csv", w.d["token"],
                     params={"from": today, "to": today})  # fmt: skip
    assert len(list(csv.DictReader(io.StringIO(same_day.text)))) == 5


def test_ledger_and_statements_are_for_their_owner_or_admin(m: Api) -> None:
    w = World(m)
    d, e = f"dealer:{w.d['id']}", f"dealer:{w.e['id']}"
    assert m.get("/api/ledger", w.e["token"], params={"party": d}).status_code == 403
    assert m.get(f"/api/statements/{d}.csv", w.e["token"]).status_code == 403
    assert m.get(f"/api/balances/{d}", w.brand["token"]).status_code == 403
    assert m.get("/api/ledger", w.d["token"], params={"party": "platform"}).status_code == 403
    assert m.get("/api/ledger", w.e["token"], params={"party": e}).status_code == 200
    assert m.get("/api/ledger", w.e["token"], params={"party": "x"}).status_code == 422
    assert m.get("/api/ledger", w.e["token"], params={"from": "2026-13-01"}).status_code == 422
    bad_range = {"from": "2026-02-01", "to": "2026-01-01"}
    assert m.get("/api/ledger", w.e["token"], params=bad_range).status_code == 422
    assert m.post("/api/payouts", w.brand["token"], {"party": d}).status_code == 403
    assert m.post("/api/payouts", m.admin_token, {"party": "dealer:nobody"}).status_code == 404
    assert m.post("/api/payouts", m.admin_token, {"party": 5}).status_code == 422


def test_idempotency_key_on_refunds_and_payouts(m: Api) -> None:
    w = World(m)
    _, order = w.bought(w.d_room, qty=4)
    first = m.ok(w.refund(order, {"qty": 1}, key="k-1"), 200)
    repeat = m.ok(w.refund(order, {"qty": 1}, key="k-1"), 200)
    assert repeat == first and repeat["refunded_qty"] == 1

    def concurrent_refund(_: int) -> httpx.Response:
        return w.refund(order, {"qty": 1}, key="k-2")

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(concurrent_refund, range(6)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    now = m.ok(m.get(f"/api/orders/{order['id']}", w.brand["token"]), 200)
    assert now["refunded_qty"] == 2
    party = f"dealer:{w.d['id']}"
    reversals = [e for e in entries(m, m.admin_token, party) if e["kind"] == "reversal"]
    assert len(reversals) == 2

    payouts = [m.post("/api/payouts", m.admin_token, {"party": party},
                      headers={"Idempotency-Key": "p-1"}) for _ in range(3)]  # fmt: skip
    assert {p.status_code for p in payouts} == {201} and len({p.text for p in payouts}) == 1
    assert [e["kind"] for e in entries(m, m.admin_token, party)].count("payout") == 1
    refused = [m.post("/api/payouts", m.admin_token, {"party": party},
                      headers={"Idempotency-Key": "p-2"}) for _ in range(2)]  # fmt: skip
    assert [r.status_code for r in refused] == [409, 409]


def test_dev_payment_rules(m: Api) -> None:
    w = World(m)
    viewer, other = m.viewer(), m.viewer()
    order = w.buy(viewer, w.e_room)
    assert m.post(f"/api/orders/{order['id']}/pay", other["token"]).status_code == 403
    assert m.post(f"/api/orders/{order['id']}/pay", w.brand["token"]).status_code == 403
    assert m.post(f"/api/orders/{order['id']}/pay").status_code == 401
    paid = w.pay(viewer, order)
    assert paid["status"] == "paid" and paid["paid_at"]
    assert w.pay(viewer, order) == paid
    cancelled = w.buy(viewer, w.e_room)
    m.ok(m.post(f"/api/orders/{cancelled['id']}/cancel", viewer["token"]), 200)
    answer = m.post(f"/api/orders/{cancelled['id']}/pay", viewer["token"])
    assert answer.status_code == 409 and answer.json()["error"] == "cancelled"
    late = w.buy(viewer, w.e_room)
    time.sleep(PAY_TIMEOUT_S + 0.5)
    answer = m.post(f"/api/orders/{late['id']}/pay", viewer["token"])
    assert answer.status_code == 409 and answer.json()["error"] == "expired"
    assert m.post("/api/orders/unknown/pay", viewer["token"]).status_code == 404


def test_dev_payment_call_does_not_exist_without_dev_payments(backends: dict[str, str]) -> None:
    with ServerProcess(env={**backends}) as plain:
        api = Api(plain.base_url, plain.admin_token)
        viewer = api.viewer()
        for token in (viewer["token"], api.admin_token, None):
            response = api.post("/api/orders/anything/pay", token)
            assert response.status_code == 404 and response.json()["error"] == "not_found"
        unsigned = api.http.post("/api/payments/webhook", content=b"{}")
        assert unsigned.status_code == 401 and "not configured" in unsigned.json()["message"]


def test_payment_webhook_signature_dedupe_and_amount(m: Api) -> None:
    w = World(m)
    viewer = m.viewer()
    order = w.buy(viewer, w.d_room, qty=2)
    body = {"event_id": uuid.uuid4().hex, "order_id": order["id"], "amount_cents": 2000,
            "status": "succeeded"}  # fmt: skip
    assert webhook(m, body, secret="wrong").status_code == 401
    assert webhook(m, body, t=int(time.time()) - 301).status_code == 401
    assert m.http.post("/api/payments/webhook", json=body).status_code == 401
    wrong = webhook(m, {**body, "event_id": uuid.uuid4().hex, "amount_cents": 1999})
    assert wrong.status_code == 409
    assert m.ok(m.get(f"/api/orders/{order['id']}", viewer["token"]), 200)["status"] == "reserved"
    first = m.ok(webhook(m, body), 200)
    assert first["result"] == "paid" and first["order"]["status"] == "paid"
    repeat = m.ok(webhook(m, body), 200)
    assert repeat["duplicate"] is True
    assert len(entries(m, m.admin_token, f"dealer:{w.d['id']}", order["id"])) == 1
    unknown = {**body, "event_id": uuid.uuid4().hex, "order_id": "nothing-here"}
    assert webhook(m, unknown).status_code == 404
    assert webhook(m, {**body, "event_id": 7}).status_code == 422


def test_late_payment_retakes_units_or_marks_refund_due(m: Api) -> None:
    w = World(m)
    one = w.new_seckill(500, 1, 1)
    early, late_buyer = m.viewer(), m.viewer()
    cancelled = w.buy(early, w.d_room, seckill=one)
    m.ok(m.post(f"/api/orders/{cancelled['id']}/cancel", early["token"]), 200)
    body = {"event_id": uuid.uuid4().hex, "order_id": cancelled["id"], "amount_cents": 500,
            "status": "succeeded"}  # fmt: skip
    retaken = m.ok(webhook(m, body), 200)
    assert retaken["result"] == "paid" and retaken["order"]["status"] == "paid"

    two = w.new_seckill(500, 1, 1)
    expired = w.buy(early, w.d_room, seckill=two)
    time.sleep(PAY_TIMEOUT_S + 0.5)
    w.pay(late_buyer, w.buy(late_buyer, w.d_room, seckill=two))  # the unit is sold again
    body = {**body, "event_id": uuid.uuid4().hex, "order_id": expired["id"]}
    due = m.ok(webhook(m, body), 200)
    assert due["result"] == "refund_due"
    listed = m.ok(m.get("/api/orders", w.brand["token"], params={"status": "refund_due"}), 200)
    assert [o["id"] for o in listed["items"]] == [expired["id"]]
    refunded = m.ok(w.refund(expired), 200)
    assert refunded["status"] == "refunded" and refunded["refund"]["entries"] == []


def test_room_stats_and_dealer_customers(m: Api) -> None:
    w = World(m)
    buyer, _ = w.bought(w.d_room, qty=2)
    _, in_e = w.bought(w.e_room)
    w.bought(w.room)
    m.ok(w.refund(in_e), 200)
    stats = m.ok(m.get(f"/api/rooms/{w.room['id']}/stats", w.brand["token"]), 200)
    per_room = {r["room_id"]: r for r in stats["rooms"]}
    assert per_room[w.d_room["id"]]["gmv_cents"] == 2000
    assert per_room[w.d_room["id"]]["units"] == 2
    assert per_room[w.d_room["id"]]["commission_cents"] == 240
    assert per_room[w.e_room["id"]]["gmv_cents"] == 0
    assert per_room[w.room["id"]]["commission_cents"] == 0
    assert stats["gmv_cents"] == 3000 and stats["orders"] == 3
    assert "viewers_now" in stats and "viewers_peak" in stats
    mine = m.ok(m.get(f"/api/rooms/{w.d_room['id']}/stats", w.d["token"]), 200)
    assert mine["gmv_cents"] == 2000 and mine["dealer_commission_cents"] == 200
    assert m.get(f"/api/rooms/{w.d_room['id']}/stats", w.e["token"]).status_code == 403
    assert m.get(f"/api/rooms/{w.room['id']}/stats", w.d["token"]).status_code == 403
    assert m.get("/api/rooms/nope/stats", w.d["token"]).status_code == 404

    customers = m.ok(m.get(f"/api/dealers/{w.d['id']}/customers", w.d["token"]), 200)
    assert [(c["viewer_id"], c["name"], c["orders"], c["units"], c["spent_cents"])
            for c in customers["items"]] == [(buyer["id"], "Buyer", 1, 2, 2000)]  # fmt: skip
    assert customers["next_cursor"] is None
    (customer,) = customers["items"]
    assert customer["first_at"] == customer["last_at"] and customer["first_at"].endswith("Z")
    assert m.get(f"/api/dealers/{w.d['id']}/customers", w.e["token"]).status_code == 403
    assert m.get(f"/api/dealers/{w.d['id']}/customers", w.brand["token"]).status_code == 403
    e_customers = m.ok(m.get(f"/api/dealers/{w.e['id']}/customers", w.e["token"]), 200)
    assert buyer["id"] not in [c["viewer_id"] for c in e_customers["items"]]


async def test_stats_count_the_viewers_of_each_room(m: Api, money_server: ServerProcess) -> None:
    w = World(m)
    viewer = m.viewer()
    url = f"{money_server.ws_url}/ws/rooms/{w.d_room['id']}?token={viewer['token']}"
    path = f"/api/rooms/{w.room['id']}/stats"

    def d_room_viewers() -> tuple[int, int]:
        stats = m.ok(m.get(path, w.brand["token"]), 200)
        row = next(r for r in stats["rooms"] if r["room_id"] == w.d_room["id"])
        return row["viewers_now"], row["viewers_peak"]

    async with connect(url):
        deadline = time.monotonic() + 10
        while d_room_viewers()[0] != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert d_room_viewers() == (1, 1)
    deadline = time.monotonic() + 10
    while d_room_viewers()[0] != 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert d_room_viewers() == (0, 1)


def test_customers_are_paged_without_repeats(m: Api) -> None:
    w = World(m)
    buyers = {w.bought(w.d_room)[0]["id"] for _ in range(3)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = m.ok(m.get(f"/api/dealers/{w.d['id']}/customers", w.d["token"], params=params))
        seen += [c["viewer_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(buyers)
    assert m.get(f"/api/dealers/{w.d['id']}/customers", w.d["token"],
                 params={"cursor": "!!"}).status_code == 422  # fmt: skip


def test_concurrent_deliveries_of_one_payment_event_pay_once(m: Api) -> None:
    w = World(m)
    order = w.buy(m.viewer(), w.d_room, qty=3)
    body = {"event_id": uuid.uuid4().hex, "order_id": order["id"], "amount_cents": 3000,
            "status": "succeeded"}  # fmt: skip
    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(lambda _: webhook(m, body), range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert sum(1 for a in answers if not a.json().get("duplicate")) == 1
    rows = entries(m, m.admin_token, f"dealer:{w.d['id']}", order["id"])
    assert [(e["kind"], e["amount_cents"]) for e in rows] == [("sale", 300)]
