"""Replay recorded workflow histories with an orchestrator's code, as its worker would run them.

A worker that takes over an open run replays its history first; code that would issue other
commands than the history recorded cannot continue the run. Replaying histories of open (or
recent) runs before a deployment finds such a change while it can still be fixed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf.json_format import ParseError
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Interceptor, Replayer

from ._worker import create_worker

if TYPE_CHECKING:
    from .._orchestrator import Orchestrator

__all__ = [
    "ServedTypes",
    "describe_failure",
    "read_history",
    "replayer",
    "served_types",
    "workflow_type",
]

_STARTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED


def replayer(orch: Orchestrator, client: Client, **options: Any) -> Replayer:
    """A replayer with exactly the workflows and workflow settings of the worker that
    :func:`~belugaflow.temporal.create_worker` makes for ``orch`` on ``client``: its workflows
    (graphs by spec and by name, registered workflows), interceptors (the client's included,
    as a worker prepends them), sandbox runner, failure types and the client's data converter.

    The worker is built, never started: it polls nothing. ``options`` go to
    ``temporalio.worker.Replayer`` (e.g. ``runtime``).
    """
    worker = create_worker(client, orch)
    config = worker.config(active_config=True)
    # Worker prepends the client's interceptors that are worker interceptors (tracing);
    # its config lists only its own.
    from_client = [i for i in client.config()["interceptors"] if isinstance(i, Interceptor)]
    options.setdefault("namespace", client.namespace)
    return Replayer(
        workflows=config["workflows"],
        interceptors=[*from_client, *config.get("interceptors", ())],
        workflow_runner=config["workflow_runner"],
        unsandboxed_workflow_runner=config["unsandboxed_workflow_runner"],
        workflow_failure_exception_types=config.get("workflow_failure_exception_types", ()),
        debug_mode=config.get("debug_mode", False),
        disable_safe_workflow_eviction=config.get("disable_safe_workflow_eviction", False),
        data_converter=client.data_converter,
        **options,
    )


def read_history(path: str | Path) -> WorkflowHistory:
    """The history in ``path``: JSON as ``temporal workflow show --output json`` writes it, or
    as ``WorkflowHistory.to_json()``. Its workflow id is the one its first event records, or
    else the file name without ``.json``.

    Raises:
        ValueError: The file cannot be read or holds no workflow history; the message names
            the file and what is wrong.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ValueError(f"{path}: cannot read it: {reason}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON: {error}") from None
    try:
        history = WorkflowHistory.from_json(path.stem, data)
    except (ValueError, ParseError, TypeError, AttributeError) as error:
        # ValueError and ParseError name the problem; the others come from values of the
        # wrong JSON type inside an event.
        raise ValueError(f"{path}: not a workflow history: {error}") from None
    if not history.events or history.events[0].event_type != _STARTED:
        first = EventType.Name(history.events[0].event_type) if history.events else "none"
        raise ValueError(
            f"{path}: not a whole workflow history: its first event is {first}, not"
            " WORKFLOW_EXECUTION_STARTED"
        )
    recorded = history.events[0].workflow_execution_started_event_attributes.workflow_id
    return WorkflowHistory(recorded, history.events) if recorded else history


def workflow_type(history: WorkflowHistory) -> str:
    """The workflow type a history is of (its first event says)."""
    started = history.events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name


@dataclass(frozen=True)
class ServedTypes:
    """The workflow types a worker serves: its workflows' names, and by name the graphs of
    the registry (``NamedGraphWorkflow``); ``everything`` when a dynamic workflow of the app
    takes any type."""

    names: frozenset[str]
    graphs: frozenset[str]
    """The names that are graphs by name."""
    everything: bool = False

    def __contains__(self, name: object) -> bool:
        return self.everything or name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.names))


def served_types(orch: Orchestrator, replay: Replayer) -> ServedTypes:
    """The workflow types ``replay`` (made by :func:`replayer` for ``orch``) can replay."""
    from ._workflow import NamedGraphWorkflow

    names: set[str] = set()
    graphs: frozenset[str] = frozenset()
    everything = False
    for cls in replay.config()["workflows"]:
        definition = getattr(cls, "__temporal_workflow_definition", None)
        name = getattr(definition, "name", None)
        if name is not None:
            names.add(name)
        elif cls is NamedGraphWorkflow:
            graphs = frozenset(orch.registry.graphs)
        else:
            everything = True
    return ServedTypes(frozenset(names | graphs), graphs, everything)


# The SDK reports a failed workflow task as the Debug text of core's Failure struct:
# `... Failure { failure: Some(Failure { message: "…", … r#type: "RuntimeError", … }`.
_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_TYPE = re.compile(r'r#type: "((?:[^"\\]|\\.)*)"')
_ESCAPES = {"n": " ", "t": " ", '"': '"', "'": "'", "\\": "\\"}


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def describe_failure(error: BaseException) -> str:
    """One line for a replay failure: the SDK's own words (for a non-determinism error, which
    event of the history and which command of the code disagree), without the wrapping."""
    text = str(error)
    message = _MESSAGE.search(text)
    if message is None:
        lines = text.strip().splitlines()
        return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    said = _unescape(message.group(1))
    if isinstance(error, workflow.NondeterminismError):
        return said
    kind = _TYPE.search(text)
    raised = _unescape(kind.group(1)) if kind else ""
    return f"the workflow task failed: {raised}: {said}" if raised else said
