"""The OpenAPI document as the contract the server keeps: every problem a route can answer.

FastAPI documents what a route returns when it succeeds and a 422 in its own shape. This module
rewrites the generated document so that it tells the truth about failures too:

- each operation lists every problem status it can answer, inferred from what the route uses:
  422 everywhere (a NUL in a query string or header is refused on every route), 400, 413 and
  422 for a body (undecodable, too large, invalid), 404 for a path parameter (the resource is
  looked up), 400 for a page ``cursor``, plus what its dependencies declare (``declare``: an
  access token 401, a role 403, an idempotency key 400) and what its own ``responses=`` name
  (402, 409, 429, 502, 503, 504...);
- every status of 400 and above is served as ``application/problem+json`` with the
  ``Problem`` schema (FastAPI's ``HTTPValidationError`` is gone: 422 is a problem too), and the
  headers the platform always sends are declared (``X-Request-ID``; ``WWW-Authenticate`` on 401,
  ``Retry-After`` on 429);
- headers a dependency insists on (``required_header``) are required, although the dependency
  itself answers their absence with a clearer problem than FastAPI's validation error;
- an operation that admits anonymous callers says so (``security: [{}, {bearer}]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, Literal

from fastapi import FastAPI, Header
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from app.platform.errors import PROBLEM_CONTENT_TYPE

Security = Literal["optional", "required"]
_PROBLEMS_ATTR = "__problem_statuses__"
_SECURITY_ATTR = "__security__"
_REQUIRED_MARK = "x-platform-required"
_CURSOR_PARAM = "cursor"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 9457 problem details; a problem type may add members of its own.",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "description": "stable, e.g. /problems/not-found"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "the request's path"},
            "request_id": {"type": "string", "description": "also in X-Request-ID"},
            "errors": {
                "type": "array",
                "description": "one entry per invalid field (422)",
                "items": {"$ref": "#/components/schemas/FieldProblem"},
            },
        },
        "additionalProperties": True,
    },
    "FieldProblem": {
        "title": "FieldProblem",
        "type": "object",
        "properties": {
            "loc": {"type": "array", "items": {"type": "string"}},
            "field": {"type": ["string", "null"]},
            "msg": {"type": ["string", "null"]},
            "type": {"type": ["string", "null"]},
        },
        "additionalProperties": True,
    },
}
_STRING = {"schema": {"type": "string"}}
_ALWAYS_HEADERS = {"X-Request-ID": {"required": True, "description": "the request's id", **_STRING}}
_STATUS_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"required": True, **_STRING}},
    429: {"Retry-After": {"required": True, "description": "seconds", **_STRING}},
}


def declare(
    dependency: Callable[..., Any], *statuses: int, security: Security | None = None
) -> None:
    """Record the problem statuses ``dependency`` can answer (and the access it requires), so
    that every route using it, directly or through other dependencies, documents them."""
    known = getattr(dependency, _PROBLEMS_ATTR, ())
    setattr(dependency, _PROBLEMS_ATTR, tuple(sorted({*known, *statuses})))
    if security is not None:
        setattr(dependency, _SECURITY_ATTR, security)


def required_header(name: str, description: str) -> Any:
    """A ``Header`` the document marks required while the dependency reading it stays free to
    answer its absence with its own problem (an optional parameter at run time)."""
    return Header(alias=name, description=description, json_schema_extra={_REQUIRED_MARK: True})


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def route_problems(route: APIRoute | RouteContext) -> tuple[set[int], Security | None]:
    """The problem statuses ``route`` can answer and the access it needs, from what it uses."""
    statuses = {422}
    security: Security | None = None
    for dependant in _dependants(route.dependant):
        statuses.update(getattr(dependant.call, _PROBLEMS_ATTR, ()))
        needs = getattr(dependant.call, _SECURITY_ATTR, None)
        if needs == "required" or (needs == "optional" and security is None):
            security = needs
        if dependant.path_params:
            statuses.add(404)
        if any(p.alias == _CURSOR_PARAM for p in dependant.query_params):
            statuses.add(400)
    if route.body_field is not None:
        statuses.update((400, 413, 422))
    statuses.update(int(s) for s in route.responses if str(s).isdigit() and int(s) >= 400)
    return statuses, security


def _problem_response(status: int, existing: dict[str, Any] | None) -> dict[str, Any]:
    description = (existing or {}).get("description")
    if not description or description == "Validation Error":
        description = HTTPStatus(status).phrase
    return {
        "description": description,
        "headers": {**_ALWAYS_HEADERS, **_STATUS_HEADERS.get(status, {})},
        "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}},
    }


def _require_marked_headers(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", ()):
        schema = parameter.get("schema", {})
        if schema.pop(_REQUIRED_MARK, None):
            parameter["required"] = True
            # The run-time type is ``str | None``; the document states what a client must send.
            variants = [v for v in schema.pop("anyOf", ()) if v.get("type") != "null"]
            schema.update(variants[0] if variants else {"type": "string"})


def _rewrite_operation(
    operation: dict[str, Any], route: APIRoute | RouteContext, schemes: list[str]
) -> None:
    statuses, security = route_problems(route)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in sorted(statuses):
        responses[str(status)] = _problem_response(status, responses.get(str(status)))
    for key, response in responses.items():
        if key.isdigit() and int(key) < 400:
            response.setdefault("headers", {}).update(_ALWAYS_HEADERS)
    _require_marked_headers(operation)
    if security == "optional":
        operation["security"] = [{}, *({name: []} for name in schemes)]
    elif security is None:
        operation.pop("security", None)


def contract_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document for ``app``, rewritten as the module's docstring says."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = document.setdefault("components", {})
    schemes = list(components.get("securitySchemes", {}))
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _rewrite_operation(operation, route, schemes)
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(_SCHEMAS)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the rewritten document at ``app.openapi_url`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
