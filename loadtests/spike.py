"""The flash-sale spike: set up a world through the API, run locust headless, check the outcome.

``python -m loadtests.spike --help`` or ``livecommerce loadtest spike --help``; see
docs/loadtesting.md. Exit code 0 when every invariant holds, 1 when one fails, 2 on a setup error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from livecommerce.process import ServerProcess

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b")
SOCKETS_PER_PROCESS = 15_000
DRAIN_LIMIT_S = 120.0
LOCUST_START_S = 4.0  # setup to every worker ready, with room to spare


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livecommerce loadtest spike",
        description="Rehearse a flash-sale spike: a brand room mirrored into dealer rooms full of "
        "WebSocket viewers, and buyers racing for a limited seckill stock; then check that "
        "nothing oversold and every order, limit and ledger line adds up.",
    )
    add = parser.add_argument
    add("--target", help="base URL of a running deployment (default: start a local server)")
    add("--admin-token", help="admin token of --target (required with --target)")
    add("--workers", type=int, default=1, help="server processes of the local server (1)")
    add("--dealers", type=int, default=20, help="dealer rooms mirroring the brand room (20)")
    add("--viewers", type=int, default=5000, help="WebSocket viewers in dealer rooms (5000)")
    add("--buyers", type=int, default=2500, help="buyers racing for the seckill (2500)")
    add("--stock", type=int, default=1000, help="seckill stock (1000)")
    add("--limit", type=int, default=2, help="per-viewer limit of the seckill (2)")
    add("--qty", type=int, default=1, help="units per buy (1)")
    add("--attempts", type=int, default=8, help="buy attempts per buyer at most (8)")
    add("--http-share", type=float, default=0.5, help="share of buyers buying over HTTP (0.5)")
    add("--repeat-share", type=float, default=0.1, help="share of wins repeated (0.1)")
    add("--pay-share", type=float, default=0.5, help="share of wins paid (0.5)")
    add("--over-limit-share", type=float, default=0.2, help="share trying past the limit (0.2)")
    add("--spawn-rate", type=float, default=500, help="users started per second (500)")
    add("--open-after", type=float, default=5, help="seconds from the last spawn to the open (5)")
    add("--sale-window", type=float, default=30, help="seconds buyers keep trying (30)")
    add("--settle", type=float, default=3, help="seconds of load after every buyer is done (3)")
    add("--run-time", type=float, help="hard cap on the locust run in seconds (computed)")
    add("--processes", type=int, help="locust worker processes (enough for the sockets, >= 2)")
    add("--source-ips", default="auto", help="127.0.0.x per worker: auto, none or a list (auto)")
    add("--chat-every", type=float, default=300, help="mean seconds between a viewer's chats")
    add("--like-every", type=float, default=60, help="mean seconds between a viewer's likes")
    add("--card-every", type=float, default=5, help="seconds between the host's card pins (5)")
    add("--setup-concurrency", type=int, default=64, help="parallel API calls in setup (64)")
    add("--out", type=Path, help="report directory (./loadtest-out/spike-<time>)")
    add("--summary", type=Path, help="JSON summary file (OUT/summary.json)")
    return parser


@dataclass
class World:
    """What setup built; becomes the scenario file of the locust users."""

    base_url: str
    brand_id: str = ""
    brand_token: str = ""
    brand_room_id: str = ""
    dealer_ids: list[str] = field(default_factory=list)
    rooms: list[str] = field(default_factory=list)
    product_ids: list[str] = field(default_factory=list)
    seckill_id: str = ""
    starts_at_ms: int = 0
    viewer_tokens: list[list[str]] = field(default_factory=list)
    buyer_tokens: list[list[str]] = field(default_factory=list)


class SetupError(RuntimeError):
    """The API refused a setup call."""


class Client:
    """The runner's own API client (asyncio; never used inside locust)."""

    def __init__(self, base_url: str, admin_token: str, concurrency: int) -> None:
        self.admin_token = admin_token
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits)
        self.gate = asyncio.Semaphore(concurrency)

    async def call(
        self, method: str, path: str, token: str | None, body: Any = None, ok: int = 201
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for attempt in range(6 if method == "GET" else 1):
            # A server still working off the spike's backlog may time out or answer 5xx to
            # the checks' reads; a read is safe to repeat.
            try:
                async with self.gate:
                    response = await self.http.request(method, path, json=body, headers=headers)
            except httpx.TransportError:
                if attempt == 5 or method != "GET":
                    raise
                await asyncio.sleep(2 + 2 * attempt)
                continue
            if response.status_code < 500 or method != "GET" or attempt == 5:
                break
            await asyncio.sleep(2 + 2 * attempt)
        if response.status_code != ok:
            raise SetupError(f"{method} {path} → {response.status_code} {response.text[:300]}")
        return response.json()

    async def listing(self, path: str, token: str) -> list[dict[str, Any]]:
        """Every item of a keyset-paged listing."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            sep = "&" if "?" in path else "?"
            page_path = f"{path}{sep}limit=1000" + (f"&cursor={cursor}" if cursor else "")
            page = await self.call("GET", page_path, token, ok=200)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items


def iso_at(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def build_world(client: Client, args: argparse.Namespace, opens_in_s: float) -> World:
    """Brand, products, a live brand room, dealers (every second one under an upline) with
    mirrors, minted viewer tokens, and a seckill opening ``opens_in_s`` from now."""
    admin = client.admin_token
    world = World(base_url=str(client.http.base_url).rstrip("/"))
    brand = await client.call("POST", "/api/brands", admin, {"name": "Spike brand"})
    world.brand_id, world.brand_token = brand["id"], brand["token"]
    products = await asyncio.gather(
        *(
            client.call("POST", "/api/products", brand["token"],
                        {"sku": f"SPIKE-{i}-{int(time.time())}", "title": f"Spike item {i}",
                         "price_cents": 1990 + 1000 * i, "dealer_bps": 1000, "upline_bps": 200})
            for i in range(3)
        )
    )  # fmt: skip
    world.product_ids = [product["id"] for product in products]
    room = await client.call("POST", "/api/rooms", brand["token"], {"title": "Spike live"})
    await client.call("POST", f"/api/rooms/{room['id']}/live", brand["token"], {}, ok=200)
    world.brand_room_id = room["id"]
    dealers: list[dict[str, Any]] = []
    for start in range(0, args.dealers, 2):
        top = await client.call("POST", "/api/dealers", admin, {"name": f"Dealer {start}"})
        dealers.append(top)
        if start + 1 < args.dealers:
            body = {"name": f"Dealer {start + 1}", "upline_id": top["id"]}
            dealers.append(await client.call("POST", "/api/dealers", admin, body))
    world.dealer_ids = [dealer["id"] for dealer in dealers]

    async def mirror(dealer: dict[str, Any]) -> str:
        path = f"/api/brands/{brand['id']}/dealers"
        await client.call("POST", path, brand["token"], {"dealer_id": dealer["id"]})
        body = {"title": f"{dealer['name']} room"}
        made = await client.call("POST", f"/api/rooms/{room['id']}/mirrors", dealer["token"], body)
        return str(made["id"])

    world.rooms = list(await asyncio.gather(*(mirror(dealer) for dealer in dealers)))

    async def viewer() -> list[str]:
        made = await client.call("POST", "/api/viewers", None, {})
        return [made["id"], made["token"]]

    tokens = await asyncio.gather(*(viewer() for _ in range(args.viewers + args.buyers)))
    world.viewer_tokens = list(tokens[: args.viewers])
    world.buyer_tokens = list(tokens[args.viewers :])
    starts_at = math.ceil(time.time() + opens_in_s)
    body = {
        "product_id": world.product_ids[0],
        "price_cents": 990,
        "stock": args.stock,
        "per_viewer_limit": args.limit,
        "starts_at": iso_at(starts_at),
    }
    seckill = await client.call("POST", f"/api/rooms/{room['id']}/seckills", brand["token"], body)
    world.seckill_id, world.starts_at_ms = seckill["id"], starts_at * 1000
    return world


def source_ips(args: argparse.Namespace, base_url: str, processes: int) -> list[str]:
    """One 127.0.0.x per worker process when a local test holds more sockets than one source
    address comfortably has ports for; none otherwise."""
    if args.source_ips == "none":
        return []
    if args.source_ips != "auto":
        return [ip.strip() for ip in args.source_ips.split(",") if ip.strip()]
    host = urlsplit(base_url).hostname or ""
    sockets = args.viewers + args.buyers
    if not host.startswith("127.") or sockets <= SOCKETS_PER_PROCESS:
        return []
    return [f"127.0.0.{11 + index}" for index in range(processes)]


def _tree_sum(root_pid: int, value: Callable[[list[str]], float]) -> float:
    """``value`` of each /proc stat (fields after the command name), summed over a live process
    and its descendants (Linux)."""
    parents: dict[int, int] = {}
    values: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        values[pid] = value(fields)
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total += values.get(pid, 0.0)
        stack.extend(child for child, parent in parents.items() if parent == pid)
    return total


def tree_cpu_s(root_pid: int) -> float:
    """CPU seconds used so far by a live process and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    return _tree_sum(root_pid, lambda fields: (int(fields[11]) + int(fields[12])) / tick)


def tree_rss_mib(root_pid: int) -> float:
    """Resident memory of a live process and its descendants, MiB."""
    page = os.sysconf("SC_PAGE_SIZE")
    return _tree_sum(root_pid, lambda fields: int(fields[21]) * page) / 2**20


@dataclass
class Health:
    """``/healthz`` polled once a second while the load runs, and the server's memory."""

    probes: int = 0
    green: int = 0
    slowest_ms: float = 0.0
    peak_rss_mib: float = 0.0

    async def watch(self, base_url: str, server_pid: int | None, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
            while not stop.is_set():
                started = time.monotonic()
                self.probes += 1
                try:
                    response = await http.get("/healthz")
                    if response.status_code == 200 and response.json().get("status") == "ok":
                        self.green += 1
                except (httpx.HTTPError, ValueError):
                    pass
                self.slowest_ms = max(self.slowest_ms, (time.monotonic() - started) * 1000)
                if server_pid:
                    self.peak_rss_mib = max(self.peak_rss_mib, tree_rss_mib(server_pid))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    def check(self) -> Check:
        detail = (f"{self.green}/{self.probes} probes green, slowest {self.slowest_ms:.0f} ms, "
                  f"server RSS peak {self.peak_rss_mib:.0f} MiB")  # fmt: skip
        return Check("/healthz stayed green under load", self.probes > 0 and
                     self.green == self.probes, detail)  # fmt: skip


def read_results(run_dir: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted((run_dir / "results").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.endswith("}"):
                records.append(json.loads(line))
    return records


def run_locust(
    args: argparse.Namespace, scenario_path: Path, out: Path, processes: int, run_time: float
) -> tuple[int, float]:
    """Locust headless with ``processes`` workers; stopped (SIGINT, so it still writes its
    reports) ``--settle`` seconds after every buyer is done, or at ``run_time``. Returns its
    exit code and the CPU seconds its processes used (sampled each second)."""
    users = args.viewers + args.buyers + 1
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--processes", str(processes), "-u", str(users), "-r", str(args.spawn_rate),
        "-t", f"{math.ceil(run_time)}s", "--stop-timeout", "5", "--only-summary",
        "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
        "--json-file", str(out / "locust"), "--exit-code-on-error", "0",
    ]  # fmt: skip
    env = {**os.environ, "LIVECOMMERCE_SCENARIO": str(scenario_path)}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    with (out / "locust.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + run_time + 60
        done_at: float | None = None
        cpu_s = 0.0
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
            cpu_s = max(cpu_s, tree_cpu_s(process.pid))
            if done_at is None:
                records = read_results(scenario_path.parent)
                if sum(1 for r in records if r["kind"] == "done") >= args.buyers:
                    done_at = time.monotonic()
            elif time.monotonic() - done_at >= args.settle:
                process.send_signal(signal.SIGINT)
                break
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    wait_for_results(scenario_path.parent)
    return code, cpu_s


def wait_for_results(run_dir: Path, quiet_s: float = 2.0, limit_s: float = 20.0) -> None:
    """Locust's master can exit while its stopping workers still write their buyers' tallies:
    wait until the result files stop growing."""
    deadline = time.monotonic() + limit_s
    sizes: list[int] = []
    while time.monotonic() < deadline:
        now = [path.stat().st_size for path in sorted((run_dir / "results").glob("*.jsonl"))]
        if now == sizes:
            return
        sizes = now
        time.sleep(quiet_s)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


async def this_seckill(client: Client, world: World) -> list[dict[str, Any]]:
    orders = await client.listing("/api/orders", world.brand_token)
    return [order for order in orders if order["seckill_id"] == world.seckill_id]


def units_held(orders: list[dict[str, Any]]) -> int:
    return sum(o["qty"] - o.get("refunded_qty", 0) for o in orders if o["status"] != "expired")


async def server_orders(
    client: Client, world: World, stock: int, told: int
) -> list[dict[str, Any]]:
    """This seckill's orders from SQL once the order writer has drained: the units they hold
    equal what Redis has taken from the stock (``stock − left``), they cover every order a buyer
    was told about, and two reads a second apart agree. A spiked server may take a while to
    work off its backlog; after DRAIN_LIMIT_S the checks run on what is there (and fail)."""
    previous: list[str] = []
    deadline = time.monotonic() + DRAIN_LIMIT_S
    while True:
        orders = await this_seckill(client, world)
        seckill = await client.call("GET", f"/api/seckills/{world.seckill_id}", None, ok=200)
        taken = stock - int(seckill.get("left", 0))
        ids = sorted(order["id"] for order in orders)
        drained = units_held(orders) == taken and len(orders) >= told and ids == previous
        if drained or time.monotonic() > deadline:
            return orders
        previous = ids
        await asyncio.sleep(2)


async def check_outcome(
    client: Client, world: World, args: argparse.Namespace, records: list[dict[str, Any]]
) -> tuple[list[Check], dict[str, Any]]:
    told = [r for r in records if r["kind"] == "ok"]
    buyers = [r for r in records if r["kind"] == "buyer"]
    repeats = [r for r in records if r["kind"] == "repeat"]
    paid_told = {r["order_id"] for r in records if r["kind"] == "paid"}
    drain_started = time.monotonic()
    orders = await server_orders(client, world, args.stock, len(told))
    drain_s = round(time.monotonic() - drain_started, 1)
    live = [order for order in orders if order["status"] != "expired"]
    sold = units_held(orders)
    demand = sum(r["want"] for r in buyers)
    checks: list[Check] = []

    expected = min(args.stock, demand)
    seckill = await client.call("GET", f"/api/seckills/{world.seckill_id}", None, ok=200)
    left = seckill.get("left")
    detail = f"sold {sold}, stock {args.stock}, demand {demand}, seckill left {left}"
    stock_ok = sold == expected and (left is None or left == args.stock - sold)
    checks.append(Check("units sold == min(stock, demand)", stock_ok, detail))

    per_viewer: dict[str, int] = {}
    for order in live:
        per_viewer[order["viewer_id"]] = per_viewer.get(order["viewer_id"], 0) + order["qty"]
    over = {viewer: units for viewer, units in per_viewer.items() if units > args.limit}
    most = max(per_viewer.values(), default=0)
    detail = f"{len(over)} viewers over {args.limit}; most units by one viewer {most}"
    checks.append(Check("nobody over the per-viewer limit", not over, detail))

    mismatched = []
    for room in world.rooms:
        room_told = {r["order_id"] for r in told if r["room_id"] == room}
        room_server = {order["id"] for order in orders if order["room_id"] == room}
        if room_told != room_server:
            mismatched.append(f"{room}: told {len(room_told)}, server {len(room_server)}")
    stray = {order["id"] for order in orders if order["room_id"] not in world.rooms}
    detail = f"{len(world.rooms)} rooms, {len(told)} orders told; " + (
        "; ".join(mismatched[:5]) or "every room matches"
    )
    checks.append(Check("orders per room match what buyers were told", not mismatched
                        and not stray, detail))  # fmt: skip

    wrong = [r for r in repeats if not r["same"]]
    detail = f"{len(repeats)} repeated request ids, {len(wrong)} answered otherwise"
    checks.append(Check("a repeated request id answers the same order", not wrong, detail))

    checks.append(await check_ledger(client, world, orders, paid_told))
    counts = {"sold": sold, "demand": demand, "orders": len(orders), "told": len(told)}
    return checks, {**counts, "drain_s": drain_s}


async def check_ledger(
    client: Client, world: World, orders: list[dict[str, Any]], paid_told: set[str]
) -> Check:
    """Every paid order's sale entries, over every party, sum to exactly its amount; no unpaid
    order has an entry."""
    parties = ["platform", f"brand:{world.brand_id}", *(f"dealer:{d}" for d in world.dealer_ids)]
    # Pays still in flight when locust stopped land meanwhile: read the ledger between two
    # identical readings of the orders' statuses.
    for _ in range(15):
        entries: list[dict[str, Any]] = []
        for party in parties:
            entries.extend(await client.listing(f"/api/ledger?party={party}", client.admin_token))
        again = await this_seckill(client, world)
        if {o["id"]: o["status"] for o in again} == {o["id"]: o["status"] for o in orders}:
            break
        orders = again
        await asyncio.sleep(1)
    by_order: dict[str, int] = {}
    for entry in entries:
        if entry.get("order_id") and entry["kind"] == "sale":
            by_order[entry["order_id"]] = by_order.get(entry["order_id"], 0) + entry["amount_cents"]
    paid = {order["id"]: order for order in orders if order["status"] == "paid"}
    unbalanced = [oid for oid, order in paid.items() if by_order.get(oid) != order["amount_cents"]]
    strays = [oid for oid in by_order if oid not in paid]
    missing = paid_told - paid.keys()
    detail = (
        f"{len(paid)} paid orders ({len(paid_told)} paid by buyers), {len(entries)} entries; "
        f"{len(unbalanced)} unbalanced, {len(strays)} entries of unpaid orders, "
        f"{len(missing)} paid but not paid on the server"
    )
    ok = not unbalanced and not strays and not missing and bool(paid)
    return Check("ledger balanced (a paid order's entries sum to its amount)", ok, detail)


def locust_stats(out: Path) -> list[dict[str, str]]:
    path = out / "locust_stats.csv"
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def buy_figures(records: list[dict[str, Any]]) -> dict[str, Any]:
    tallies = [r for r in records if r["kind"] == "done"]
    results: dict[str, int] = {}
    per_second: dict[str, int] = {}
    for tally in tallies:
        for result, count in tally["results"].items():
            results[result] = results.get(result, 0) + count
        for second, count in tally.get("per_second", {}).items():
            per_second[second] = per_second.get(second, 0) + count
    attempts = sum(results.values())
    firsts = [t["first_at"] for t in tallies if t.get("first_at")]
    lasts = [t["last_at"] for t in tallies if t.get("last_at")]
    window = (max(lasts) - min(firsts)) if firsts and lasts else 0.0
    oks = sorted(r["t"] for r in records if r["kind"] == "ok")
    return {
        "buy_attempts": attempts,
        "buys_by_result": dict(sorted(results.items())),
        "buy_window_s": round(window, 3),
        "buys_per_s": round(attempts / window, 1) if window else 0.0,
        "peak_buys_per_s": max(per_second.values(), default=0),
        "sell_through_s": round(oks[-1] - oks[0], 3) if len(oks) > 1 else 0.0,
    }


def stat_row(row: dict[str, str]) -> dict[str, Any]:
    def number(key: str) -> float | None:
        value = row.get(key, "N/A")
        return None if value in ("", "N/A") else float(value)

    return {
        "type": row["Type"], "name": row["Name"], "count": int(row["Request Count"]),
        "failures": int(row["Failure Count"]), "p50_ms": number("50%"),
        "p95_ms": number("95%"), "p99_ms": number("99%"), "max_ms": number("Max Response Time"),
    }  # fmt: skip


def print_report(summary: dict[str, Any]) -> None:
    figures = summary["figures"]
    print(f"\nspike: {summary['config']['viewers']} viewers, {summary['config']['buyers']} buyers, "
          f"{summary['config']['dealers']} dealer rooms, stock {summary['config']['stock']}, "
          f"limit {summary['config']['limit']}")  # fmt: skip
    print(f"WebSocket connects: {figures.get('ws_connects', 0)}")
    print(f"buy requests sent: {figures['buy_requests']} (errors and timeouts included)")
    print(f"buy attempts answered: {figures['buy_attempts']} in {figures['buy_window_s']} s → "
          f"{figures['buys_per_s']} buys/s (peak {figures['peak_buys_per_s']}/s); "
          f"sold out in {figures['sell_through_s']} s")  # fmt: skip
    print(f"buys by result: {figures['buys_by_result']}")
    print(f"CPU during the load: load generator {figures['loadgen_cpu_s']} s, server "
          f"{figures['server_cpu_s']} s, over {figures['locust_wall_s']} s on "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"stock event delay p99: {figures.get('stock_delay_p99_ms')} ms")
    print(f"\n{'type':<5} {'name':<24} {'count':>8} {'fail':>6} {'p50':>7} {'p95':>7} "
          f"{'p99':>7} {'max':>8}")  # fmt: skip
    for row in summary["stats"]:
        cells = [row[k] if row[k] is not None else "-" for k in ("p50_ms", "p95_ms", "p99_ms")]
        maximum = row["max_ms"] if row["max_ms"] is not None else "-"
        print(f"{row['type']:<5} {row['name'][:24]:<24} {row['count']:>8} {row['failures']:>6} "
              f"{cells[0]:>7} {cells[1]:>7} {cells[2]:>7} {maximum:>8}")  # fmt: skip
    if summary["server_errors"]:
        print("\nserver log exceptions:")
        for line, count in list(summary["server_errors"].items())[:8]:
            print(f"  {count:>6} × {line}")
    print("\ninvariants:")
    for check in summary["invariants"]:
        print(f"  {'PASS' if check['passed'] else 'FAIL'}  {check['name']}: {check['detail']}")
    print(f"\nreports in {summary['out_dir']} (locust.html, locust_stats.csv, summary.json)")


def server_errors(log: str) -> dict[str, int]:
    """Exceptions in the local server's log, by type and message head: what to read first when
    an invariant fails."""
    found: dict[str, int] = {}
    for line in log.splitlines():
        match = EXCEPTION_LINE.match(line)
        if match:
            found[line[:160]] = found.get(line[:160], 0) + 1
    return dict(sorted(found.items(), key=lambda item: -item[1]))


async def spike(
    args: argparse.Namespace,
    base_url: str,
    admin_token: str,
    out: Path,
    server: ServerProcess | None = None,
) -> int:
    client = Client(base_url, admin_token, args.setup_concurrency)
    users = args.viewers + args.buyers + 1
    processes = args.processes or max(2, math.ceil(users / SOCKETS_PER_PROCESS))
    spawn_s = users / args.spawn_rate
    opens_in = LOCUST_START_S + spawn_s + args.open_after
    started = time.monotonic()
    try:
        world = await build_world(client, args, opens_in)
    except (SetupError, httpx.HTTPError) as exc:
        print(f"spike: setup failed: {exc}", file=sys.stderr)
        await client.http.aclose()
        return 2
    setup_s = time.monotonic() - started
    run_dir = out / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    scenario = {
        **{k: v for k, v in asdict(world).items() if k not in ("brand_id", "dealer_ids")},
        "per_viewer_limit": args.limit, "qty": args.qty, "viewers": args.viewers,
        "buyers": args.buyers, "attempts": args.attempts, "http_share": args.http_share,
        "repeat_share": args.repeat_share, "pay_share": args.pay_share,
        "over_limit_share": args.over_limit_share, "chat_every_s": args.chat_every,
        "like_every_s": args.like_every, "card_every_s": args.card_every,
        "sale_window_s": args.sale_window, "run_dir": str(run_dir),
        "source_ips": source_ips(args, base_url, processes),
    }  # fmt: skip
    scenario_path = run_dir / "scenario.json"
    scenario_path.write_text(json.dumps(scenario))
    until_open = world.starts_at_ms / 1000 - time.time()
    run_time = args.run_time or max(until_open, spawn_s) + args.sale_window + args.settle + 15
    print(f"spike: setup {setup_s:.1f} s; seckill opens in {until_open:.1f} s; "
          f"{processes} locust processes; run ≤ {run_time:.0f} s", flush=True)  # fmt: skip
    server_pid = server.process.pid if server is not None and server.process else None
    server_cpu = tree_cpu_s(server_pid) if server_pid else 0.0
    wall = time.monotonic()
    health, stop_watching = Health(), asyncio.Event()
    watching = asyncio.create_task(health.watch(base_url, server_pid, stop_watching))
    try:
        locust_code, loadgen_cpu = await asyncio.to_thread(
            run_locust, args, scenario_path, out, processes, run_time
        )
    finally:
        stop_watching.set()
        await watching
    usage = {
        "locust_wall_s": round(time.monotonic() - wall, 1),
        "loadgen_cpu_s": round(loadgen_cpu, 1),
        "server_cpu_s": round(tree_cpu_s(server_pid) - server_cpu, 1) if server_pid else None,
    }
    records = read_results(run_dir)
    try:
        checks, counts = await check_outcome(client, world, args, records)
    except (SetupError, httpx.HTTPError, KeyError) as exc:
        checks, counts = [Check("the server answered the checks", False, repr(exc))], {}
    checks.append(health.check())
    await client.http.aclose()
    errors: dict[str, int] = {}
    if server is not None:
        log = server.log_tail(20_000_000)
        (out / "server.log").write_text(log)
        errors = server_errors(log)
    stats = [stat_row(row) for row in locust_stats(out)]
    figures: dict[str, Any] = {
        **counts,
        **buy_figures(records),
        **usage,
        "setup_s": round(setup_s, 1),
        "server_rss_peak_mib": round(health.peak_rss_mib, 1),
    }
    for row in stats:
        if row["type"] == "WS" and row["name"] == "stock delay":
            figures["stock_delay_p99_ms"] = row["p99_ms"]
            figures["stock_events"] = row["count"]
        if row["type"] == "WS" and row["name"] == "connect":
            figures["ws_connects"] = row["count"]
    figures["buy_requests"] = sum(row["count"] for row in stats if row["name"].startswith("buy "))
    summary = {
        "passed": all(check.passed for check in checks),
        "invariants": [asdict(check) for check in checks],
        "figures": figures,
        "stats": stats,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "server_errors": errors,
        "locust_processes": processes,
        "locust_exit_code": locust_code,
        "base_url": base_url,
        "out_dir": str(out),
    }
    (args.summary or out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_report(summary)
    return 0 if summary["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.target and not args.admin_token:
        print("spike: --target needs --admin-token", file=sys.stderr)
        return 2
    out: Path = args.out or Path("loadtest-out") / f"spike-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    if args.target:
        return asyncio.run(spike(args, args.target.rstrip("/"), args.admin_token, out))
    env = {"LIVECOMMERCE_DEV_PAYMENTS": "1", "LIVECOMMERCE_PLATFORM_FEE_BPS": "500"}
    with ServerProcess(env=env, workers=args.workers) as server:
        print(f"spike: local server at {server.base_url} ({args.workers} workers), "
              f"log {server.log_path}", flush=True)  # fmt: skip
        return asyncio.run(spike(args, server.base_url, server.admin_token, out, server))


if __name__ == "__main__":
    sys.exit(main())
