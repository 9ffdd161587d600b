"""The flash-sale spike as locust users: viewers, buyers and a host.

Run it through ``livecommerce loadtest spike`` (or ``python -m loadtests.spike``), which builds
the world through the API, writes the scenario file named by ``LIVECOMMERCE_SCENARIO`` and checks
the outcome. Every user holds a real connection: viewers a WebSocket in a dealer room, buyers a
WebSocket or an HTTP keep-alive connection, the host an HTTP connection to the brand room.

What goes to locust's statistics (request type ``WS`` unless said otherwise):
- ``connect``: WebSocket handshake time; ``closed <code>``: a connection the server closed;
- ``stock delay`` / ``card delay`` / ``chat delay``: receive time minus the event's server ``ts``;
- ``buy <result>`` (``WS`` or ``HTTP``): a buy's round trip, one name per result code (``ok``,
  ``duplicate``, ``sold_out``, ``limit_exceeded``, ``not_started``, ``ended``; anything else is a
  failure named by its error code);
- ``HTTP pay``, ``HTTP pin card``, ``HTTP unpin card``.

Each worker process appends JSON lines to ``results_dir/<pid>.jsonl`` — every buyer's want, every
order it was told about, every paid order, and its final tally — which the runner checks against
the server.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO
from urllib.parse import urlsplit

import gevent
import locust.runners
from geventhttpclient import HTTPClient
from locust import User, constant, task
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.wsclient import RoomSocket, SocketClosed, report

SCENARIO_ENV = "LIVECOMMERCE_SCENARIO"
BUY_TIMEOUT_S = 20.0
FINAL_RESULTS = {"ok", "duplicate", "sold_out", "limit_exceeded", "not_started", "ended"}


@dataclass
class Scenario:
    """What the runner set up: read from the JSON file named by ``LIVECOMMERCE_SCENARIO``."""

    base_url: str = "http://127.0.0.1:8000"
    brand_token: str = ""
    brand_room_id: str = ""
    rooms: list[str] = field(default_factory=list)
    product_ids: list[str] = field(default_factory=list)
    seckill_id: str = ""
    starts_at_ms: int = 0
    per_viewer_limit: int = 1
    qty: int = 1
    viewers: int = 0
    buyers: int = 0
    attempts: int = 8
    http_share: float = 0.5
    repeat_share: float = 0.1
    pay_share: float = 0.5
    over_limit_share: float = 0.2
    chat_every_s: float = 300.0
    like_every_s: float = 60.0
    card_every_s: float = 5.0
    sale_window_s: float = 30.0
    source_ips: list[str] = field(default_factory=list)
    run_dir: str = "."
    viewer_tokens: list[list[str]] = field(default_factory=list)
    buyer_tokens: list[list[str]] = field(default_factory=list)

    @classmethod
    def load(cls) -> Scenario:
        path = os.environ.get(SCENARIO_ENV)
        if not path:
            return cls()
        return cls(**json.loads(Path(path).read_text()))

    @property
    def ws_base(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}"

    def room_url(self, room_id: str, token: str, since: int | None = None) -> str:
        url = f"{self.ws_base}/ws/rooms/{room_id}?token={token}"
        return url if since is None else f"{url}&since={since}"


SCENARIO = Scenario.load()

# Locust drops a worker that misses 3 one-second heartbeats, which stops the whole test. A
# spike saturates the machine (thousands of users, and often the server on the same CPUs), so a
# worker may stall for seconds: allow 30. Set here because master and workers import this file.
locust.runners.HEARTBEAT_LIVENESS = 30


def claim(kind: str) -> int:
    """The next unused index of ``kind`` across every worker process (a locked counter file):
    locust spreads users over processes unevenly, so a fixed split could run out."""
    path = Path(SCENARIO.run_dir) / f"claims-{kind}"
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        index = int(handle.read() or 0)
        handle.seek(0)
        handle.truncate()
        handle.write(str(index + 1))
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_UN)
    return index


class ResultLog:
    """JSON lines for the runner's invariant checks, one file per worker process."""

    _handle: ClassVar[TextIO | None] = None
    _pid: ClassVar[int] = 0

    @classmethod
    def write(cls, **record: Any) -> None:
        if cls._handle is None or cls._pid != os.getpid():
            results = Path(SCENARIO.run_dir) / "results"
            results.mkdir(parents=True, exist_ok=True)
            cls._pid = os.getpid()
            cls._handle = (results / f"{cls._pid}.jsonl").open("a", buffering=1)
        record["t"] = time.time()
        cls._handle.write(json.dumps(record, separators=(",", ":")) + "\n")


def source_ip(environment: Environment) -> str | None:
    """This worker's 127.0.0.x source address, when the runner asked for them."""
    if not SCENARIO.source_ips:
        return None
    runner = environment.runner
    index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
    return SCENARIO.source_ips[max(index, 0) % len(SCENARIO.source_ips)]


def observe(environment: Environment, event: dict[str, Any]) -> None:
    """Report how late a broadcast event arrived, from its server timestamp."""
    kind = event.get("type")
    ts = event.get("ts")
    if kind in ("stock", "card", "chat") and isinstance(ts, int | float):
        report(environment, f"{kind} delay", time.time() * 1000 - ts)


def http_client(base_url: str) -> HTTPClient:
    parts = urlsplit(base_url)
    return HTTPClient(
        parts.hostname or "127.0.0.1",
        parts.port or (443 if parts.scheme == "https" else 80),
        ssl=parts.scheme == "https",
        concurrency=1,
        connection_timeout=BUY_TIMEOUT_S,
        network_timeout=BUY_TIMEOUT_S,
    )


def call(
    environment: Environment,
    client: HTTPClient,
    method: str,
    path: str,
    token: str,
    body: dict[str, Any] | None,
    name: str,
    expect: tuple[int, ...] = (200, 201),
) -> tuple[int, dict[str, Any]]:
    """An API call reported as request type ``HTTP``; returns (status, JSON body)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.perf_counter()
    try:
        raw = json.dumps(body or {}).encode()
        response = client.request(method, path, body=raw, headers=headers)
        payload = response.read()
        status = response.status_code
    except Exception as exc:
        report(environment, name, (time.perf_counter() - started) * 1000, exc, 0, "HTTP")
        return 0, {"error": "connection", "message": str(exc)}
    elapsed = (time.perf_counter() - started) * 1000
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        data = {"error": "bad_json", "message": payload[:200].decode("utf-8", "replace")}
    failure = None if status in expect else RuntimeError(f"{status} {data.get('error')}")
    report(environment, name, elapsed, failure, len(payload), "HTTP")
    return status, data if isinstance(data, dict) else {}


class Viewer(User):
    """Holds a WebSocket in a random dealer room, reads every event, now and then chats or
    likes; reconnects with ``since`` when the server drops it."""

    fixed_count = SCENARIO.viewers
    wait_time = constant(0)

    def on_start(self) -> None:
        self.index = claim("viewer")

    @task
    def watch(self) -> None:
        if self.index >= len(SCENARIO.viewer_tokens):
            gevent.sleep(3600)
            return
        viewer_id, token = SCENARIO.viewer_tokens[self.index]
        room_id = random.choice(SCENARIO.rooms)
        next_chat = time.monotonic() + random.expovariate(1 / SCENARIO.chat_every_s)
        next_like = time.monotonic() + random.expovariate(1 / SCENARIO.like_every_s)
        since: int | None = None
        while True:
            try:
                sock = RoomSocket.connect(
                    self.environment,
                    SCENARIO.room_url(room_id, token, since),
                    source_ip(self.environment),
                )
            except Exception:
                gevent.sleep(random.uniform(1, 3))
                continue
            try:
                while True:
                    now = time.monotonic()
                    if now >= next_chat:
                        sock.send({"type": "chat", "text": f"hi from {viewer_id[-6:]}"})
                        next_chat = now + random.expovariate(1 / SCENARIO.chat_every_s)
                    if now >= next_like:
                        sock.send({"type": "like", "count": random.randint(1, 5)})
                        next_like = now + random.expovariate(1 / SCENARIO.like_every_s)
                    event = sock.recv(min(next_chat, next_like) - now)
                    if event is not None:
                        observe(self.environment, event)
            except SocketClosed as closed:
                report(self.environment, f"closed {closed.code}", 0, closed)
                since = sock.last_seq
            finally:
                sock.close()
            gevent.sleep(random.uniform(0.5, 2))


@dataclass
class Tally:
    """One buyer's outcome, for the runner: units wanted and got, and attempts by result."""

    viewer_id: str
    room_id: str
    via: str
    want: int
    got: int = 0
    attempts: int = 0
    results: dict[str, int] = field(default_factory=dict)
    per_second: dict[int, int] = field(default_factory=dict)
    first_at: float = 0.0
    last_at: float = 0.0

    def count(self, result: str) -> None:
        now = time.time()
        self.attempts += 1
        self.results[result] = self.results.get(result, 0) + 1
        self.per_second[int(now)] = self.per_second.get(int(now), 0) + 1
        self.first_at = self.first_at or now
        self.last_at = now


class Buyer(User):
    """Waits for the seckill to open, then buys up to the per-viewer limit over a WebSocket or
    HTTP, each buy with a fresh request id; some repeat a request id (the answer must be the same
    order), some try past the limit, some pay for what they won. A sold-out answer is retried a
    few times, as people do."""

    fixed_count = SCENARIO.buyers
    wait_time = constant(0)

    def on_start(self) -> None:
        self.sock: RoomSocket | None = None
        self.http = http_client(SCENARIO.base_url)
        self.index = claim("buyer")
        self.shopped = False

    def on_stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.http.close()

    @task
    def shop(self) -> None:
        """Runs once per buyer: a task locust restarts after an error only idles, so a buyer's
        demand is counted once."""
        if self.shopped or self.index >= len(SCENARIO.buyer_tokens):
            self._idle_until(time.time() + 3600)
            return
        self.shopped = True
        viewer_id, self.token = SCENARIO.buyer_tokens[self.index]
        self.room_id = SCENARIO.rooms[self.index % len(SCENARIO.rooms)]
        self.via = "http" if random.random() < SCENARIO.http_share else "ws"
        if self.via == "ws":
            self.sock = self._connect()
        tally = Tally(viewer_id, self.room_id, self.via, want=SCENARIO.per_viewer_limit)
        ResultLog.write(kind="buyer", viewer_id=viewer_id, room_id=self.room_id, want=tally.want)
        # Some press the button a little early, as people do.
        self._idle_until(SCENARIO.starts_at_ms / 1000 + random.uniform(-0.5, 1.0))
        deadline = SCENARIO.starts_at_ms / 1000 + SCENARIO.sale_window_s
        try:
            self._buy_all(tally, deadline)
        except Exception as exc:
            report(self.environment, "buyer crashed", 0, exc)
        finally:
            ResultLog.write(kind="done", **tally.__dict__)
        self._idle_until(time.time() + 3600)

    def _buy_all(self, tally: Tally, deadline: float) -> None:
        while tally.got < tally.want and tally.attempts < SCENARIO.attempts:
            if time.time() > deadline:
                return
            qty = min(SCENARIO.qty, tally.want - tally.got)
            result, order = self._buy(qty, uuid.uuid4().hex)
            if result == "not_started":
                self._idle_until(time.time() + random.uniform(0.1, 0.3))
                continue
            tally.count(result)
            # A fresh request id answers ``duplicate`` only when a lost answer was repeated:
            # the order is this buyer's all the same.
            if result in ("ok", "duplicate") and order is not None:
                tally.got += qty
                self._won(order)
            elif result in ("limit_exceeded", "ended"):
                return
            elif result == "sold_out":
                self._idle_until(time.time() + random.uniform(0.2, 1.0))
            elif result not in FINAL_RESULTS:
                self._idle_until(time.time() + random.uniform(0.5, 1.5))
        if tally.got >= tally.want and random.random() < SCENARIO.over_limit_share:
            result, order = self._buy(SCENARIO.qty, uuid.uuid4().hex)
            tally.count(result)
            if result in ("ok", "duplicate") and order is not None:
                self._won(order)

    def _won(self, order: dict[str, Any]) -> None:
        ResultLog.write(
            kind="ok",
            order_id=order["id"],
            room_id=order.get("room_id"),
            viewer_id=order.get("viewer_id"),
            qty=order.get("qty"),
            amount_cents=order.get("amount_cents"),
        )
        if random.random() < SCENARIO.repeat_share:
            result, again = self._buy(order["qty"], order["request_id"])
            same = result == "duplicate" and again is not None and again["id"] == order["id"]
            ResultLog.write(kind="repeat", order_id=order["id"], result=result, same=same)
        if random.random() < SCENARIO.pay_share:
            path = f"/api/orders/{order['id']}/pay"
            status, _ = call(self.environment, self.http, "POST", path, self.token, {}, "pay")
            if status == 200:
                ResultLog.write(kind="paid", order_id=order["id"])

    def _buy(self, qty: int, request_id: str) -> tuple[str, dict[str, Any] | None]:
        """One buy until it has an answer: a lost connection repeats the same request id, which
        answers the order it may have reserved (``duplicate``) or evaluates the buy again."""
        for _ in range(3):
            if self.sock is None and self.via == "ws":
                self.sock = self._connect()
            if self.sock is not None:
                answer = self._buy_ws(qty, request_id)
            else:
                answer = self._buy_http(qty, request_id)
            if answer is not None:
                return answer
            gevent.sleep(random.uniform(0.5, 1.5))
        return "unanswered", None

    def _buy_http(self, qty: int, request_id: str) -> tuple[str, dict[str, Any] | None] | None:
        body = {"room_id": self.room_id, "qty": qty, "request_id": request_id}
        path = f"/api/seckills/{SCENARIO.seckill_id}/orders"
        started = time.perf_counter()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            response = self.http.request("POST", path, body=json.dumps(body), headers=headers)
            status, data = response.status_code, json.loads(response.read() or b"{}")
        except Exception as exc:
            report(
                self.environment,
                "buy error",
                (time.perf_counter() - started) * 1000,
                exc,
                0,
                "HTTP",
            )
            return None
        elapsed = (time.perf_counter() - started) * 1000
        if status == 201:
            result = "ok"
        elif status == 200:
            result = "duplicate"
        else:
            result = str(data.get("error", status))
        failure = None if result in FINAL_RESULTS else RuntimeError(f"{status} {result}")
        report(self.environment, f"buy {result}", elapsed, failure, 0, "HTTP")
        return result, data if status in (200, 201) else None

    def _buy_ws(self, qty: int, request_id: str) -> tuple[str, dict[str, Any] | None] | None:
        assert self.sock is not None
        message = {"type": "buy", "seckill_id": SCENARIO.seckill_id, "qty": qty}
        started = time.perf_counter()
        try:
            self.sock.send({**message, "request_id": request_id})
            while time.perf_counter() - started < BUY_TIMEOUT_S:
                event = self.sock.recv(BUY_TIMEOUT_S)
                if event is None:
                    continue
                observe(self.environment, event)
                if event.get("request_id") != request_id:
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                if event.get("type") == "order":
                    result = str(event.get("result"))
                    failure = None if result in FINAL_RESULTS else RuntimeError(result)
                    report(self.environment, f"buy {result}", elapsed, failure)
                    return result, event.get("order")
                if event.get("type") == "error":
                    result = str(event.get("error"))
                    report(self.environment, f"buy {result}", elapsed, RuntimeError(result))
                    return result, None
        except (SocketClosed, OSError) as exc:
            code = exc.code if isinstance(exc, SocketClosed) else 1006
            report(self.environment, f"closed {code}", 0, exc)
            self.sock.close()
            self.sock = self._connect()
            return None
        report(self.environment, "buy error", BUY_TIMEOUT_S * 1000, TimeoutError("no answer"))
        return None

    def _connect(self) -> RoomSocket | None:
        for _ in range(5):
            try:
                return RoomSocket.connect(
                    self.environment,
                    SCENARIO.room_url(self.room_id, self.token),
                    source_ip(self.environment),
                )
            except Exception:
                gevent.sleep(random.uniform(0.5, 1.5))
        return None

    def _idle_until(self, until: float) -> None:
        """Wait, reading (and timing) events if a WebSocket is open, so it keeps draining."""
        while (left := until - time.time()) > 0:
            if self.sock is None:
                gevent.sleep(min(left, 1.0))
                continue
            try:
                event = self.sock.recv(min(left, 1.0))
            except SocketClosed as closed:
                report(self.environment, f"closed {closed.code}", 0, closed)
                self.sock.close()
                self.sock = self._connect()
                continue
            if event is not None:
                observe(self.environment, event)


class Host(User):
    """The brand host: pins a card every few seconds and unpins the one before."""

    fixed_count = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        self.http = http_client(SCENARIO.base_url)

    def on_stop(self) -> None:
        self.http.close()

    @task
    def pin_cards(self) -> None:
        room = SCENARIO.brand_room_id
        pinned: str | None = None
        for product_id in self._products():
            path = f"/api/rooms/{room}/cards"
            body = {"product_id": product_id}
            call(self.environment, self.http, "POST", path, SCENARIO.brand_token, body, "pin card")
            if pinned is not None and pinned != product_id:
                call(self.environment, self.http, "DELETE", f"{path}/{pinned}",
                     SCENARIO.brand_token, None, "unpin card", (200, 204))  # fmt: skip
            pinned = product_id
            gevent.sleep(SCENARIO.card_every_s)

    def _products(self) -> Any:
        while SCENARIO.product_ids:
            yield from SCENARIO.product_ids
