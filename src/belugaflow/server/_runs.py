"""Runs as the API shows them: found by id, started by type, settled into a result or an
error. Thin glue between the routes and the :class:`~belugaflow.Orchestrator`; Temporal's
errors become :class:`~._problems.Problem`\\ s here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowFailureError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TerminatedError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import (
    TimeoutError as TemporalTimeoutError,
)
from temporalio.service import RPCError, RPCStatusCode

from .._errors import InputError, RunError
from ..graph import GraphSpec
from ..temporal._client import status_name
from ..temporal._connect import TemporalConnectionError
from ..temporal._engine import DurableRun
from ..temporal._messages import GRAPH_WORKFLOW
from ._models import RunErrorBody, Status, WorkflowRun
from ._problems import Problem, field_errors, responses

if TYPE_CHECKING:
    from temporalio.client import WorkflowHandle

    from .._orchestrator import Orchestrator

__all__ = [
    "START_RESPONSES",
    "Outcome",
    "Run",
    "connected",
    "find_run",
    "run_schema",
    "settle",
    "start_run",
]

START_RESPONSES = responses(
    400, 404, 409, 413, 422, 503,
    ok={200: {"model": WorkflowRun, "description": "The id had started this run"}},
)  # fmt: skip
"""What a route that starts a run answers (every start route: one documented contract)."""

_CLOSED_CODES = {
    "canceled": "run_cancelled",
    "terminated": "run_terminated",
    "timed_out": "run_timeout",
}


async def connected(orch: Orchestrator) -> Client:
    """The orchestrator's client; a ``503`` problem when Temporal cannot be reached."""
    try:
        return await orch.client()
    except TemporalConnectionError as error:  # names the address and what to check already
        raise Problem(503, "temporal_unavailable", str(error)) from None
    except Exception as error:
        raise Problem(
            503,
            "temporal_unavailable",
            f"cannot reach Temporal at {orch.temporal_address}: {error}",
        ) from None


@dataclass(frozen=True, slots=True)
class Run:
    """A workflow as found by its id (its latest run)."""

    handle: WorkflowHandle[Any, Any]
    """Bound to the run."""
    description: WorkflowExecutionDescription
    type: str
    """The graph's name, for a graph run (one started with its spec too); else the workflow
    type."""
    spec: GraphSpec | None
    """The graph, for a run of a graph the orchestrator holds (at the run's version)."""
    status: Status

    @property
    def id(self) -> str:
        return self.description.id

    @property
    def run_id(self) -> str:
        return self.description.run_id

    @property
    def closed(self) -> bool:
        return self.status != "running"


async def find_run(orch: Orchestrator, id: str) -> Run:
    """The workflow ``id``; a ``404`` problem (``workflow_not_found``) if there is none."""
    client = await connected(orch)
    try:
        description = await client.get_workflow_handle(id).describe()
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise Problem(
                404, "workflow_not_found", f"no workflow with id {id!r}", workflow_id=id
            ) from None
        raise
    try:
        memo = await description.memo()
    except Exception:  # a memo this client cannot decode: no graph known
        memo = {}
    workflow_type = description.workflow_type
    name, version = memo.get("graph"), memo.get("version")
    run_type = workflow_type
    spec = None
    if isinstance(name, str) and workflow_type in (name, GRAPH_WORKFLOW):
        run_type = name
        if isinstance(version, int):
            spec = orch.registry.graph(name, version)
    elif workflow_type in orch.registry.graphs:  # started by a client that set no memo
        versions = orch.registry.graphs[workflow_type]
        spec = versions[max(versions)]
    handle = client.get_workflow_handle(id, run_id=description.run_id)
    status: Status = _status(description)
    return Run(handle, description, run_type, spec, status)


def _status(description: WorkflowExecutionDescription) -> Status:
    name = status_name(description.status)
    return name if name in get_args(Status) else "running"  # type: ignore[return-value]


def run_schema(orch: Orchestrator, run: Run) -> dict[str, Any] | None:
    """The published schema of ``run``'s type (its graph's version), if known."""
    if run.spec is not None:
        return run.spec.schema()
    if orch.types().get(run.type) == "workflow":
        return orch.schemas().get(run.type)
    return None


async def start_run(
    orch: Orchestrator,
    type: str,
    input: Any,
    *,
    id: str | None,
    if_exists: Literal["use_existing", "fail"],
    where: tuple[str, ...],
) -> tuple[WorkflowRun, bool]:
    """Start a run of ``type`` and say whether this request created it; ``where`` is where
    the input sits in the request (``("body", "input")``), for field errors.

    Raises:
        Problem: ``404`` unknown type, ``422`` invalid input (nothing started), ``409`` the id
            is taken (``if_exists="fail"``, or by a run of another type).
    """
    await connected(orch)
    types = orch.types()
    if type not in types:
        known = ", ".join(sorted(types)) or "none"
        raise Problem(
            404,
            "unknown_type",
            f"no workflow type {type!r} (known: {known})",
            workflow_type=type,
        )
    try:
        started = await orch.start_type(type, input, id=id, if_exists=if_exists)
    except InputError as error:
        raise Problem(
            422,
            InputError.code,
            f"{error.subject} is invalid; nothing was started",
            errors=field_errors(error.problems, where),
        ) from None
    except WorkflowAlreadyStartedError as error:
        raise Problem(
            409,
            "workflow_exists",
            f"workflow id {id!r} is taken (if_exists=use_existing returns its run)",
            workflow_id=id,
            run_id=error.run_id,
        ) from None
    handle = started.handle
    if started.created:
        run_id = handle.run_id or handle.result_run_id or ""
        return WorkflowRun(id=handle.id, run_id=run_id, type=type, status="running"), True
    run = await find_run(orch, handle.id)
    if run.type != type:
        raise Problem(
            409,
            "id_conflict",
            f"workflow id {handle.id!r} belongs to a run of {run.type!r}, not {type!r}",
            workflow_id=handle.id,
            workflow_type=run.type,
        )
    return WorkflowRun(id=run.id, run_id=run.run_id, type=run.type, status=run.status), False


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended."""

    status: Status
    result: Any = None
    error: RunErrorBody | None = None


async def settle(run: Run, wait: float | None) -> Outcome | None:
    """``run``'s result or error, waiting up to ``wait`` seconds (None: until it ends) for a
    running one; None if it is still running then."""
    waiting = DurableRun(run.handle, run.spec).result() if run.spec else run.handle.result()
    try:
        result = await asyncio.wait_for(waiting, wait)
    except TimeoutError:
        return None
    except (RunError, WorkflowFailureError) as error:
        status = run.status
        if status == "running":  # it ended while we waited
            status = _status(await run.handle.describe())
        return Outcome(status, error=_error(error, status))
    return Outcome("completed", result)


def _error(error: RunError | WorkflowFailureError, status: Status) -> RunErrorBody:
    if isinstance(error, RunError):
        code, kind, node = error.code, type(error).__name__, error.node
    else:
        cause: BaseException | None = error.cause
        while isinstance(cause, ActivityError) and cause.cause is not None:
            cause = cause.cause
        node = None
        if isinstance(cause, ApplicationError):
            code, kind = "workflow_failed", cause.type or "ApplicationError"
        elif isinstance(cause, CancelledError | TerminatedError | TemporalTimeoutError):
            code, kind = "workflow_failed", type(cause).__name__
        else:
            code, kind = "workflow_failed", type(cause or error).__name__
    code = _CLOSED_CODES.get(status, code)
    return RunErrorBody(code=code, message=_message(error), error_type=kind, node=node)


def _message(error: BaseException) -> str:
    """The error's message, then its causes': ``outer <- inner <- innermost``."""
    parts = [str(error) or type(error).__name__]
    cause = error.__cause__
    while cause is not None and len(parts) < 5:
        text = str(cause)
        if text and text not in parts[-1]:
            parts.append(text)
        cause = cause.__cause__
    return " <- ".join(parts)
