"""Client-side helpers: start workflows idempotently by id, and list them (all at once, or a page
at a time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from ._messages import GRAPH_WORKFLOW

__all__ = [
    "STATUSES",
    "IfExists",
    "Started",
    "WorkflowSummary",
    "list_page",
    "list_workflows",
    "start_once",
    "start_workflow",
    "status_name",
]

IfExists = Literal["use_existing", "fail"]

_STATUS = {
    "running": "Running",
    "completed": "Completed",
    "failed": "Failed",
    "canceled": "Canceled",
    "terminated": "Terminated",
    "timed_out": "TimedOut",
    "continued_as_new": "ContinuedAsNew",
}
STATUSES: tuple[str, ...] = tuple(_STATUS)
"""The statuses a workflow execution can have, as belugaflow names them."""


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    """One workflow execution, as listed."""

    id: str
    run_id: str
    workflow_type: str
    status: str
    """``running``, ``completed``, ``failed``, ``canceled``, ``terminated``, ``timed_out`` or
    ``continued_as_new``."""
    task_queue: str
    start_time: datetime
    close_time: datetime | None
    graph: str | None = None
    """For a run of ``belugaflow.graph`` (a graph started with its spec in its input): the
    graph's name, from the run's memo; else None."""

    @property
    def type(self) -> str:
        """What the run is of: its graph's name for a run started with its spec, else its
        workflow type."""
        return self.graph if self.graph is not None else self.workflow_type


@dataclass(frozen=True, slots=True)
class Started:
    """What a start by id did: the run's handle, and whether this call started it."""

    handle: WorkflowHandle[Any, Any]
    """Bound to the run: ``run_id`` is known, and signals reach that run."""
    created: bool
    """False: the id had already started a run (running or closed), and the handle is its."""


async def start_workflow(
    client: Client,
    workflow: Any,
    arg: Any,
    *,
    id: str,
    task_queue: str,
    if_exists: IfExists = "use_existing",
    **options: Any,
) -> WorkflowHandle[Any, Any]:
    """Start ``workflow`` once per ``id``: the workflow id is the idempotency key.

    With ``if_exists="use_existing"`` (the default) starting an id that is running or has
    already run returns that execution's handle instead of starting a second run; ``"fail"``
    raises ``WorkflowAlreadyStartedError``. ``options`` go to ``Client.start_workflow``.
    """
    started = await start_once(
        client, workflow, arg, id=id, task_queue=task_queue, if_exists=if_exists, **options
    )
    return started.handle


async def start_once(
    client: Client,
    workflow: Any,
    arg: Any,
    *,
    id: str,
    task_queue: str,
    if_exists: IfExists = "use_existing",
    **options: Any,
) -> Started:
    """:func:`start_workflow`, saying whether this call started the run.

    The server refuses a second start of an id (running or closed) atomically, so of two
    concurrent starts of one id exactly one creates the run; the other gets its handle
    (``use_existing``) or ``WorkflowAlreadyStartedError`` (``fail``).
    """
    reuse = options.pop("id_reuse_policy", WorkflowIDReusePolicy.REJECT_DUPLICATE)
    # FAIL, then the existing run's handle: the server's USE_EXISTING would not say which.
    conflict = options.pop("id_conflict_policy", WorkflowIDConflictPolicy.FAIL)
    try:
        started = await client.start_workflow(
            workflow,
            arg,
            id=id,
            task_queue=task_queue,
            id_reuse_policy=reuse,
            id_conflict_policy=conflict,
            **options,
        )
        run_id, created = started.result_run_id, True
    except WorkflowAlreadyStartedError as error:
        if if_exists == "fail":
            raise
        run_id, created = error.run_id, False
        if not run_id:
            run_id = (await client.get_workflow_handle(id).describe()).run_id
    # A handle bound to the run, so ``handle.run_id`` is known and signals reach that run.
    if callable(workflow):
        return Started(client.get_workflow_handle_for(workflow, id, run_id=run_id), created)
    return Started(client.get_workflow_handle(id, run_id=run_id), created)


async def list_workflows(
    client: Client, *, status: str | None = None, limit: int = 100
) -> list[WorkflowSummary]:
    """The newest workflow executions, optionally only those with ``status``.

    Raises:
        ValueError: ``status`` is not one of the known statuses.
    """
    found = []
    async for execution in client.list_workflows(_query(status, None, False), limit=limit):
        found.append(await _summary(execution))
    return found


async def list_page(
    client: Client,
    *,
    status: str | None = None,
    type: str | None = None,
    spec_runs: bool = False,
    limit: int = 100,
    page_token: bytes | None = None,
) -> tuple[list[WorkflowSummary], bytes | None]:
    """One page of workflow executions, newest first, and the token of the next page (None
    after the last one).

    ``type`` keeps runs of that workflow type; with ``spec_runs``, also the runs of
    ``belugaflow.graph`` whose memo names graph ``type`` (a graph started with its spec):
    Temporal cannot filter on a memo, so those are filtered here, and such a page may hold
    fewer than ``limit`` runs even when more follow.

    Raises:
        ValueError: ``status`` is not a known status, or ``type`` holds a quote, a backslash or
            a control character (none can be in a query).
    """
    query = _query(status, type, spec_runs)
    pages = client.list_workflows(query, page_size=limit, next_page_token=page_token)
    await pages.fetch_next_page(page_size=limit)
    found = [await _summary(execution) for execution in pages.current_page or ()]
    if type is not None:
        found = [summary for summary in found if summary.type == type]
    return found, pages.next_page_token or None


def _query(status: str | None, type: str | None, spec_runs: bool) -> str | None:
    clauses = []
    if status is not None:
        if status not in _STATUS:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(_STATUS)}")
        clauses.append(f"ExecutionStatus = '{_STATUS[status]}'")
    if type is not None:
        if any(c in "'\"\\" or ord(c) < 32 or c == "\x7f" for c in type):
            raise ValueError(
                f"a workflow type to filter by has no quotes, backslashes or control characters:"
                f" {type!r}"
            )
        clause = f"WorkflowType = '{type}'"
        if spec_runs:
            clause = f"({clause} OR WorkflowType = '{GRAPH_WORKFLOW}')"
        clauses.append(clause)
    return " AND ".join(clauses) or None


_NAMES = {v: k for k, v in _STATUS.items()}


def status_name(status: WorkflowExecutionStatus | None) -> str:
    """The status as belugaflow names it (:data:`STATUSES`); None is ``running``."""
    state = status or WorkflowExecutionStatus.RUNNING
    return _NAMES.get(_pascal(state.name), state.name.lower())


async def _summary(execution: WorkflowExecution) -> WorkflowSummary:
    graph = None
    if execution.workflow_type == GRAPH_WORKFLOW:
        name = (await execution.memo()).get("graph")
        graph = name if isinstance(name, str) else None
    return WorkflowSummary(
        id=execution.id,
        run_id=execution.run_id,
        workflow_type=execution.workflow_type,
        status=status_name(execution.status),
        task_queue=execution.task_queue,
        start_time=execution.start_time,
        close_time=execution.close_time,
        graph=graph,
    )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
