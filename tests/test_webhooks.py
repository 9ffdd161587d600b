"""Outgoing webhooks through a real server (two worker processes) to a real local HTTP
receiver: signed, retried with backoff until a 2xx, each event accepted exactly once, and
still delivered after the server restarts."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from livecommerce.process import ServerProcess
from livecommerce.signatures import SignatureError, verify
from tests.conftest import Api


class Receiver:
    """A brand's endpoint: refuses each event's first ``failures`` deliveries with a 500, and
    every delivery while ``down``; records what it saw."""

    def __init__(self, failures: int = 2) -> None:
        self.failures = failures
        self.down = False
        self.secret = ""
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.accepted: list[dict[str, Any]] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.handle(raw, self.headers.get("X-Livecommerce-Signature"))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"

    def handle(self, raw: bytes, signature: str | None) -> int:
        with self.lock:
            try:
                verify(self.secret, signature, raw, time.time())
            except SignatureError:
                self.bad_signatures += 1
                return 401
            event = json.loads(raw)
            self.attempts[event["event_id"]] += 1
            if self.down or self.attempts[event["event_id"]] <= self.failures:
                return 500
            self.accepted.append(event)
            return 204

    def wait_for(self, test: Callable[[], bool], timeout_s: float = 40.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if test():
                    return
            time.sleep(0.1)
        with self.lock:
            raise AssertionError(f"receiver saw {self.attempts}, accepted {self.accepted}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.httpd.shutdown()
    receiver.httpd.server_close()


def shop(api: Api, receiver: Receiver) -> dict[str, Any]:
    brand = api.brand("Hooked")
    path = f"/api/brands/{brand['id']}/webhook"
    first = api.ok(api.put(path, brand["token"], {"url": receiver.url}), 200)
    second = api.ok(api.put(path, brand["token"], {"url": receiver.url}), 200)
    assert first["url"] == second["url"] == receiver.url
    assert first["secret"] != second["secret"]  # a repeated PUT issues a new secret
    receiver.secret = second["secret"]
    product = api.product(brand, price_cents=700)
    room = api.room(brand)
    body = {"product_id": product["id"], "price_cents": 700, "stock": 50, "per_viewer_limit": 5}
    seckill = api.ok(api.post(f"/api/rooms/{room['id']}/seckills", brand["token"], body), 201)
    return {"brand": brand, "room": room, "seckill": seckill}


def buy(api: Api, world: dict[str, Any], viewer: dict[str, Any], qty: int = 1) -> dict:
    body = {"room_id": world["room"]["id"], "qty": qty, "request_id": uuid.uuid4().hex}
    path = f"/api/seckills/{world['seckill']['id']}/orders"
    return api.ok(api.post(path, viewer["token"], body), 201)


def test_webhook_url_is_the_brands_own_and_must_be_http(api: Api) -> None:
    brand, other = api.brand(), api.brand()
    path = f"/api/brands/{brand['id']}/webhook"
    assert api.put(path, other["token"], {"url": "https://x.test/h"}).status_code == 403
    assert api.put(path, brand["token"], {"url": "ftp://x.test/h"}).status_code == 422
    assert api.put(path, brand["token"], {"url": 5}).status_code == 422
    assert (
        api.put("/api/brands/nobody/webhook", brand["token"], {"url": "https://x.test"}).status_code
        == 404
    )


def test_events_are_signed_retried_until_accepted_and_delivered_once(
    receiver: Receiver, backends: dict[str, str]
) -> None:
    env = {"LIVECOMMERCE_DEV_PAYMENTS": "1", "LIVECOMMERCE_PAY_TIMEOUT_S": "2", **backends}
    with ServerProcess(env=env, workers=2) as server:
        api = Api(server.base_url, server.admin_token)
        world = shop(api, receiver)
        viewer = api.viewer()
        paid = buy(api, world, viewer, qty=2)
        api.ok(api.post(f"/api/orders/{paid['id']}/pay", viewer["token"]), 200)
        refund_path = f"/api/orders/{paid['id']}/refund"
        api.ok(api.post(refund_path, world["brand"]["token"], {"qty": 1}), 200)
        unpaid = buy(api, world, viewer)  # left to expire
        receiver.wait_for(lambda: len(receiver.accepted) >= 3)
        time.sleep(3)  # any duplicate delivery would show up by now
        with receiver.lock:
            accepted = list(receiver.accepted)
            attempts = dict(receiver.attempts)
            bad = receiver.bad_signatures
    assert bad == 0
    ids = [event["event_id"] for event in accepted]
    assert len(ids) == len(set(ids)) == 3
    assert all(attempts[event_id] == 3 for event_id in ids)  # failed twice, then accepted once
    by_type = {event["type"]: event for event in accepted}
    assert set(by_type) == {"order.paid", "order.refunded", "order.expired"}
    assert by_type["order.paid"]["order"]["id"] == paid["id"]
    assert by_type["order.paid"]["order"]["status"] == "paid"
    assert by_type["order.refunded"]["order"]["refunded_qty"] == 1
    assert by_type["order.expired"]["order"]["id"] == unpaid["id"]
    for event in accepted:
        assert set(event) == {"event_id", "type", "created_at", "order"}


def test_undelivered_events_survive_a_restart(receiver: Receiver, backends: dict[str, str]) -> None:
    receiver.failures = 0
    receiver.down = True
    server = ServerProcess(env={"LIVECOMMERCE_DEV_PAYMENTS": "1", **backends})
    try:
        server.start()
        api = Api(server.base_url, server.admin_token)
        world = shop(api, receiver)
        viewer = api.viewer()
        order = buy(api, world, viewer)
        api.ok(api.post(f"/api/orders/{order['id']}/pay", viewer["token"]), 200)
        receiver.wait_for(lambda: sum(receiver.attempts.values()) >= 1)
        server.stop()
        receiver.down = False
        server.start()
        receiver.wait_for(lambda: len(receiver.accepted) == 1)
        time.sleep(2)
        with receiver.lock:
            assert len(receiver.accepted) == 1
            assert receiver.accepted[0]["order"]["id"] == order["id"]
    finally:
        server.close()
