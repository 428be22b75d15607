"""The error hierarchy, rendered as RFC 9457 ``application/problem+json``.

Raise a subclass of ``AppError`` anywhere (services included: it knows no FastAPI); the handlers
here turn it, request validation errors, unknown routes, wrong methods and crashes into one shape:
``{"type", "title", "status", "detail", "instance", "request_id", ...extensions}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "/problems/"


class AppError(Exception):
    """A failure the client should be told about. ``slug`` becomes the stable problem type."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        commit: bool = False,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extensions = extensions
        # Most errors undo the request's work; a few must keep it while still failing the
        # request (a reused refresh token revokes its family, then answers 401).
        self.commit = commit


class BadRequest(AppError):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedBody(AppError):
    status, slug, title = 400, "malformed-body", "Malformed request body"


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(
        self, detail: str | None = None, *, commit: bool = False, **extensions: Any
    ) -> None:
        super().__init__(
            detail, headers={"WWW-Authenticate": "Bearer"}, commit=commit, **extensions
        )


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(AppError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class ValidationFailed(AppError):
    status, slug, title = 422, "validation-error", "Request validation failed"


class TooManyRequests(AppError):
    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **extensions: Any) -> None:
        super().__init__(
            detail,
            headers={"Retry-After": str(max(1, retry_after))},
            retry_after=retry_after,
            **extensions,
        )


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class GatewayTimeout(AppError):
    status, slug, title = 504, "timeout", "The operation timed out"


class ProblemRaised(StarletteHTTPException):
    """An ``AppError`` raised where only an HTTP exception gets through untouched: inside a body
    read, where FastAPI turns any other exception into a generic 400."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.status, detail=error.detail, headers=error.headers)
        self.error = error


NUL_REFUSED = "string_nul"


def nul_refused(where: Sequence[str]) -> ValidationFailed:
    """The problem for a NUL character in ``where`` (``["query", "q"]``, ``["body"]``)."""
    loc = [str(part) for part in where]
    return ValidationFailed(
        "1 invalid field(s)",
        errors=[
            {
                "loc": loc,
                "field": ".".join(loc[1:]) or None,
                "msg": "NUL characters (\\u0000) are not accepted",
                "type": NUL_REFUSED,
            }
        ],
    )


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
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if request is not None:
        body["instance"] = request.url.path
        request_id = request.scope.get("state", {}).get("request_id")
        if request_id:
            body["request_id"] = request_id
    body.update(extensions)
    return Response(
        content=json.dumps(body, default=str, separators=(",", ":")),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return problem_response(
        request,
        status=exc.status,
        slug=exc.slug,
        title=exc.title,
        detail=exc.detail,
        headers=exc.headers,
        **exc.extensions,
    )


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
