"""Client-side helpers: start workflows idempotently by id, and list them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

__all__ = ["IfExists", "WorkflowSummary", "list_workflows", "start_workflow"]

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
    reuse = options.pop("id_reuse_policy", WorkflowIDReusePolicy.REJECT_DUPLICATE)
    conflict = (
        WorkflowIDConflictPolicy.USE_EXISTING
        if if_exists == "use_existing"
        else WorkflowIDConflictPolicy.FAIL
    )
    try:
        started = await client.start_workflow(
            workflow,
            arg,
            id=id,
            task_queue=task_queue,
            id_reuse_policy=reuse,
            id_conflict_policy=options.pop("id_conflict_policy", conflict),
            **options,
        )
        run_id = started.result_run_id
    except WorkflowAlreadyStartedError:
        if if_exists == "fail":
            raise
        run_id = (await client.get_workflow_handle(id).describe()).run_id
    # A handle bound to the run, so ``handle.run_id`` is known and signals reach that run.
    if callable(workflow):
        return client.get_workflow_handle_for(workflow, id, run_id=run_id)
    return client.get_workflow_handle(id, run_id=run_id)


async def list_workflows(
    client: Client, *, status: str | None = None, limit: int = 100
) -> list[WorkflowSummary]:
    """The newest workflow executions, optionally only those with ``status``.

    Raises:
        ValueError: ``status`` is not one of the known statuses.
    """
    query = None
    if status is not None:
        if status not in _STATUS:
            raise ValueError(f"unknown status {status!r}; expected one of {', '.join(_STATUS)}")
        query = f"ExecutionStatus = '{_STATUS[status]}'"
    names = {v: k for k, v in _STATUS.items()}
    found = []
    async for execution in client.list_workflows(query, limit=limit):
        state = execution.status or WorkflowExecutionStatus.RUNNING
        found.append(
            WorkflowSummary(
                id=execution.id,
                run_id=execution.run_id,
                workflow_type=execution.workflow_type,
                status=names.get(_pascal(state.name), state.name.lower()),
                task_queue=execution.task_queue,
                start_time=execution.start_time,
                close_time=execution.close_time,
            )
        )
    return found


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
