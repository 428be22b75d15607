"""Problems over HTTP: the exception handlers and the ``Response`` of a problem document.

The document itself (``problem_body``) and the error classes are framework-free in
``app/platform/errors.py``; this is the part that reads a ``Request`` and writes a ``Response``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from app.platform.db.availability import CAUGHT, DatabaseUnavailable, describe
from app.platform.db.failures import is_unavailable
from app.platform.errors import (
    PROBLEM_CONTENT_TYPE,
    AppError,
    Forbidden,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    ValidationFailed,
    problem_body,
)

log = structlog.stdlib.get_logger("app.db")


class ProblemRaised(StarletteHTTPException):
    """An ``AppError`` raised where only an HTTP exception gets through untouched: inside a body
    read, where FastAPI turns any other exception into a generic 400."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.status, detail=error.detail, headers=error.headers)
        self.error = error


def with_request_context(body: bytes, request: Request) -> bytes:
    """A problem body rendered without the request (a stored idempotent answer, say), given the
    current request's ``instance`` and ``request_id`` where it has none."""
    try:
        problem = json.loads(body)
    except ValueError:
        return body
    if not isinstance(problem, dict):
        return body
    problem.setdefault("instance", request.url.path)
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        problem.setdefault("request_id", request_id)
    return json.dumps(problem, default=str, separators=(",", ":")).encode()


def problem_response(
    request: Request | None,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> Response:
    context: dict[str, Any] = {}
    if request is not None:
        context["instance"] = request.url.path
        request_id = request.scope.get("state", {}).get("request_id")
        if request_id:
            context["request_id"] = request_id
    context.update(extensions)
    return Response(
        content=problem_body(status=status, slug=slug, title=title, detail=detail, **context),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return error_response(request, exc)


def _field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        out.append(
            {
                "loc": loc,
                "field": ".".join(loc[1:]) or None,
                "msg": err.get("msg"),
                "type": err.get("type"),
            }
        )
    return out


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        return problem_response(
            request,
            status=MalformedBody.status,
            slug=MalformedBody.slug,
            title=MalformedBody.title,
            detail=f"The body is not valid JSON: {reason}",
        )
    return problem_response(
        request,
        status=ValidationFailed.status,
        slug=ValidationFailed.slug,
        title=ValidationFailed.title,
        detail=f"{len(errors)} invalid field(s)",
        errors=_field_errors(errors),
    )


_HTTP_SLUGS = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    401: Unauthorized,
    403: Forbidden,
}


def _allowed_methods(request: Request) -> str:
    """The methods of the resource at this path (Starlette names only the first route's).

    As in OpenAPI, a concrete path beats a templated one: ``/v1/products/search`` is its own
    resource (GET), not ``/v1/products/{product_id}`` with a malformed id.
    """
    by_params: dict[int, set[str]] = {}
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE and route.methods:
            params = (route.path_format or "").count("{")
            by_params.setdefault(params, set()).update(route.methods)
    return ", ".join(sorted(by_params[min(by_params)])) if by_params else ""


# FastAPI's answer to a body it could not decode (bad UTF-8, an unreadable stream).
_FASTAPI_BODY_ERROR = "There was an error parsing the body"


def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ProblemRaised):
        return _app_error(request, exc.error)
    if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
        return _app_error(request, MalformedBody("The body is not valid JSON"))
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    known = _HTTP_SLUGS.get(exc.status_code)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    slug = known.slug if known else phrase.lower().replace(" ", "-")
    title = known.title if known else phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else title
    if exc.status_code == 404 and detail == NotFound.title:
        detail = f"No route matches {request.method} {request.url.path}"
    return problem_response(
        request, status=exc.status_code, slug=slug, title=title, detail=detail, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    # Unhandled exceptions are rendered by the request-id middleware, which wraps the app and
    # so can put the request id on the 500 (Starlette's ServerErrorMiddleware sits outside it).


def error_response(request: Request | None, error: AppError) -> Response:
    """The problem response of ``error`` (its status, type, detail, headers and extensions)."""
    return problem_response(
        request,
        status=error.status,
        slug=error.slug,
        title=error.title,
        detail=error.detail,
        headers=error.headers,
        **error.extensions,
    )


def unavailable_response(request: Request | None) -> Response:
    return error_response(request, DatabaseUnavailable())


async def _database_error(request: Request, exc: Exception) -> Response:
    if not is_unavailable(exc):
        raise exc  # a bug, not an outage: the platform logs it and answers 500
    log.warning(
        "database unavailable",
        path=request.url.path,
        method=request.method,
        error=describe(exc),
    )
    return unavailable_response(request)


def install_database_error_handlers(app: FastAPI) -> None:
    for cls in CAUGHT:
        app.add_exception_handler(cls, _database_error)
