"""RFC 9457 problem details for every error, and the exception handlers that produce them."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("clinishare.problems")

TITLES = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
    409: "Conflict", 412: "Precondition failed", 413: "Content too large", 415: "Unsupported media type", 422: "Unprocessable content",
    429: "Too many requests", 500: "Internal server error", 503: "Service unavailable",
}


class Problem(Exception):
    def __init__(self, status: int, detail: str | None = None, *, title: str | None = None,
                 type: str = "about:blank", headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or title or TITLES.get(status, ""))
        self.status = status
        self.title = title or TITLES.get(status, "Error")
        self.detail = detail
        self.type = type
        self.headers = headers or {}
        self.extra = extra


def not_found(what: str = "resource") -> Problem:
    return Problem(404, f"{what} not found")


def problem_response(status: int, *, title: str | None = None, detail: str | None = None,
                     type: str = "about:blank", instance: str | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": type, "title": title or TITLES.get(status, "Error"), "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    # Echoing the rejected input back could echo PHI; the location and the reason are enough.
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in errors]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, title=exc.title, detail=exc.detail, type=exc.type,
                                instance=request.url.path, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if errors and all(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
            # a path that names no valid id names nothing there is: not found (SPEC 10.3)
            return problem_response(404, detail="not found", instance=request.url.path)
        return problem_response(422, detail="the request is invalid", instance=request.url.path,
                                errors=_clean_errors(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body that is not even text ("There was an error parsing the body"):
            # invalid input, which this API answers 422 everywhere (SPEC 8)
            return problem_response(422, detail="the request body could not be parsed", instance=request.url.path)
        return problem_response(exc.status_code, detail=str(exc.detail) if exc.detail else None,
                                instance=request.url.path, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", path=request.url.path, exc_info=exc)
        return problem_response(500, instance=request.url.path)
