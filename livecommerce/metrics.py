"""Prometheus metrics, in a registry owned by the app (no module-level collectors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "livecommerce_http_requests_total",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "livecommerce_http_request_seconds",
            "HTTP request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.ws_connections = Gauge(
            "livecommerce_ws_connections", "Open WebSocket connections", registry=self.registry
        )
        self.ws_closed = Counter(
            "livecommerce_ws_closed_total",
            "WebSocket connections closed by the server, by close code",
            ["code"],
            registry=self.registry,
        )
        self.fanout_frames = Counter(
            "livecommerce_fanout_frames_total",
            "Frames written to WebSocket connections",
            registry=self.registry,
        )
        self.buys = Counter(
            "livecommerce_buys_total", "Buy attempts by result", ["result"], registry=self.registry
        )
        self.orders_written = Counter(
            "livecommerce_orders_written_total",
            "Order stream entries applied to SQL",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
