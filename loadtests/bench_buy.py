"""Buy-path benchmark: one run against one real server measures

- ``trivial``: a trivial Starlette endpoint on the same server (the HTTP ceiling),
- ``naive``:   the same buy with one awaited Redis call per request (no micro-batching),
- ``http``:    our HTTP buy path (micro-batched),
- ``ws``:      the WebSocket ``buy`` message answered by an ``order`` event,
- ``lua``:     the raw seckill script driven directly, pipelined (the Redis ceiling),

and prints requests/s and the ratios (targets: http ≥ 2× naive, http ≥ 70% of trivial).

The load generator is a minimal keep-alive HTTP/1.1 client on raw asyncio streams, so that the
client is not the bottleneck; it shares the machine's CPUs with the server (say so when quoting).

    python loadtests/bench_buy.py [--quick] [--seconds 5] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from livecommerce.process import ServerProcess
from livecommerce.seckill import SeckillKeys


class RawClient:
    """One keep-alive HTTP/1.1 connection: send a request, read one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, token: str | None, body: bytes) -> int:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


async def http_phase(
    port: int, seconds: float, connections: int, path: str, tokens: list[str], buy: dict[str, Any]
) -> tuple[float, dict[int, int]]:
    clients = [await RawClient.open(port) for _ in range(connections)]
    statuses: dict[int, int] = {}
    stop = time.monotonic() + seconds
    count = 0

    async def worker(index: int, client: RawClient) -> None:
        nonlocal count
        token = tokens[index % len(tokens)]
        n = 0
        while time.monotonic() < stop:
            n += 1
            body = json.dumps({**buy, "request_id": f"{index}-{n}-{uuid.uuid4().hex[:8]}"})
            status = await client.post(path, token, body.encode())
            statuses[status] = statuses.get(status, 0) + 1
            count += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(i, c) for i, c in enumerate(clients)))
    elapsed = time.monotonic() - started
    for client in clients:
        client.close()
    return count / elapsed, statuses


async def ws_phase(
    ws_url: str, room_id: str, seconds: float, connections: int, tokens: list[str], sk: str
) -> tuple[float, dict[str, int]]:
    results: dict[str, int] = {}
    stop = time.monotonic() + seconds
    count = 0

    async def worker(index: int) -> None:
        nonlocal count
        url = f"{ws_url}/ws/rooms/{room_id}?token={tokens[index % len(tokens)]}"
        async with connect(url, max_size=None) as ws:
            n = 0
            while time.monotonic() < stop:
                n += 1
                request_id = f"ws{index}-{n}-{uuid.uuid4().hex[:8]}"
                await ws.send(json.dumps({"type": "buy", "seckill_id": sk, "qty": 1,
                                          "request_id": request_id}))  # fmt: skip
                while True:  # skip room events until our answer
                    event = json.loads(await ws.recv())
                    if event.get("request_id") == request_id:
                        break
                key = event.get("result") or event.get("error", "?")
                results[key] = results.get(key, 0) + 1
                count += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return count / (time.monotonic() - started), results


async def lua_phase(
    redis_url: str, sk: str, room_id: str, viewers: list[str], seconds: float, batch: int = 256
) -> float:
    """The seckill script straight to Redis, pipelined ``batch`` at a time: the Redis ceiling."""
    redis = Redis.from_url(redis_url)
    source = (Path(__file__).parent.parent / "livecommerce" / "seckill.lua").read_text()
    sha = await redis.script_load(source)
    keys = SeckillKeys.of(sk).buy
    stop = time.monotonic() + seconds
    count = 0
    started = time.monotonic()

    async def pump(lane: int) -> None:
        nonlocal count
        n = 0
        while time.monotonic() < stop:
            pipe = redis.pipeline(transaction=False)
            for _ in range(batch):
                n += 1
                viewer = viewers[n % len(viewers)]
                order_id = f"{uuid.uuid4().hex[:18]}-{sk}"
                pipe.evalsha(sha, len(keys), *keys, viewer, f"lua{lane}-{n}", room_id, 1,
                             order_id, "", "")  # fmt: skip
            await pipe.execute()
            count += batch

    await asyncio.gather(*(pump(lane) for lane in range(4)))
    elapsed = time.monotonic() - started
    await redis.aclose()
    return count / elapsed


def setup(api: httpx.Client, admin: str, viewers: int) -> dict[str, Any]:
    def post(path: str, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = api.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    brand = post("/api/brands", admin, {"name": "Bench"})
    product_body = {"sku": "B", "title": "B", "price_cents": 100, "dealer_bps": 0}
    product = post("/api/products", brand["token"], product_body)
    room = post("/api/rooms", brand["token"], {"title": "Bench"})
    post(f"/api/rooms/{room['id']}/live", brand["token"], {})

    def make_seckill() -> str:
        body = {"product_id": product["id"], "price_cents": 100, "stock": 10_000_000,
                "per_viewer_limit": 10_000}  # fmt: skip
        seckill_id: str = post(f"/api/rooms/{room['id']}/seckills", brand["token"], body)["id"]
        return seckill_id

    made = [post("/api/viewers", None, {}) for _ in range(viewers)]
    return {
        "room": room["id"],
        "make_seckill": make_seckill,
        "tokens": [v["token"] for v in made],
        "viewer_ids": [v["id"] for v in made],
    }


def run(seconds: float, connections: int, ws_connections: int) -> dict[str, Any]:
    env = {
        "LIVECOMMERCE_BENCH_ROUTES": "1",
        "LIVECOMMERCE_BUY_RATE_PER_S": "1000000",
        "LIVECOMMERCE_WS_MESSAGES_PER_S": "1000000",
    }  # measure the path, not the limits
    with (
        ServerProcess(env=env) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as api,
    ):
        world = setup(api, server.admin_token, viewers=max(connections, ws_connections))
        port, room, tokens = server.port, world["room"], world["tokens"]
        figures: dict[str, float] = {}
        details: dict[str, Any] = {}

        def http(name: str, path: str, payload: dict[str, Any]) -> None:
            rate, statuses = asyncio.run(
                http_phase(port, seconds, connections, path, tokens, payload)
            )
            figures[name], details[name] = rate, statuses

        buy = {"room_id": room, "qty": 1}
        http("trivial", "/bench/trivial", buy)
        sk = world["make_seckill"]()
        http("naive", f"/bench/naive/{sk}/orders", buy)
        sk = world["make_seckill"]()
        http("http", f"/api/seckills/{sk}/orders", buy)
        sk = world["make_seckill"]()
        figures["ws"], details["ws"] = asyncio.run(
            ws_phase(server.ws_url, room, seconds, ws_connections, tokens, sk)
        )
        sk = world["make_seckill"]()
        redis_url = f"unix://{server.data_dir / 'redis' / 'redis.sock'}"
        figures["lua"] = asyncio.run(lua_phase(redis_url, sk, room, world["viewer_ids"], seconds))
    return {
        "requests_per_s": {k: round(v) for k, v in figures.items()},
        "statuses": details,
        "ratios": {
            "http_vs_naive": round(figures["http"] / figures["naive"], 2),
            "http_vs_trivial": round(figures["http"] / figures["trivial"], 2),
            "ws_vs_http": round(figures["ws"] / figures["http"], 2),
            "http_vs_lua": round(figures["http"] / figures["lua"], 3),
        },
        "seconds_per_phase": seconds,
        "connections": connections,
        "cpus": os.cpu_count(),
        "load_average_before": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s per phase")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ws-connections", type=int, default=64)
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    report = run(seconds, args.connections, args.ws_connections)
    print(json.dumps(report, indent=2))
    ratios = report["ratios"]
    print(f"http/naive = {ratios['http_vs_naive']} (target ≥ 2), "
          f"http/trivial = {ratios['http_vs_trivial']} (target ≥ 0.7)")  # fmt: skip


if __name__ == "__main__":
    main()
