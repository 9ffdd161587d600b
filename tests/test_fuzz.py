"""Property-based fuzzing of the whole HTTP API from its own OpenAPI schema (schemathesis):
whatever the body, path or query, every answer is below 500 and every error is JSON with an
``error`` code. Each generated request is sent as admin, as a brand, as a dealer, as a viewer and
with no token."""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from livecommerce.process import ServerProcess
from tests.conftest import Api


@pytest.fixture(scope="module")
def fuzz_tokens(api: Api) -> list[str | None]:
    return [
        api.admin_token,
        api.brand("Fuzz brand")["token"],
        api.dealer("Fuzz dealer")["token"],
        api.viewer()["token"],
        None,
    ]


@pytest.fixture(scope="module")
def api_schema(server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_makes_a_5xx(case: Any, fuzz_tokens: list[str | None]) -> None:
    for token in fuzz_tokens:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = case.call(headers=headers, timeout=30)
        assert response.status_code < 500, (case.method, case.path, response.text[:300])
        if response.status_code >= 400:
            payload = json.loads(response.text)
            assert isinstance(payload.get("error"), str) and payload["error"]
            assert isinstance(payload.get("message"), str)
