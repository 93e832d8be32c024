"""Every error as ``application/problem+json`` (RFC 9457).

A problem has the standard members ``type``, ``title``, ``status`` and ``detail``, plus a
stable ``code`` for programs to branch on and, for invalid input, ``errors``: one
``{"loc": [...], "msg": "..."}`` per field. ``type`` is ``urn:belugaflow:problem:<code>``.

:class:`Problem` is raised by the routes; the handlers installed by :func:`install` turn it —
and FastAPI's validation errors, Starlette's 404 and 405, belugaflow's ``InputError`` and
``SpecError``, and Temporal's errors — into such a response. What no handler knows becomes a
``500`` with code ``internal`` and no details, its traceback logged (:class:`CatchAll`).
"""

from __future__ import annotations

import http
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import InputError, SpecError

__all__ = [
    "MEDIA_TYPE",
    "BodyLimit",
    "CatchAll",
    "FieldError",
    "Problem",
    "ProblemBody",
    "field_errors",
    "install",
    "problem_response",
    "responses",
]

MEDIA_TYPE = "application/problem+json"

logger = logging.getLogger("belugaflow.server")


class FieldError(BaseModel):
    """One invalid field."""

    loc: list[str | int] = Field(description="Where: e.g. ['body', 'input', 'quantity'].")
    msg: str = Field(description="What is wrong with it.")


class ProblemBody(BaseModel):
    """An error (RFC 9457 problem details). Other members may appear, e.g. ``workflow_id``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="urn:belugaflow:problem:<code>")
    title: str = Field(description="The HTTP status's phrase.")
    status: int
    detail: str = Field(description="What went wrong, in a sentence or two.")
    code: str = Field(description="Stable, for programs: 'unknown_type', 'input_invalid'...")
    errors: list[FieldError] | None = Field(
        default=None, description="For invalid input: each field and what is wrong with it."
    )


class Problem(HTTPException):
    """An error response: ``status``, a stable ``code``, a ``detail`` sentence, optional
    field ``errors`` and further members (``extra``).

    A Starlette ``HTTPException``, so that FastAPI lets it through while it reads a body.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}) or None)
        self.code = code
        self.errors = [dict(error) for error in errors] if errors is not None else None
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The response's JSON."""
        body: dict[str, Any] = {
            "type": f"urn:belugaflow:problem:{self.code}",
            "title": _phrase(self.status_code),
            "status": self.status_code,
            "detail": self.detail,
            "code": self.code,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        for key, value in self.extra.items():  # never over a standard member
            body.setdefault(key, value)
        return body


def problem_response(problem: Problem) -> JSONResponse:
    """The response for ``problem``."""
    return JSONResponse(
        problem.body(), problem.status_code, headers=problem.headers, media_type=MEDIA_TYPE
    )


def field_errors(lines: Sequence[str], prefix: Sequence[str | int] = ()) -> list[dict[str, Any]]:
    """``errors`` from belugaflow's problem lines (``"quantity: '2' is not of type
    'integer'"``): the field path before the first ``": "`` becomes ``loc`` after ``prefix``."""
    found = []
    for line in lines:
        where, sep, msg = line.partition(": ")
        if not sep or " " in where or where == "the value":
            found.append({"loc": list(prefix), "msg": line})
        else:
            path: list[str | int] = [int(p) if p.isdigit() else p for p in where.split(".")]
            found.append({"loc": [*prefix, *path], "msg": msg})
    return found


def responses(
    *statuses: int, ok: Mapping[int | str, dict[str, Any]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route: each error status as a problem, after the other
    successes ``ok`` (status -> ``{"model", "description"}``)."""
    found: dict[int | str, dict[str, Any]] = dict(ok or {})
    return found | {
        status: {
            "model": ProblemBody,
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemBody"}}},
            "description": _phrase(status),
        }
        for status in statuses
    }


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_HTTP_CODES = {
    400: "invalid_json",  # FastAPI: a body that is not JSON at all (not UTF-8, say)
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    if isinstance(error, Problem):
        return problem_response(error)
    assert isinstance(error, HTTPException)
    status = error.status_code
    detail = str(error.detail)
    if status == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}; see /docs"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
    code = _HTTP_CODES.get(status, f"http_{status}")
    return problem_response(Problem(status, code, detail, headers=error.headers))


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    found = list(error.errors())
    if any(e.get("type") == "json_invalid" for e in found):
        reason = next(e.get("ctx", {}).get("error", "") for e in found)
        return problem_response(Problem(400, "invalid_json", f"the body is not JSON: {reason}"))
    errors = [
        {"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())], "msg": e["msg"]}
        for e in found
    ]
    where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return problem_response(
        Problem(422, "validation_error", f"the request is invalid: {where}", errors=errors)
    )


async def _input_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InputError)
    detail = f"{error.subject} is invalid"
    return problem_response(
        Problem(422, InputError.code, detail, errors=field_errors(error.problems))
    )


async def _spec_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SpecError)
    errors = [{"loc": ["body"], "msg": line} for line in error.problems]
    detail = f"{error.subject} is invalid: " + "; ".join(error.problems)
    return problem_response(Problem(422, SpecError.code, detail, errors=errors))


def install(app: FastAPI) -> None:
    """Make every error of ``app`` a problem (see the module's docstring)."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(SpecError, _spec_error)
    try:
        from temporalio.service import RPCError
    except ImportError:  # pragma: no cover - the server needs the temporal extra anyway
        return
    app.add_exception_handler(RPCError, _rpc_error)


async def _rpc_error(request: Request, error: Exception) -> JSONResponse:
    """A Temporal call that failed where the route did not expect it."""
    from temporalio.service import RPCError, RPCStatusCode

    assert isinstance(error, RPCError)
    if error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        problem = Problem(503, "temporal_unavailable", f"Temporal did not answer: {error}")
    elif error.status == RPCStatusCode.NOT_FOUND:
        problem = Problem(404, "not_found", str(error))
    elif error.status == RPCStatusCode.INVALID_ARGUMENT:
        problem = Problem(400, "bad_request", f"Temporal refused the request: {error}")
    else:
        logger.warning("Temporal call of %s failed: %s", request.url.path, error)
        problem = Problem(503, "temporal_error", f"Temporal failed the request: {error}")
    return problem_response(problem)


class CatchAll:
    """ASGI middleware: an exception no handler took becomes a ``500`` problem with code
    ``internal`` — no stack trace in the response; the traceback goes to the
    ``belugaflow.server`` logger."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:  # the client went away (an event stream, say): nobody to tell
            return
        except Exception:
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:  # too late for a problem: the client sees the response cut short
                return
            problem = Problem(500, "internal", "the server failed; the error is in its log")
            await problem_response(problem)(scope, receive, send)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused with ``413``
    (``body_too_large``) — at once when ``Content-Length`` says so, else as soon as the bytes
    read pass the limit, before anything parses them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _problem(self) -> Problem:
        return Problem(
            413,
            "body_too_large",
            f"the request body is larger than {self.max_bytes} bytes (server.max_body_bytes)",
            max_body_bytes=self.max_bytes,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await problem_response(self._problem())(scope, receive, send)
                return
        read = 0

        async def receiving() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes:
                    raise self._problem()
            return message

        await self.app(scope, receiving, send)
