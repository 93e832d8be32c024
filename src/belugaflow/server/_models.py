"""The API's request and response bodies, as pydantic models: they are the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "GraphDetail",
    "GraphItem",
    "GraphRegistered",
    "MemoryDeleted",
    "MemoryEntries",
    "MemoryEntry",
    "NodeRow",
    "QueryAnswer",
    "RunErrorBody",
    "RunGraph",
    "SignalAccepted",
    "SignalInfo",
    "StartWorkflow",
    "Status",
    "StopRequested",
    "TerminateWorkflow",
    "TimelineBody",
    "WorkflowDetail",
    "WorkflowItem",
    "WorkflowList",
    "WorkflowResult",
    "WorkflowRun",
]

Status = Literal[
    "running", "completed", "failed", "canceled", "terminated", "timed_out", "continued_as_new"
]
"""A workflow's status, as Temporal's visibility names them."""

IfExists = Literal["use_existing", "fail"]

ID_PATTERN = r"^[^/]+$"
"""A workflow id the API starts: anything but ``/`` (ids travel in URL paths)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartWorkflow(_Strict):
    """What to start."""

    type: str = Field(
        min_length=1,
        description="A graph's name (GET /graphs) or a hand-written workflow's type.",
        examples=["order-processing"],
    )
    input: Any = Field(
        default=None,
        description="The input, checked against the type's published input schema.",
        examples=[{"order_id": "A-1", "product_id": "prod-1", "quantity": 2}],
    )
    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=ID_PATTERN,
        description="The workflow id and idempotency key; default a fresh one.",
    )


class TerminateWorkflow(_Strict):
    """Why the run is terminated (recorded in its history)."""

    reason: str | None = Field(default=None, max_length=1000)


class WorkflowRun(BaseModel):
    """A run that was started (201) or found under its id (200)."""

    id: str = Field(description="The workflow id.")
    run_id: str = Field(description="Temporal's id of this run of the workflow.")
    type: str = Field(description="The graph's name or the workflow's type.")
    status: Status


class WorkflowItem(WorkflowRun):
    """A workflow, as listed."""

    task_queue: str
    start_time: datetime
    close_time: datetime | None = None


class WorkflowList(BaseModel):
    """One page of workflows, newest first."""

    items: list[WorkflowItem]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null after the last one."
    )


class RunErrorBody(BaseModel):
    """Why a run failed."""

    code: str = Field(
        description="Stable: node_failed, run_timeout, run_cancelled, run_terminated,"
        " workflow_failed (a hand-written workflow's error)..."
    )
    message: str
    error_type: str | None = Field(
        default=None, description="The error's type: NodeFailedError, NonRetryableError..."
    )
    node: str | None = Field(default=None, description="The node that failed, for a graph.")


class NodeRow(BaseModel):
    """One node (or a hand-written workflow's activity) of a run."""

    node: str
    outcome: str = Field(
        description="completed, failed, retrying, running, waiting, parked, skipped, cancelled"
    )
    attempts: int
    start: datetime | None = None
    end: datetime | None = None
    error: str | None = None


class TimelineBody(BaseModel):
    """What a run did, node by node (as ``belugaflow workflows show --json`` prints it)."""

    run_id: str
    graph: str
    status: str = Field(
        description="running, completed, failed, cancelled, terminated, timed_out..."
    )
    start: datetime | None = None
    end: datetime | None = None
    nodes: list[NodeRow]
    mermaid: str | None = Field(default=None, description="The graph, coloured by outcome.")


class WorkflowDetail(WorkflowItem):
    """A workflow: its status, its result or error once it ended, and its timeline."""

    result: Any = Field(default=None, description="The result, once completed.")
    error: RunErrorBody | None = Field(default=None, description="Why it failed, if it did.")
    timeline: TimelineBody


class WorkflowResult(BaseModel):
    """A run's result (200), or that it is still running (202)."""

    id: str
    run_id: str
    status: Status
    result: Any = None


class SignalAccepted(BaseModel):
    """The signal reached the run (it takes or drops it; see its progress)."""

    id: str
    run_id: str
    signal: str
    status: Literal["accepted"] = "accepted"


class QueryAnswer(BaseModel):
    """A query's answer."""

    id: str
    run_id: str
    query: str
    result: Any = None


class StopRequested(BaseModel):
    """A cancel was asked for (202), or the run was terminated (200)."""

    id: str
    run_id: str
    status: Literal["cancel_requested", "terminated"]


class GraphItem(BaseModel):
    """A graph the app's workers run: each is a workflow type of its name."""

    name: str
    version: int = Field(description="The newest version.")
    versions: list[int]
    source: Literal["code", "api"] = Field(
        description="Built in the app's code, or registered through POST /graphs."
    )
    signals: list[str] = Field(description="The signals its wait nodes wait for.")


class GraphDetail(GraphItem):
    """A graph at one version: its spec, its published schema and its drawing."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    spec: dict[str, Any] = Field(description="GraphSpec.to_dict(): what POST /graphs takes.")
    published: dict[str, Any] = Field(
        alias="schema",
        description="JSON Schemas of the input, result, signals, updates and queries.",
    )
    mermaid: str


class GraphRegistered(BaseModel):
    """A graph registered (201), or found registered already (200)."""

    name: str
    version: int
    created: bool


class SignalInfo(BaseModel):
    """A signal a run takes."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    name: str
    schema_: dict[str, Any] | None = Field(
        alias="schema", description="JSON Schema of its value; null: it takes none."
    )
    waits: list[str] = Field(description="The wait nodes that wait for it.")


class RunGraph(BaseModel):
    """What a run's page draws: the run's graph, and the signals the run takes."""

    id: str
    run_id: str
    type: str
    svg: str | None = Field(
        description="The graph drawn (SVG; each node a <g data-node=NAME>); null for a"
        " hand-written workflow."
    )
    signals: list[SignalInfo]


class MemoryEntry(BaseModel):
    """One thing remembered under a scope."""

    id: str = Field(description="The entry's id (its idempotency key).")
    scope: str
    kind: str = Field(description="What sort of entry: 'note', 'order', 'decision', 'step'...")
    text: str
    data: dict[str, Any] = Field(description="JSON details kept beside the text.")
    created: float = Field(description="When it was saved, in Unix seconds.")


class MemoryEntries(BaseModel):
    """A scope's newest entries, oldest first."""

    scope: str
    total: int = Field(description="How many entries the scope holds (``entries`` may be fewer).")
    entries: list[MemoryEntry]


class MemoryDeleted(BaseModel):
    """How many entries were deleted."""

    deleted: int
