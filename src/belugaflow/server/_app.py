"""``create_app``: the REST API of an :class:`~belugaflow.Orchestrator`, as a FastAPI app."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .._errors import ConfigError
from ..config import AuthConfig, ServerConfig
from ..monitoring import Check
from ._auth import ApiKeys, Tenancy
from ._events import KEEPALIVE, event_routes
from ._graphs import graph_routes
from ._memory import memory_routes
from ._page import page_routes
from ._problems import MEDIA_TYPE, BodyLimit, CatchAll, Problem, install, problem_response
from ._workflows import workflow_routes

if TYPE_CHECKING:
    from .._orchestrator import Orchestrator
    from ..memory import Store

__all__ = ["API_PREFIX", "DEFAULT_MAX_BODY_BYTES", "create_app"]

API_PREFIX = "/api/v1"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""1 MiB: ``server.max_body_bytes``'s default."""


def create_app(
    orch: Orchestrator,
    *,
    auth: ApiKeys | Literal["off"] | None = None,
    max_body_bytes: int | None = None,
    checks: Mapping[str, Check] | None = None,
    sse_keepalive: float = KEEPALIVE,
    title: str = "belugaflow",
    memory_store: Store | None = None,
) -> FastAPI:
    """The REST API over ``orch``: routes under ``/api/v1`` (see docs/api.md), OpenAPI at
    ``/openapi.json`` and ``/docs``, a run's page at ``/runs/{id}``, and ``/healthz``,
    ``/readyz``, ``/metrics``.

    The app holds no workflow logic: each route calls the orchestrator, which starts, finds
    and drives runs on its Temporal client (connected on first use). Workers are separate:
    ``belugaflow worker`` with the same app, or :func:`~belugaflow.temporal.run_worker`.

    Every ``/api/v1`` route needs an API key (``Authorization: Bearer KEY``) and acts for
    the key's tenant, in the tenant's Temporal namespace; the monitoring routes, the docs and
    the run page's HTML need none.

    Args:
        orch: The orchestrator whose graphs and workflows the API serves.
        auth: The keys to accept (:class:`ApiKeys`), or ``"off"``: everyone acts through
            ``orch``, and :func:`serving` then listens on 127.0.0.1 only. Default: the
            ``server.auth`` section of ``orch.config``; auth on with no keys is an error.
        max_body_bytes: Largest request body, in bytes (413 beyond); default
            ``server.max_body_bytes`` of ``orch.config``, else 1 MiB.
        checks: Readiness checks besides ``temporal`` (the server answers), for ``/readyz``.
        sse_keepalive: Seconds between keep-alive comments on an idle event stream.
        title: The OpenAPI title.
        memory_store: The store ``/api/v1/memory/{scope}`` shows and deletes from. Default:
            the one the ``memory`` section of ``orch.config`` names (opened on first use);
            without either, those routes answer 404 ``memory_off``.
    """
    server = orch.config.server if orch.config is not None else ServerConfig()
    if auth is None:
        auth = _configured_auth(server.auth)
    if max_body_bytes is None:
        max_body_bytes = server.max_body_bytes
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
    from .. import __version__

    app = FastAPI(
        title=title,
        version=__version__,
        description="Start, watch and drive belugaflow workflows and graphs. Errors are"
        " application/problem+json with a stable `code`.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(event_routes(keepalive=sse_keepalive))
    api.include_router(workflow_routes())
    api.include_router(graph_routes())
    api.include_router(memory_routes())
    app.include_router(api)
    app.include_router(page_routes())  # /runs/{id}: the run page (HTML)
    monitoring = _Monitoring(orch, checks or {})
    for path in ("/healthz", "/readyz", "/metrics"):
        app.router.routes.append(Route(path, monitoring, methods=["GET"]))
    install(app)
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(CatchAll)  # added last: the outermost, so it sees every failure
    app.state.orch = orch
    app.state.tenancy = Tenancy(orch, None if auth == "off" else auth)
    app.state.memory_store = memory_store if memory_store is not None else _configured_memory(orch)
    return app


def _configured_memory(orch: Orchestrator) -> Store | None:
    if orch.config is None or orch.config.memory is None:
        return None
    from ..memory import memory_store_from_config

    return memory_store_from_config(orch.config)


def _configured_auth(config: AuthConfig) -> ApiKeys | Literal["off"]:
    if not config.enabled:
        return "off"
    keys = ApiKeys.from_config(config)
    if not len(keys):
        raise ConfigError(
            "the API needs keys, and none are configured: make one with `belugaflow keys"
            " create TENANT`, or switch auth off explicitly (server.auth.enabled: false)",
            key="server.auth",
        )
    return keys


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with every error response a problem (``application/problem+json``
    only: FastAPI adds ``application/json`` beside it, and its own 422 shape), and with keys
    on, the bearer scheme and a 401 on every route under ``/api/v1``."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        problem = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemBody"}}}
        keyed = app.state.tenancy.keys is not None
        if keyed:
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["apiKey"] = {"type": "http", "scheme": "bearer"}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if keyed and path.startswith(API_PREFIX):
                    operation["security"] = [{"apiKey": []}]
                    operation["responses"]["401"] = {"description": "No key, or a wrong one"}
                for status, response in operation.get("responses", {}).items():
                    if status[0] in "45":
                        response["content"] = problem
        found = schema.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            found.pop(unused, None)
        app.openapi_schema = schema
    return app.openapi_schema


class _Monitoring:
    """``orch.metrics_app()`` made per request: it serves the Temporal SDK's metrics too once
    the client has connected."""

    def __init__(self, orch: Orchestrator, checks: Mapping[str, Check]) -> None:
        self.orch = orch

        async def temporal() -> None:
            client = await orch.client()
            await client.service_client.check_health()

        self.checks: dict[str, Check] = {"temporal": temporal, **checks}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("path") == "/metrics" and self.orch.metrics is None:
            problem = Problem(
                404, "metrics_off", "metrics are off (monitoring.metrics.enabled: false)"
            )
            await problem_response(problem)(scope, receive, send)
            return
        app: Any = self.orch.metrics_app(self.checks)
        await app(scope, receive, send)
