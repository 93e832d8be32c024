"""``/api/v1/graphs``: the graphs the app's workers run — list, show, run in process or
durably — and ``POST /graphs``, which registers a graph defined as JSON or YAML.

**How a registered graph reaches the workers.** A graph sent to ``POST /graphs`` names node
functions and routers that the app registered (module-level functions by their import path,
others by the name given to ``orch.register``); every worker of the app holds them, because it
imports the same app. The API process adds the spec to its orchestrator
(:meth:`~belugaflow.Orchestrator.add_graph`), and each durable run of it carries the spec in
its input, as ``belugaflow.graph`` (the memo names the graph and version): any worker runs it,
one in another process that started before the graph was registered too, with nothing to
deploy or share. A registration lives in the API process: after a restart, register again
(the same spec again is a no-op), or build the graph in the app's code. With API keys, it
belongs to the tenant that sent it (its orchestrator view): other tenants neither see nor run
it, and may register their own graph of the same name.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from fastapi import APIRouter, Body, Path, Query, Request, Response

from .._errors import InputError, RunError, SpecError
from .._schema import problems
from ..graph import GraphSpec
from ._auth import Scoped
from ._models import (
    ID_PATTERN,
    GraphDetail,
    GraphItem,
    GraphRegistered,
    IfExists,
    WorkflowRun,
)
from ._problems import Problem, field_errors, responses
from ._runs import START_RESPONSES, start_run

if TYPE_CHECKING:
    from .._orchestrator import Orchestrator

__all__ = ["GRAPH_DOCUMENT", "graph_routes", "parse_graph"]

_NAME = r"^[^/\s][^/]*$"
_LONGEST = 10 * 365 * 24 * 3600
"""Seconds: ten years, the longest duration a document may give."""
_MOST = 1_000_000
_SECONDS: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": _LONGEST}
_TIMEOUT: dict[str, Any] = {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": _LONGEST}
_RETRY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "max_attempts": {"type": "integer", "minimum": 0, "maximum": _MOST},
        "initial_interval": _SECONDS,
        "backoff_coefficient": {"type": "number", "minimum": 1, "maximum": 100},
        "max_interval": {**_SECONDS, "type": ["number", "null"]},
        "jitter": {"type": "number", "minimum": 0, "maximum": 1},
        "max_elapsed": {**_SECONDS, "type": ["number", "null"]},
        "non_retryable": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["max_attempts", "initial_interval", "backoff_coefficient"],
    "additionalProperties": False,
}
_NAMES: dict[str, Any] = {"type": "array", "items": {"type": "string", "minLength": 1}}

GRAPH_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "title": "GraphDocument",
    "description": "A graph as data: GraphSpec.to_dict()'s shape. Nodes and routers name"
    " callables the app registered (ref).",
    "properties": {
        "format": {"const": 1},
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _NAME},
        "version": {"type": "integer", "minimum": 1, "maximum": _MOST},
        "nodes": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "ref": {"type": "string"},
                    "retry": _RETRY,
                    "timeout": _TIMEOUT,
                    "breaker": {"type": ["string", "null"]},
                    "blocking": {"type": "boolean"},
                    "short": {"type": "boolean"},
                    "compensate": {"type": ["string", "null"]},
                    "on_failure": {"enum": ["fail", "park"]},
                    "wait": {
                        "type": "object",
                        "properties": {
                            "signal": {"type": "string", "minLength": 1},
                            "key": {"type": "string", "minLength": 1},
                            "timeout": _TIMEOUT,
                            "on_timeout": {"type": ["string", "null"]},
                            "schema": {"type": ["object", "null"]},
                        },
                        "required": ["signal", "key"],
                        "additionalProperties": False,
                    },
                },
                "required": ["name", "ref"],
                "additionalProperties": False,
            },
        },
        "edges": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
        },
        "routers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "source": {"type": "string"},
                    "ref": {"type": "string", "minLength": 1},
                    "routes": {
                        "type": "array",
                        "items": {
                            "type": "array",
                            "prefixItems": [{"type": "string"}, {"type": "string"}],
                            "minItems": 2,
                            "maxItems": 2,
                        },
                    },
                },
                "required": ["source", "ref", "routes"],
                "additionalProperties": False,
            },
        },
        "entry": _NAMES,
        "finish": _NAMES,
        "reducers": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [{"type": "string"}, {"type": "string"}],
                "minItems": 2,
                "maxItems": 2,
            },
        },
        "max_workers": {"type": "integer", "minimum": 1, "maximum": _MOST},
        "parallel": {"type": "boolean"},
        "max_steps": {"type": "integer", "minimum": 1, "maximum": _MOST},
        "timeout": _TIMEOUT,
        "retry": _RETRY,
        "input_schema": {"type": ["object", "null"]},
    },
    "required": ["name", "nodes", "entry", "finish"],
    "additionalProperties": False,
}
"""JSON Schema of what ``POST /graphs`` takes: the shape of :meth:`GraphSpec.to_dict`."""

GraphName = Annotated[str, Path(description="The graph's name.")]

_JSON = ("application/json",)
_YAML = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def parse_graph(body: bytes, content_type: str) -> GraphSpec:
    """The spec in a request body of ``content_type`` (JSON or YAML), checked for shape.

    Raises:
        Problem: 415 another content type; 400 the body does not parse; 422 its shape is
            wrong (each field named) or it describes an invalid graph (each problem listed).
    """
    media = content_type.split(";")[0].strip().lower()
    try:
        if media in _JSON:
            data = json.loads(body)
        elif media in _YAML:
            data = _load_yaml(body)
        else:
            raise Problem(
                415,
                "unsupported_media_type",
                f"send the graph as application/json or application/yaml, not {media or 'none'!r}",
            )
    except (ValueError, RecursionError) as error:
        raise Problem(400, "invalid_json", f"the body is not JSON: {error}") from None
    except yaml.YAMLError as error:
        raise Problem(400, "invalid_yaml", f"the body is not YAML: {error}") from None
    found = problems(GRAPH_DOCUMENT, data)
    if found:
        raise Problem(
            422,
            SpecError.code,
            "the graph document is invalid: " + "; ".join(found),
            errors=field_errors(found, ("body",)),
        )
    try:
        return GraphSpec.from_dict(data)
    except SpecError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError) as error:
        raise SpecError("graph document", [str(error)]) from None


def _load_yaml(body: bytes) -> Any:
    """YAML without aliases: a graph needs none, and aliases nested in aliases make a small
    document that expands exponentially when checked (a "billion laughs")."""
    for event in yaml.parse(body, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.YAMLError("aliases (*name) are not allowed in a graph document")
    return yaml.safe_load(body)


def graph_routes() -> APIRouter:
    """The routes under ``/graphs``."""
    router = APIRouter(prefix="/graphs", tags=["graphs"])

    @router.get("", summary="List graphs")
    async def list_graphs(orch: Scoped) -> list[GraphItem]:
        """Every graph the app's workers run, each a workflow type of its name."""
        return [_item(orch, name) for name in sorted(orch.registry.graphs)]

    @router.get("/{name}", summary="Show a graph", responses=responses(404, 422))
    async def show_graph(
        orch: Scoped,
        name: GraphName,
        version: Annotated[int | None, Query(ge=1, description="Default: the newest.")] = None,
    ) -> GraphDetail:
        """The graph's spec (what ``POST /graphs`` takes), its published schema (input,
        result, signals, updates, queries) and its Mermaid drawing."""
        spec = _graph(orch, name, version).spec
        item = _item(orch, name)
        return GraphDetail.model_validate(
            {
                "name": spec.name,
                "version": spec.version,
                "versions": item.versions,
                "source": "api" if orch.added(spec.name, spec.version) else "code",
                "signals": list(spec.waits),
                "spec": spec.to_dict(),
                "schema": spec.schema(),
                "mermaid": spec.to_mermaid(),
            }
        )

    @router.post(
        "",
        status_code=201,
        summary="Register a graph",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": GRAPH_DOCUMENT},
                    "application/yaml": {"schema": GRAPH_DOCUMENT},
                },
            }
        },
        responses=responses(
            400,
            409,
            413,
            415,
            422,
            ok={200: {"model": GraphRegistered, "description": "Already registered"}},
        ),
    )
    async def register_graph(orch: Scoped, request: Request, response: Response) -> GraphRegistered:
        """Register a graph defined as JSON or YAML (``Content-Type: application/json`` or
        ``application/yaml``) whose nodes and routers name callables the app registered. It is
        checked exactly as a built graph is (422 listing each problem), versioned (another
        definition under a name and version taken is 409; the same one again, 200), and then
        runs by its name like any graph — durably on every worker of the app."""
        spec = parse_graph(await request.body(), request.headers.get("content-type", ""))
        if orch.types().get(spec.name) == "workflow":
            raise Problem(
                409,
                "type_conflict",
                f"{spec.name!r} is the type of a hand-written workflow; name the graph otherwise",
            )
        existing = orch.registry.graph(spec.name, spec.version)
        if existing is not None and existing != spec:
            raise Problem(
                409,
                "graph_version_conflict",
                f"graph {spec.name!r} version {spec.version} is already defined differently;"
                " a changed graph needs a new version",
                name=spec.name,
                version=spec.version,
            )
        try:
            orch.add_graph(spec)
        except ValueError as error:  # lost a race with another registration
            raise Problem(409, "graph_version_conflict", str(error)) from None
        if existing is not None:
            response.status_code = 200
        return GraphRegistered(name=spec.name, version=spec.version, created=existing is None)

    @router.post(
        "/{name}/invoke",
        summary="Run a graph in process",
        responses=responses(400, 404, 409, 413, 422),
    )
    async def invoke_graph(
        orch: Scoped,
        name: GraphName,
        input: Annotated[dict[str, Any], Body(description="The initial state.")],
    ) -> dict[str, Any]:
        """Run the graph in the API process and return its final state: for short graphs
        without waits (a graph that waits for signals runs durably: ``/runs``). A run that
        fails is 409 with the error's ``code`` and the partial ``state``."""
        graph = _graph(orch, name, None)
        if graph.spec.waits:
            raise Problem(
                409,
                "graph_waits",
                f"graph {name!r} waits for signals ({', '.join(graph.spec.waits)}); start it"
                f" durably: POST /api/v1/graphs/{name}/runs",
            )
        try:
            final: dict[str, Any] = await graph.ainvoke(input)
        except InputError as error:
            raise Problem(
                422,
                InputError.code,
                f"{error.subject} is invalid",
                errors=field_errors(error.problems, ("body",)),
            ) from None
        except RunError as error:
            raise Problem(
                409,
                error.code,
                str(error),
                error_type=type(error).__name__,
                node=error.node,
                state=_jsonable(error.state),
            ) from None
        return final

    @router.post(
        "/{name}/runs",
        status_code=201,
        summary="Start a durable run of a graph",
        responses=START_RESPONSES,
    )
    async def start_graph_run(
        orch: Scoped,
        name: GraphName,
        response: Response,
        input: Annotated[dict[str, Any], Body(description="The initial state.")],
        id: Annotated[str | None, Query(min_length=1, max_length=255, pattern=ID_PATTERN)] = None,
        if_exists: Annotated[IfExists, Query()] = "use_existing",
    ) -> WorkflowRun:
        """``POST /workflows`` with the graph as ``type`` and the body as ``input``."""
        _graph(orch, name, None)
        run, created = await start_run(
            orch, name, input, id=id, if_exists=if_exists, where=("body",)
        )
        if not created:
            response.status_code = 200
        return run

    return router


def _graph(orch: Orchestrator, name: str, version: int | None) -> Any:
    try:
        return orch.graph(name, version)
    except KeyError as error:
        raise Problem(404, "unknown_graph", str(error.args[0]), graph=name) from None


def _item(orch: Orchestrator, name: str) -> GraphItem:
    versions = orch.registry.graphs[name]
    newest = versions[max(versions)]
    return GraphItem(
        name=name,
        version=newest.version,
        versions=sorted(versions),
        source="api" if orch.added(name, newest.version) else "code",
        signals=list(newest.waits),
    )


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=repr))
    except (TypeError, ValueError):
        return None
