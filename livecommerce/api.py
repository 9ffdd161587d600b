"""HTTP routes that describe themselves: the same request models validate bodies and feed
``/openapi.json``, so the schema cannot drift from what the server accepts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from livecommerce import __version__

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiRoute(Route):
    """A Starlette route plus what OpenAPI needs to know about it."""

    def __init__(
        self,
        path: str,
        endpoint: Endpoint,
        *,
        method: str,
        summary: str,
        roles: Sequence[str] = (),
        body: type[BaseModel] | None = None,
        status: int = 200,
        query: Sequence[str] = (),
        content_type: str = "application/json",
    ) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.method = method
        self.summary = summary
        self.roles = tuple(roles)
        self.body = body
        self.status = status
        self.query = tuple(query)
        self.content_type = content_type


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status, headers=headers)


def _operation(route: ApiRoute, components: dict[str, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in route.query
    ]
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.method.lower()
        + "".join(f"_{part.strip('{}')}" for part in route.path.split("/") if part),
        "parameters": parameters,
        "responses": {
            str(route.status): {
                "description": "success",
                "content": {route.content_type: {"schema": {}}},
            },
            "4XX": {
                "description": "refused",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if route.roles:
        operation["description"] = "Who may call: " + ", ".join(route.roles)
        if route.roles != ("anyone",):
            operation["security"] = [{"bearer": []}]
    if route.body is not None:
        schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components[name] = definition
        components[route.body.__name__] = schema
        operation["requestBody"] = {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}
                }
            },
        }
    return operation


def openapi_schema(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    components: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if isinstance(route, ApiRoute):
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, components)
    return {
        "openapi": "3.0.3",
        "info": {"title": "livecommerce", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
