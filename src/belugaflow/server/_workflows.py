"""``/api/v1/workflows``: start, list, show, await, signal, query, cancel and terminate runs —
graphs by name and hand-written workflows alike — and the use case framework's aliases
(``/workflows/{name}/execute``, ``/workflows/{name}/status``)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from .._schema import problems
from ..temporal._timeline import fetch_timeline
from ._auth import Scoped
from ._drawing import graph_svg
from ._models import (
    ID_PATTERN,
    IfExists,
    QueryAnswer,
    RunGraph,
    SignalAccepted,
    SignalInfo,
    StartWorkflow,
    Status,
    StopRequested,
    TerminateWorkflow,
    TimelineBody,
    WorkflowDetail,
    WorkflowItem,
    WorkflowList,
    WorkflowResult,
    WorkflowRun,
)
from ._problems import Problem, field_errors, responses
from ._runs import START_RESPONSES, Run, connected, find_run, run_schema, settle, start_run

if TYPE_CHECKING:
    from .._orchestrator import Orchestrator

__all__ = ["MAX_WAIT", "read_json", "workflow_routes"]

MAX_WAIT = 60.0
"""Longest ``?wait=`` of ``GET /workflows/{id}/result``, in seconds."""

WorkflowId = Annotated[str, Path(description="The workflow id.")]
IfExistsQuery = Annotated[
    IfExists,
    Query(description="An id that already started a run: return that run (200), or fail (409)."),
]
TypeFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        pattern=r"^[^'\"\\\x00-\x1f\x7f]+$",
        description="Only runs of this type (a graph's name or a workflow's type).",
    ),
]

_REFUSED_TOKEN = (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.INTERNAL)

ANY_JSON: dict[str, Any] = {
    "required": False,
    "content": {"application/json": {"schema": {}}},
}
"""An OpenAPI request body of any JSON value (read by the route itself)."""


async def read_json(request: Request) -> Any:
    """The body as JSON; no body is None. A ``400`` problem if it is not JSON."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise Problem(400, "invalid_json", f"the body is not JSON: {error}") from None


def workflow_routes() -> APIRouter:
    """The routes under ``/workflows``."""
    router = APIRouter(prefix="/workflows", tags=["workflows"])

    @router.post(
        "",
        status_code=201,
        summary="Start a workflow",
        responses=START_RESPONSES,
    )
    async def start_workflow(
        orch: Scoped,
        body: StartWorkflow,
        response: Response,
        if_exists: IfExistsQuery = "use_existing",
    ) -> WorkflowRun:
        """Start a run of a graph (by name) or a hand-written workflow (by type) on ``input``,
        checked against the type's published schema first (422 naming each field; nothing
        starts). ``id`` is the idempotency key: starting it again returns the run it started
        (200) and never starts a second one — or, with ``?if_exists=fail``, 409."""
        run, created = await start_run(
            orch,
            body.type,
            body.input,
            id=body.id,
            if_exists=if_exists,
            where=("body", "input"),
        )
        if not created:
            response.status_code = 200
        return run

    @router.get("", summary="List workflows", responses=responses(400, 422, 503))
    async def list_workflows(
        orch: Scoped,
        status: Annotated[Status | None, Query(description="Only runs with this status.")] = None,
        type: TypeFilter = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="Most runs per page.")] = 20,
        cursor: Annotated[str | None, Query(description="next_cursor of the page before.")] = None,
    ) -> WorkflowList:
        """Workflows, newest first, a page at a time: follow ``next_cursor`` until it is null.
        A page filtered by the name of a graph registered through ``POST /graphs`` may hold
        fewer than ``limit`` runs even when more follow."""
        token = _token(cursor)
        await connected(orch)
        try:
            found, next_token = await orch.list_page(
                status=status, type=type, limit=limit, page_token=token
            )
        except ValueError as error:  # a filter no query can hold
            raise Problem(422, "validation_error", str(error)) from None
        except RPCError as error:
            if token is not None and error.status in _REFUSED_TOKEN:
                raise Problem(400, "invalid_cursor", f"the cursor is not valid: {error}") from None
            raise
        items = [
            WorkflowItem(
                id=s.id,
                run_id=s.run_id,
                type=s.type,
                status=s.status,  # type: ignore[arg-type]
                task_queue=s.task_queue,
                start_time=s.start_time,
                close_time=s.close_time,
            )
            for s in found
        ]
        cursor = _cursor(next_token) if next_token else None
        return WorkflowList(items=items, next_cursor=cursor)

    @router.get("/{id}", summary="Show a workflow", responses=responses(404, 503))
    async def show_workflow(orch: Scoped, id: WorkflowId) -> WorkflowDetail:
        """Status, the result or error once it ended, and the timeline (each node's first
        start, end, attempts, outcome and last error)."""
        return await _detail(orch, await find_run(orch, id))

    @router.get("/{id}/graph", summary="Draw a workflow's graph", responses=responses(404, 503))
    async def workflow_graph(orch: Scoped, id: WorkflowId) -> RunGraph:
        """The run's graph drawn as SVG (at the run's version; null for a hand-written
        workflow) and the signals the run takes, each with its schema and the wait nodes
        waiting for it: what the run page shows."""
        run = await find_run(orch, id)
        schema = run_schema(orch, run)
        waits: dict[str, list[str]] = {}
        for node in run.spec.nodes if run.spec is not None else ():
            if node.wait is not None:
                waits.setdefault(node.wait.signal, []).append(node.name)
        signals = schema["signals"] if schema is not None else {}
        return RunGraph(
            id=run.id,
            run_id=run.run_id,
            type=run.type,
            svg=graph_svg(run.spec) if run.spec is not None else None,
            signals=[
                SignalInfo(name=name, schema=value, waits=waits.get(name, []))
                for name, value in signals.items()
            ],
        )

    @router.get(
        "/{id}/result",
        summary="Await a workflow's result",
        responses=responses(
            404, 409, 422, 503, ok={202: {"model": WorkflowResult, "description": "Still running"}}
        ),
    )
    async def workflow_result(
        orch: Scoped,
        id: WorkflowId,
        response: Response,
        wait: Annotated[
            float, Query(ge=0, le=MAX_WAIT, description="Seconds to wait for a running run.")
        ] = 30.0,
    ) -> WorkflowResult:
        """The result (200) once the run completed, waiting up to ``wait`` seconds; 202 while
        it still runs; for a run that failed, was cancelled, terminated or timed out, its error
        as a problem (409, with the error's ``code``)."""
        run = await find_run(orch, id)
        outcome = await settle(run, wait)
        if outcome is None:
            response.status_code = 202
            return WorkflowResult(id=run.id, run_id=run.run_id, status="running")
        if outcome.error is not None:
            error = outcome.error
            raise Problem(
                409,
                error.code,
                f"workflow {run.id!r} ended {outcome.status}: {error.message}",
                workflow_id=run.id,
                run_id=run.run_id,
                workflow_status=outcome.status,
                error_type=error.error_type,
                node=error.node,
            )
        return WorkflowResult(
            id=run.id, run_id=run.run_id, status=outcome.status, result=outcome.result
        )

    @router.post(
        "/{id}/signals/{name}",
        status_code=202,
        summary="Send a signal",
        openapi_extra={"requestBody": ANY_JSON},
        responses=responses(400, 404, 409, 413, 422, 503),
    )
    async def send_signal(
        orch: Scoped,
        id: WorkflowId,
        name: Annotated[str, Path(description="The signal: a wait's, or 'resolve'.")],
        request: Request,
    ) -> SignalAccepted:
        """Send the body (any JSON; none is null) as signal ``name``. It is checked first
        against the signal's published schema — a graph wait's schema, a workflow's argument
        type — and refused with 422 naming each field; an unknown signal is 404."""
        value = await read_json(request)
        run = await find_run(orch, id)
        if run.closed:
            raise _closed(run)
        schema = run_schema(orch, run)
        if schema is not None:
            signals = schema["signals"]
            if name not in signals:
                known = ", ".join(sorted(signals)) or "none"
                raise Problem(
                    404,
                    "unknown_signal",
                    f"{run.type!r} takes no signal {name!r} (it takes: {known})",
                    signal=name,
                )
            found = _value_problems(signals[name], value)
            if found:
                raise Problem(
                    422,
                    "input_invalid",
                    f"signal {name!r} to {run.type!r} is invalid; it was not sent",
                    errors=field_errors(found, ("body",)),
                )
        try:
            await run.handle.signal(name, value)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:  # it closed in between
                raise _closed(run) from None
            raise
        return SignalAccepted(id=run.id, run_id=run.run_id, signal=name)

    @router.get(
        "/{id}/queries/{name}", summary="Query a workflow", responses=responses(404, 409, 503)
    )
    async def query_workflow(
        orch: Scoped,
        id: WorkflowId,
        name: Annotated[str, Path(description="The query, e.g. 'progress'.")],
    ) -> QueryAnswer:
        """Ask the run a query (every graph run answers ``progress``); a worker answers it,
        for a closed run too."""
        run = await find_run(orch, id)
        schema = run_schema(orch, run)
        if schema is not None and name not in schema["queries"]:
            known = ", ".join(sorted(schema["queries"])) or "none"
            raise Problem(
                404,
                "unknown_query",
                f"{run.type!r} answers no query {name!r} (it answers: {known})",
                query=name,
            )
        try:
            answer = await run.handle.query(name)
        except WorkflowQueryFailedError as error:
            raise Problem(409, "query_failed", f"the query failed: {error}") from None
        except RPCError as error:
            if error.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE):
                raise Problem(
                    503,
                    "no_worker",
                    f"no worker answered the query (is one polling {orch.workflow_task_queue!r}"
                    f"?): {error}",
                ) from None
            raise
        return QueryAnswer(id=run.id, run_id=run.run_id, query=name, result=answer)

    @router.post(
        "/{id}/cancel",
        status_code=202,
        summary="Cancel a workflow",
        responses=responses(404, 409, 503),
    )
    async def cancel_workflow(orch: Scoped, id: WorkflowId) -> StopRequested:
        """Ask the run to stop: it runs its compensation and ends cancelled (watch its status
        or events)."""
        run = await find_run(orch, id)
        if run.closed:
            raise _closed(run)
        try:
            await run.handle.cancel()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise _closed(run) from None
            raise
        return StopRequested(id=run.id, run_id=run.run_id, status="cancel_requested")

    @router.post(
        "/{id}/terminate",
        summary="Terminate a workflow",
        responses=responses(400, 404, 409, 413, 422, 503),
    )
    async def terminate_workflow(
        orch: Scoped, id: WorkflowId, body: Annotated[TerminateWorkflow | None, Body()] = None
    ) -> StopRequested:
        """End the run on the server at once: no workflow code runs again, so no compensation
        happens (prefer cancel)."""
        run = await find_run(orch, id)
        if run.closed:
            raise _closed(run)
        reason = body.reason if body is not None else None
        try:
            await run.handle.terminate(reason=reason or "terminated through the REST API")
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise _closed(run) from None
            raise
        return StopRequested(id=run.id, run_id=run.run_id, status="terminated")

    # -- the use case framework's routes, as aliases -----------------------------------------

    @router.post(
        "/{name}/execute",
        status_code=201,
        summary="Start a workflow of a type (alias)",
        responses=START_RESPONSES,
    )
    async def execute_workflow(
        orch: Scoped,
        name: Annotated[str, Path(description="A graph's name or a workflow's type.")],
        response: Response,
        input: Annotated[Any, Body(description="The input.")] = None,
        id: Annotated[str | None, Query(min_length=1, max_length=255, pattern=ID_PATTERN)] = None,
        if_exists: IfExistsQuery = "use_existing",
    ) -> WorkflowRun:
        """``POST /workflows`` with ``type`` from the path and the body as ``input``."""
        run, created = await start_run(
            orch, name, input, id=id, if_exists=if_exists, where=("body",)
        )
        if not created:
            response.status_code = 200
        return run

    @router.get(
        "/{name}/status", summary="Show a workflow of a type (alias)", responses=responses(404, 503)
    )
    async def workflow_status(
        orch: Scoped,
        name: Annotated[str, Path(description="The workflow's type.")],
        id: Annotated[str, Query(min_length=1, description="The workflow id.")],
    ) -> WorkflowDetail:
        """``GET /workflows/{id}``, for a run of type ``name`` only (else 404)."""
        run = await find_run(orch, id)
        if run.type != name:
            raise Problem(
                404, "workflow_not_found", f"no workflow {id!r} of type {name!r}", workflow_id=id
            )
        return await _detail(orch, run)

    return router


_CHECK = 6
"""Bytes of SHA-256 a cursor carries after Temporal's page token: a cursor this API did not
give is refused at once, not sent to Temporal (which retries what it cannot parse)."""


def _cursor(token: bytes) -> str:
    return base64.urlsafe_b64encode(token + hashlib.sha256(token).digest()[:_CHECK]).decode()


def _token(cursor: str | None) -> bytes | None:
    if cursor is None:
        return None
    try:
        raw = base64.b64decode(cursor.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    token, check = raw[:-_CHECK], raw[-_CHECK:]
    if not token or hashlib.sha256(token).digest()[:_CHECK] != check:
        raise Problem(400, "invalid_cursor", "the cursor is not one this API gave")
    return token


def _closed(run: Run) -> Problem:
    return Problem(
        409,
        "workflow_closed",
        f"workflow {run.id!r} has ended ({run.status})",
        workflow_id=run.id,
        workflow_status=run.status,
    )


def _value_problems(schema: dict[str, Any] | None, value: Any) -> list[str]:
    """What is wrong with ``value`` for a signal whose argument has ``schema`` (None: the
    signal takes no argument)."""
    if schema is None:
        return [] if value is None else ["the value: this signal takes none"]
    return problems(schema, value)


async def _detail(orch: Orchestrator, run: Run) -> WorkflowDetail:
    result = error = None
    if run.closed and run.status != "continued_as_new":  # its result is its successor's
        outcome = await settle(run, None)
        if outcome is not None:
            result, error = outcome.result, outcome.error
    client = await connected(orch)
    timeline = await fetch_timeline(client, run.id, graphs=orch.registry.graphs)
    described = run.description
    return WorkflowDetail(
        id=run.id,
        run_id=run.run_id,
        type=run.type,
        status=run.status,
        task_queue=described.task_queue,
        start_time=described.start_time,
        close_time=described.close_time,
        result=result,
        error=error,
        timeline=TimelineBody.model_validate(timeline.to_dict()),
    )
