"""Fan-out benchmark: our hub against a naive ``await websocket.send_text`` loop and
``websockets.broadcast``, in one run, on the same machine.

Thousands of real sockets are held by client processes (raw asyncio protocols: a handshake and a
frame parser, nothing else, so the load generator takes as little CPU as it can from the server
it shares the machine with). For each server it measures:

- RSS per idle connection: server RSS after everyone connected minus before, per connection;
- latency: events fired one at a time (every ``--gap-ms``), delay from the event's ``ts``
  (stamped when the host's call published it) to receipt, p50 / p99;
- throughput: ``--burst`` events fired back to back, deliveries per second from the first call
  to the last receipt.

``python loadtests/bench_fanout.py --quick`` for a small run; ``main()`` is what
``livecommerce bench`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import platform
import re
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

TS = re.compile(rb'"ts":(\d+)')

# ----------------------------------------------------------------------------------------------
# client side: raw WebSocket clients in separate processes


class BenchClient(asyncio.Protocol):
    def __init__(self, host: str, path: str, stats: ClientStats, ready_type: bytes) -> None:
        self.host = host
        self.path = path
        self.stats = stats
        self.ready_type = ready_type
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                self._fail(head[:80].decode(errors="replace"))
                return
            self.upgraded = True
            self.buffer = rest
            if not self.ready_type and not self.ready.done():
                self.ready.set_result(True)
        self._frames()

    def _frames(self) -> None:
        buffer = self.buffer
        offset = 0
        while len(buffer) - offset >= 2:
            b0, b1 = buffer[offset], buffer[offset + 1]
            length = b1 & 0x7F
            start = offset + 2
            if length == 126:
                if len(buffer) - offset < 4:
                    break
                length = struct.unpack_from("!H", buffer, start)[0]
                start += 2
            elif length == 127:
                if len(buffer) - offset < 10:
                    break
                length = struct.unpack_from("!Q", buffer, start)[0]
                start += 8
            if len(buffer) < start + length:
                break
            payload = buffer[start : start + length]
            offset = start + length
            opcode = b0 & 0x0F
            if opcode in (1, 2):
                self._message(payload)
            elif opcode == 9 and self.transport is not None:  # ping: pong, masked with 0000
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode == 8:
                self.stats.closed += 1
        self.buffer = buffer[offset:]

    def _message(self, payload: bytes) -> None:
        head = payload[:40]
        if b'"type":"bench"' in head or b'"type":"card"' in head:
            found = TS.search(payload, 0, 120)
            if found:
                self.stats.record(time.time() * 1000 - int(found.group(1)))
        elif self.ready_type and self.ready_type in head and not self.ready.done():
            self.ready.set_result(True)

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(why))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail("connection lost")


@dataclass
class ClientStats:
    received: int = 0
    closed: int = 0
    delays: list[float] = field(default_factory=list)
    last_at: float = 0.0

    def record(self, delay_ms: float) -> None:
        self.received += 1
        self.last_at = time.time()
        if self.received % 7 == 0 or len(self.delays) < 2000:
            self.delays.append(delay_ms)


async def _client_main(
    host: str, port: int, paths: list[str], ready_type: str, control: Connection
) -> None:
    loop = asyncio.get_running_loop()
    stats = ClientStats()
    clients: list[BenchClient] = []
    gate = asyncio.Semaphore(100)
    failures = 0

    async def open_one(path: str) -> None:
        nonlocal failures
        async with gate:
            for _attempt in range(5):
                try:
                    _, client = await loop.create_connection(
                        lambda: BenchClient(f"{host}:{port}", path, stats, ready_type.encode()),
                        host,
                        port,
                    )
                    await asyncio.wait_for(client.ready, 30)
                    clients.append(client)
                    return
                except (OSError, RuntimeError, TimeoutError):
                    await asyncio.sleep(0.2)
            failures += 1

    await asyncio.gather(*(open_one(p) for p in paths))
    control.send(("ready", len(clients), failures))
    while True:
        command = await loop.run_in_executor(None, control.recv)
        if command == "reset":
            stats.received, stats.delays, stats.last_at = 0, [], 0.0
            control.send("ok")
        elif command == "report":
            control.send((stats.received, stats.delays, stats.last_at, stats.closed))
        elif command == "quit":
            for client in clients:
                if client.transport is not None:
                    client.transport.abort()
            control.send("bye")
            return


def client_process(
    host: str, port: int, paths: list[str], ready_type: str, control: Connection
) -> None:
    asyncio.run(_client_main(host, port, paths, ready_type, control))


class ClientFleet:
    """Client processes holding ``len(paths)`` sockets between them."""

    def __init__(self, port: int, paths: list[str], ready_type: str, processes: int) -> None:
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        context = mp.get_context("spawn")
        for index in range(processes):
            mine, theirs = context.Pipe()
            share = paths[index::processes]
            proc = context.Process(
                target=client_process, args=("127.0.0.1", port, share, ready_type, theirs)
            )
            proc.start()
            self.pipes.append(mine)
            self.procs.append(proc)

    def wait_ready(self) -> tuple[int, int]:
        connected = failed = 0
        for pipe in self.pipes:
            _, ok, bad = pipe.recv()
            connected += ok
            failed += bad
        return connected, failed

    def call(self, command: str) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def close(self) -> None:
        try:
            self.call("quit")
        finally:
            for proc in self.procs:
                proc.join(10)
                if proc.is_alive():
                    proc.kill()


# ----------------------------------------------------------------------------------------------
# baseline servers: a naive Starlette loop and websockets.broadcast


def payload(seq: int) -> str:
    product = {"id": "p1", "sku": "SKU-1", "title": "Thing", "price_cents": 1000, "image_url": None}
    return json.dumps(
        {"type": "bench", "seq": seq, "ts": time.time_ns() // 1_000_000, "product": product},
        separators=(",", ":"),
    )


def run_naive(port: int) -> None:
    """A Starlette app that fans out with ``await websocket.send_text`` per connection."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from livecommerce.server import uvicorn_options
    from livecommerce.settings import Settings

    sockets: set[WebSocket] = set()
    seq = 0

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            sockets.discard(websocket)

    async def fan_out(text: str) -> None:
        for websocket in list(sockets):
            try:
                await websocket.send_text(text)
            except Exception:
                sockets.discard(websocket)

    async def fire(_request: Request) -> PlainTextResponse:
        nonlocal seq
        seq += 1
        asyncio.get_running_loop().create_task(fan_out(payload(seq)))
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[WebSocketRoute("/ws", endpoint), Route("/fire", fire, methods=["POST"])]
    )
    options = uvicorn_options(Settings(host="127.0.0.1", port=port))
    options["log_level"] = "warning"
    uvicorn.run(app, **options)  # type: ignore[arg-type]


def run_broadcast(port: int) -> None:
    """A ``websockets`` server that fans out with ``websockets.broadcast``."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    sockets: set[ServerConnection] = set()
    seq = 0

    async def handler(connection: ServerConnection) -> None:
        nonlocal seq
        if connection.request is not None and connection.request.path == "/control":
            async for _message in connection:
                seq += 1
                broadcast(sockets, payload(seq))
            return
        sockets.add(connection)
        try:
            await connection.wait_closed()
        finally:
            sockets.discard(connection)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None,
                         max_size=65536, backlog=4096):  # fmt: skip
            await asyncio.Future()

    asyncio.run(main())


# ----------------------------------------------------------------------------------------------
# the runs


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Result:
    name: str
    connections: int = 0
    failed: int = 0
    rss_per_conn_kib: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    paced_delivered: int = 0
    deliveries_per_s: float = 0.0
    burst_delivered: int = 0
    expected: int = 0


class Target:
    """One server under test: how to start it, where clients connect, how to fire an event."""

    name = ""
    ready_type = ""

    def start(self) -> int:  # returns the server pid
        raise NotImplementedError

    def paths(self, count: int) -> list[str]:
        raise NotImplementedError

    def fire(self, seq: int) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class HubTarget(Target):
    name = "livecommerce hub"
    ready_type = '"type":"snapshot"'

    def start(self) -> int:
        from livecommerce.process import ServerProcess

        self.server = ServerProcess().start()
        admin = self.server.admin_token
        self.http = httpx.Client(base_url=self.server.base_url, timeout=30)
        self.port = self.server.port

        def post(path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = self.http.post(path, json=body, headers=headers)
            assert response.status_code in (200, 201), response.text
            result: dict[str, Any] = response.json()
            return result

        brand = post("/api/brands", admin, {"name": "Bench brand"})
        self.brand_token = brand["token"]
        room = post("/api/rooms", brand["token"], {"title": "Bench"})
        post(f"/api/rooms/{room['id']}/live", brand["token"], {})
        self.room_id = room["id"]
        self.product = post("/api/products", brand["token"], {"sku": "B1", "title": "Thing",
                            "price_cents": 1000, "dealer_bps": 1000})  # fmt: skip
        self.rooms = [room["id"]]
        for index in range(3):
            dealer = post("/api/dealers", admin, {"name": f"Dealer {index}"})
            post(f"/api/brands/{brand['id']}/dealers", brand["token"], {"dealer_id": dealer["id"]})
            mirror = post(f"/api/rooms/{room['id']}/mirrors", dealer["token"], {})
            self.rooms.append(mirror["id"])
        self.viewers = [post("/api/viewers", "", {})["token"] for _ in range(50)]
        assert self.server.process is not None
        return self.server.process.pid

    def paths(self, count: int) -> list[str]:
        rooms, viewers = self.rooms, self.viewers
        return [
            f"/ws/rooms/{rooms[i % len(rooms)]}?token={viewers[i % len(viewers)]}"
            for i in range(count)
        ]

    def fire(self, seq: int) -> None:
        response = self.http.post(
            f"/api/rooms/{self.room_id}/cards",
            json={"product_id": self.product["id"]},
            headers={"Authorization": f"Bearer {self.brand_token}"},
        )
        assert response.status_code == 201, response.text

    def stop(self) -> None:
        self.http.close()
        self.server.close()


class BaselineTarget(Target):
    ready_type = ""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = {"naive": "naive send_text loop", "broadcast": "websockets.broadcast"}[kind]

    def start(self) -> int:
        from livecommerce.process import free_port

        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-baseline", self.kind, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket_to(self.port):
                    break
            except OSError:
                time.sleep(0.1)
        if self.kind == "naive":
            self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        else:
            from websockets.sync.client import connect

            self.control = connect(f"ws://127.0.0.1:{self.port}/control")
        return self.proc.pid

    def paths(self, count: int) -> list[str]:
        return ["/ws"] * count

    def fire(self, seq: int) -> None:
        if self.kind == "naive":
            self.http.post("/fire")
        else:
            self.control.send("fire")

    def stop(self) -> None:
        if self.kind == "naive":
            self.http.close()
        else:
            self.control.close()
        self.proc.terminate()
        self.proc.wait(10)


def socket_to(port: int) -> Any:
    import socket

    return socket.create_connection(("127.0.0.1", port), timeout=1)


def measure(target: Target, args: argparse.Namespace) -> Result:
    result = Result(target.name)
    pid = target.start()
    fleet: ClientFleet | None = None
    try:
        time.sleep(1.0)
        before = rss_kib(pid)
        fleet = ClientFleet(target.port, target.paths(args.connections), target.ready_type,  # type: ignore[attr-defined]
                            args.client_procs)  # fmt: skip
        result.connections, result.failed = fleet.wait_ready()
        if result.failed and isinstance(target, HubTarget):
            print(target.server.log_tail(3000), file=sys.stderr)
        time.sleep(2.0)
        after = rss_kib(pid)
        result.rss_per_conn_kib = (after - before) / max(1, result.connections)
        # latency: one event at a time
        fleet.call("reset")
        for seq in range(args.events):
            target.fire(seq)
            time.sleep(args.gap_ms / 1000)
        time.sleep(1.0)
        reports = fleet.call("report")
        delays = sorted(d for _, ds, _, _ in reports for d in ds)
        result.paced_delivered = sum(r[0] for r in reports)
        if delays:
            result.p50_ms = statistics.median(delays)
            result.p99_ms = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        # throughput: a burst
        fleet.call("reset")
        started = time.time()
        for seq in range(args.burst):
            target.fire(seq)
        expected = args.burst * result.connections
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            reports = fleet.call("report")
            if sum(r[0] for r in reports) >= expected:
                break
        result.burst_delivered = sum(r[0] for r in reports)
        result.expected = expected
        last = max(r[2] for r in reports) or time.time()
        result.deliveries_per_s = result.burst_delivered / max(1e-6, last - started)
        return result
    finally:
        if fleet is not None:
            fleet.close()
        target.stop()


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem_kib // 1024} MiB RAM, "
        f"Python {platform.python_version()}; client processes share the same CPUs"
    )


def table(results: list[Result], args: argparse.Namespace) -> str:
    naive = next((r for r in results if r.name.startswith("naive")), None)
    lines = [
        f"connections: {args.connections}, latency events: {args.events} "
        f"({args.gap_ms} ms apart), burst: {args.burst} events, client processes: "
        f"{args.client_procs}",
        "",
        "| server | connected | RSS/idle conn (KiB) | p50 (ms) | p99 (ms) | deliveries/s "
        "| burst delivered | × naive |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        ratio = (
            r.deliveries_per_s / naive.deliveries_per_s if naive and naive.deliveries_per_s else 0
        )
        lines.append(
            f"| {r.name} | {r.connections} ({r.failed} failed) | {r.rss_per_conn_kib:.1f} "
            f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.deliveries_per_s:,.0f} "
            f"| {r.burst_delivered}/{r.expected} | {ratio:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--connections", type=int, default=None)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--gap-ms", type=int, default=300)
    parser.add_argument("--burst", type=int, default=None)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--only", choices=["hub", "naive", "broadcast"], action="append")
    parser.add_argument("--serve-baseline", choices=["naive", "broadcast"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_baseline == "naive":
        run_naive(args.port)
        return 0
    if args.serve_baseline == "broadcast":
        run_broadcast(args.port)
        return 0
    if args.connections is None:
        args.connections = 1000 if args.quick else 10_000
    if args.burst is None:
        args.burst = 10 if args.quick else 20
    targets: list[Target] = []
    chosen = args.only or ["hub", "naive", "broadcast"]
    if "hub" in chosen:
        targets.append(HubTarget())
    for kind in ("naive", "broadcast"):
        if kind in chosen:
            targets.append(BaselineTarget(kind))
    results = []
    for target in targets:
        print(f"measuring {target.name} ...", flush=True)
        results.append(measure(target, args))
    print(machine())
    print(table(results, args))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
