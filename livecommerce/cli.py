"""``livecommerce serve | demo | bench | loadtest``.

Every ``serve``/``demo`` flag defaults to its ``LIVECOMMERCE_*`` variable, then to a built-in
value, so ``LIVECOMMERCE_PORT=9000 livecommerce serve`` listens on 9000.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from livecommerce.embedded_redis import EmbeddedRedisError
from livecommerce.server import run_server
from livecommerce.settings import Settings, SettingsError

log = logging.getLogger("livecommerce")


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (LIVECOMMERCE_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (LIVECOMMERCE_PORT, 8000)")
    parser.add_argument(
        "--workers", type=int, help="server processes on one port (LIVECOMMERCE_WORKERS, 1)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="where SQLite, the embedded Redis and the admin token live "
        "(LIVECOMMERCE_DATA_DIR, ./livecommerce-data)",
    )
    parser.add_argument(
        "--redis-url",
        help="an external Redis; unset starts an embedded one (LIVECOMMERCE_REDIS_URL)",
    )
    parser.add_argument("--public-url", help="base of watch/embed links (LIVECOMMERCE_PUBLIC_URL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livecommerce",
        description="Live-stream commerce with dealer distribution: rooms mirrored into dealer "
        "rooms, flash sales that never oversell, and exact commissions.",
        epilog="Settings are LIVECOMMERCE_* environment variables (see README.md); flags win.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    _server_flags(serve)
    demo = commands.add_parser(
        "demo",
        help="run the server with a seeded brand, products, dealers, mirrored rooms and a "
        "seckill; dev payments on; prints the URLs and tokens",
    )
    _server_flags(demo)
    demo.add_argument(
        "--no-simulation", action="store_true", help="seed only; no simulated viewers"
    )
    bench = commands.add_parser(
        "bench", help="run the micro-benchmarks in loadtests/ and print their ratios"
    )
    bench.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    loadtest = commands.add_parser(
        "loadtest", help="run a flash-sale scenario with locust (see docs/loadtesting.md)"
    )
    loadtest.add_argument("scenario", choices=["spike"], help="the scenario to run")
    loadtest.add_argument("args", nargs=argparse.REMAINDER, help="options of the scenario")
    return parser


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    return Settings.from_env(
        host=args.host,
        port=args.port,
        workers=args.workers,
        data_dir=args.data_dir,
        redis_url=args.redis_url,
        public_url=args.public_url.rstrip("/") if args.public_url else None,
        **extra,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            code = run_server(settings_from(args))
        elif args.command == "demo":
            from livecommerce.demo import run_demo

            code = run_demo(settings_from(args, dev_payments=True), simulate=not args.no_simulation)
        elif args.command == "bench":
            from livecommerce.benchrunner import run_benchmarks

            code = run_benchmarks(args.names, quick=args.quick)
        else:
            from livecommerce.loadrunner import run_loadtest

            code = run_loadtest(args.scenario, args.args)
    except (SettingsError, EmbeddedRedisError) as exc:
        print(f"livecommerce: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
