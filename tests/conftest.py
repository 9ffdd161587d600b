"""Fixtures: one real server process per session (real uvicorn, embedded real Redis, a temp
data dir), and a small HTTP client that knows the API's shapes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from livecommerce.process import ServerProcess
from tests.services import LocalPostgres, LocalRedisCluster


class Api:
    """A thin sync client: ``api.post(path, token, body)`` returns the response."""

    def __init__(self, base_url: str, admin_token: str) -> None:
        self.base_url = base_url
        self.admin_token = admin_token
        self.http = httpx.Client(base_url=base_url, timeout=30)

    def request(
        self, method: str, path: str, token: str | None = None, body: Any = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            kwargs["json"] = body
        return self.http.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("GET", path, token, **kw)

    def post(
        self, path: str, token: str | None = None, body: Any = None, **kw: Any
    ) -> httpx.Response:
        return self.request("POST", path, token, body, **kw)

    def put(
        self, path: str, token: str | None = None, body: Any = None, **kw: Any
    ) -> httpx.Response:
        return self.request("PUT", path, token, body, **kw)

    def delete(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, token, **kw)

    def ok(self, response: httpx.Response, status: int | tuple[int, ...] = (200, 201)) -> Any:
        wanted = (status,) if isinstance(status, int) else status
        assert response.status_code in wanted, (response.status_code, response.text)
        return response.json()

    # world building -------------------------------------------------------------------------

    def brand(self, name: str = "Brand") -> dict[str, Any]:
        return self.ok(self.post("/api/brands", self.admin_token, {"name": name}), 201)

    def dealer(self, name: str = "Dealer", upline_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if upline_id:
            body["upline_id"] = upline_id
        return self.ok(self.post("/api/dealers", self.admin_token, body), 201)

    def viewer(self, name: str | None = None) -> dict[str, Any]:
        return self.ok(self.post("/api/viewers", None, {"name": name} if name else {}), 201)

    def product(self, brand: dict[str, Any], **fields: Any) -> dict[str, Any]:
        body = {"sku": f"SKU-{id(fields)}-{len(fields)}", "title": "Thing", "price_cents": 1000,
                "dealer_bps": 1000, "upline_bps": 200, **fields}  # fmt: skip
        return self.ok(self.post("/api/products", brand["token"], body), 201)

    def room(self, brand: dict[str, Any], live: bool = True, **fields: Any) -> dict[str, Any]:
        room = self.ok(self.post("/api/rooms", brand["token"], {"title": "Live", **fields}), 201)
        if live:
            room = self.ok(self.post(f"/api/rooms/{room['id']}/live", brand["token"]), 200)
        return room

    def authorize(self, brand: dict[str, Any], dealer: dict[str, Any]) -> None:
        path = f"/api/brands/{brand['id']}/dealers"
        self.ok(self.post(path, brand["token"], {"dealer_id": dealer["id"]}), 201)

    def mirror(
        self, brand: dict[str, Any], room: dict[str, Any], dealer: dict[str, Any]
    ) -> dict[str, Any]:
        self.authorize(brand, dealer)
        path = f"/api/rooms/{room['id']}/mirrors"
        return self.ok(self.post(path, dealer["token"], {"title": f"{dealer['name']} room"}), 201)


def backend_env() -> Iterator[dict[str, str]]:
    """Environment naming the SQL and Redis backends the integration suite runs against.

    ``LIVECOMMERCE_TEST_BACKEND=scale`` runs it on a local PostgreSQL and a local Redis Cluster
    (CI does both); the default is SQLite and the embedded Redis.
    """
    if os.environ.get("LIVECOMMERCE_TEST_BACKEND") != "scale":
        yield {}
        return
    with LocalPostgres() as postgres, LocalRedisCluster() as cluster:
        yield {"DATABASE_URL": postgres.url, "LIVECOMMERCE_REDIS_URL": cluster.url}


@pytest.fixture(scope="session")
def backends() -> Iterator[dict[str, str]]:
    yield from backend_env()


@pytest.fixture(scope="session")
def server(backends: dict[str, str]) -> Iterator[ServerProcess]:
    with ServerProcess(env={"LIVECOMMERCE_DEV_PAYMENTS": "1", **backends}) as process:
        yield process


@pytest.fixture(scope="session")
def api(server: ServerProcess) -> Api:
    return Api(server.base_url, server.admin_token)
