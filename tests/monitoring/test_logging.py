"""Structured logs: each record names its graph, node and run (in process, in a durable node
activity, in ``belugaflow worker``), its trace and span; levels come from the config; no
secret — of the config, or an LLM key the SDKs send — is ever written, at DEBUG, in JSON or
text."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from tests.llms.fake_anthropic import fake_anthropic
from tests.llms.fake_openai import error, fake_openai
from tests.llms.fake_server import FakeServer, running
from tests.temporal.fault_app import WorkerProcess

from belugaflow import Event, NodeFailedError, Orchestrator, RetryableError, RetryPolicy, _context
from belugaflow.config import ConfigError, load_config_text
from belugaflow.llms import HumanMessage, chat_model_from_config
from belugaflow.monitoring import (
    LogContextFilter,
    configure_logging,
    configure_logging_from_config,
)
from belugaflow.resilience import BreakerRegistry
from belugaflow.temporal import DevServer, run_worker
from belugaflow.temporal._engine import TemporalEngine

log = logging.getLogger("tests.logging")

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test leaves the root logger's handlers and every logger's level as it found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, logger in logging.Logger.manager.loggerDict.items():
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


@pytest.fixture
def output() -> io.StringIO:
    """Where the configured handler writes."""
    return io.StringIO()


@pytest.fixture
def json_lines(output: io.StringIO) -> Lines:
    """Every line written so far, each parsed as one JSON object."""
    return lambda: [json.loads(line) for line in output.getvalue().splitlines()]


def by_message(lines: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """The one record whose message starts with ``text``."""
    (found,) = [line for line in lines if line["message"].startswith(text)]
    return found


# --- in process ----------------------------------------------------------------------------------


async def test_json_lines_name_graph_node_and_run_in_process(
    output: io.StringIO, json_lines: Lines
) -> None:
    """A log call in a plain, an async, a blocking node and a thread an async node starts
    writes a JSON object naming the graph, the node and the run id its events carry."""
    configure_logging(format="json", stream=output)
    events: list[Event] = []
    orch = Orchestrator(hooks=[events.append], metrics=False)

    def validate(state: dict[str, Any]) -> dict[str, Any]:
        log.info("validating", extra={"order": state["order"]})
        return {"valid": True}

    async def reserve(state: dict[str, Any]) -> dict[str, Any]:
        log.info("reserving")
        await asyncio.to_thread(log.info, "reserving in a thread")
        return {"reserved": True}

    def charge(state: dict[str, Any]) -> dict[str, Any]:
        log.info("charging")
        return {"charged": True}

    graph = orch.create_graph("orders")
    graph.add_node("validate", validate).add_node("reserve", reserve)
    graph.add_node("charge", charge, blocking=True)
    graph.add_edge("validate", "reserve").add_edge("reserve", "charge")
    graph.set_entry_point("validate").set_finish_point("charge")
    await graph.compile().ainvoke({"order": "o-1"})
    log.info("after the run")

    (run_id,) = {event.run_id for event in events}
    lines = json_lines()
    for message, node in [
        ("validating", "validate"),
        ("reserving", "reserve"),
        ("reserving in a thread", "reserve"),
        ("charging", "charge"),
    ]:
        (line,) = [line for line in lines if line["message"] == message]
        assert (line["graph"], line["node"], line["run_id"]) == ("orders", node, run_id), line
        assert line["level"] == "INFO" and line["logger"] == "tests.logging"
        assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    assert by_message(lines, "validating")["order"] == "o-1"  # an extra= field
    after = by_message(lines, "after the run")
    assert not {"graph", "node", "run_id"} & after.keys()  # outside any node: none


def test_a_sync_run_without_hooks_names_graph_and_node_but_no_run(
    output: io.StringIO, json_lines: Lines
) -> None:
    """Without an event hook an in-process run makes no id: records name graph and node only.
    Chain steps are named like nodes."""
    configure_logging(format="json", stream=output)
    orch = Orchestrator(metrics=False)
    graph = orch.create_graph("quiet").add_node("only", lambda s: log.info("graph node") or {})
    graph.set_entry_point("only").set_finish_point("only")
    graph.compile().invoke({})

    def step(value: int) -> int:
        log.info("chain step")
        return value + 1

    assert orch.create_chain([step], name="counter").invoke(1) == 2
    node = by_message(json_lines(), "graph node")
    assert (node["graph"], node["node"]) == ("quiet", "only") and "run_id" not in node
    chained = by_message(json_lines(), "chain step")
    assert chained["graph"] == "counter" and "run_id" not in chained


def test_every_attempt_is_named_and_the_name_goes_away_after(
    output: io.StringIO, json_lines: Lines
) -> None:
    """A plain node of a run without hooks that fails once is named on both attempts, and on
    its last failure; after the run, nothing is named."""
    configure_logging(format="json", stream=output)
    attempts: list[int] = []

    def flaky(state: dict[str, Any]) -> dict[str, Any]:
        attempts.append(1)
        log.info("attempt %d", len(attempts))
        if len(attempts) < 2 or state.get("always"):
            raise RetryableError("busy")
        return {}

    orch = Orchestrator(metrics=False)
    graph = orch.create_graph("flaky").add_node(
        "f", flaky, retry=RetryPolicy(max_attempts=2, initial_interval=0.001, jitter=0)
    )
    compiled = graph.set_entry_point("f").set_finish_point("f").compile()
    compiled.invoke({})
    with pytest.raises(NodeFailedError):
        compiled.invoke({"always": True})
    log.info("after")
    lines = json_lines()
    assert [(line["message"], line.get("node")) for line in lines] == [
        ("attempt 1", "f"),
        ("attempt 2", "f"),
        ("attempt 3", "f"),
        ("attempt 4", "f"),
        ("after", None),
    ]
    assert _context.current() is None


def test_text_lines_carry_the_same_fields(output: io.StringIO) -> None:
    """The text format writes one line per record with ``key=value`` fields, then the
    traceback."""
    configure_logging(stream=output)
    events: list[Event] = []
    graph = Orchestrator(hooks=[events.append], metrics=False).create_graph("text graph")

    def fail_softly(state: dict[str, Any]) -> dict[str, Any]:
        try:
            raise ValueError("soft")
        except ValueError:
            log.exception("caught")
        return {}

    graph.add_node("n", fail_softly).set_entry_point("n").set_finish_point("n")
    graph.compile().invoke({})
    first, *traceback = output.getvalue().splitlines()
    assert (
        f' ERROR    tests.logging: caught graph="text graph" node=n run_id={events[0].run_id}'
        in (first)
    )
    assert traceback[0] == "Traceback (most recent call last):" and traceback[-1].endswith("soft")


# --- traces ---------------------------------------------------------------------------------------


def test_trace_and_span_ids_of_the_current_span(output: io.StringIO, json_lines: Lines) -> None:
    """A record made while an OpenTelemetry span is current carries its trace and span ids,
    in OpenTelemetry's hex form; none outside a span. (The API alone suffices: the span is
    made from a context.)"""
    trace = pytest.importorskip("opentelemetry.trace")
    configure_logging(format="json", stream=output)
    context = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331, is_remote=False
    )
    with trace.use_span(trace.NonRecordingSpan(context)):
        log.info("in a span")
    log.info("outside")
    inside = by_message(json_lines(), "in a span")
    assert inside["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert inside["span_id"] == "b7ad6b7169203331"
    assert "trace_id" not in by_message(json_lines(), "outside")


async def test_trace_ids_of_a_real_tracer_inside_a_node(
    output: io.StringIO, json_lines: Lines
) -> None:
    """With the OpenTelemetry SDK, a node that logs inside a span names that span and its
    node."""
    sdk_trace = pytest.importorskip(
        "opentelemetry.sdk.trace", reason="opentelemetry-sdk is not installed yet"
    )
    configure_logging(format="json", stream=output)
    tracer = sdk_trace.TracerProvider().get_tracer("tests")

    def traced(state: dict[str, Any]) -> dict[str, Any]:
        with tracer.start_as_current_span("work") as span:
            log.info("traced")
            context = span.get_span_context()
        return {"ids": (f"{context.trace_id:032x}", f"{context.span_id:016x}")}

    graph = Orchestrator(metrics=False).create_graph("traced").add_node("t", traced)
    state = await graph.set_entry_point("t").set_finish_point("t").compile().ainvoke({})
    line = by_message(json_lines(), "traced")
    assert (line["trace_id"], line["span_id"]) == state["ids"] and line["node"] == "t"


# --- levels --------------------------------------------------------------------------------------


def test_levels_come_from_the_config(output: io.StringIO, json_lines: Lines) -> None:
    """``monitoring.logging.level`` sets the root logger's level, ``levels`` single loggers'
    (and those below them)."""
    config = load_config_text(
        "monitoring:\n"
        "  logging: {level: warning, format: json, levels: {tests.logging.chatty: debug}}\n",
        env={},
    )
    configure_logging_from_config(config, stream=output)
    log.info("dropped")
    log.warning("kept")
    logging.getLogger("tests.logging.chatty.deep").debug("kept too")
    assert [line["message"] for line in json_lines()] == ["kept", "kept too"]


def test_levels_from_the_config_in_text(output: io.StringIO) -> None:
    """The format key chooses text; the level still applies."""
    config = load_config_text("monitoring: {logging: {level: ERROR}}", env={})
    configure_logging_from_config(config, stream=output)
    log.warning("dropped")
    log.error("kept")
    (line,) = output.getvalue().splitlines()
    assert line.endswith(" ERROR    tests.logging: kept")


def test_a_second_configuration_replaces_the_first(output: io.StringIO) -> None:
    """Calling ``configure_logging`` again swaps its handler and per-logger levels; other
    handlers stay."""
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    first = configure_logging(levels={"tests.logging": "ERROR"}, stream=io.StringIO())
    second = configure_logging(format="json", stream=output)
    handlers = logging.getLogger().handlers
    assert second in handlers and first not in handlers and other in handlers
    assert logging.getLogger("tests.logging").level == logging.NOTSET
    log.info("once")
    assert len(output.getvalue().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("{level: loud}", "monitoring.logging.level", "invalid log level 'loud'"),
        ("{level: 10}", "monitoring.logging.level", "invalid log level 10"),
        ("{format: xml}", "monitoring.logging.format", "'text' or 'json'"),
        ("{levels: {temporalio: nope}}", "monitoring.logging.levels.temporalio", "'nope'"),
        ("{levels: {'': INFO}}", "monitoring.logging.levels", "must not be empty"),
        ("{json: true}", "monitoring.logging.json", "unknown key"),
    ],
)
def test_bad_logging_settings_are_named(text: str, key: str, problem: str) -> None:
    """A bad level, format or logger name is an error naming the key and the value."""
    with pytest.raises(ConfigError) as info:
        load_config_text(f"monitoring: {{logging: {text}}}", env={})
    assert key in str(info.value) and problem in str(info.value)


def test_bad_levels_in_code_are_named() -> None:
    """``configure_logging`` refuses an unknown level or format before touching logging."""
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(ValueError, match=r"levels\['temporalio'\]: invalid log level 'LOUD'"):
        configure_logging(levels={"temporalio": "LOUD"})
    with pytest.raises(ValueError, match="format"):
        configure_logging(format="xml")  # type: ignore[arg-type]
    assert logging.getLogger().handlers == handlers


# --- secrets -------------------------------------------------------------------------------------


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    yield from running(fake_openai())


@pytest.fixture
def anthropic_server() -> Iterator[FakeServer]:
    yield from running(fake_anthropic())


@pytest.mark.parametrize("format", ["json", "text"])
async def test_no_secret_is_ever_logged(
    format: str, output: io.StringIO, openai_server: FakeServer, anthropic_server: FakeServer
) -> None:
    """At DEBUG for everything (belugaflow, openai, anthropic, httpx, httpcore), a node makes a
    model call through the config's providers (OpenAI fails, Anthropic answers) and logs the
    config, the keys in headers, an extra and an exception: neither key is ever written, and
    the SDKs' records name the node that made the call."""
    openai_key = "sk-proj-" + secrets.token_urlsafe(36)
    anthropic_key = "anthropic-" + secrets.token_hex(16)  # not key-shaped: known from the config
    config = load_config_text(
        f"""
llm:
  provider: openai
  fallbacks: [anthropic]
  openai:
    api_key: "${{OPENAI_API_KEY}}"
    base_url: "{openai_server.url}/v1"
    model: gpt-test
    max_retries: 0
  anthropic:
    api_key: "${{ANTHROPIC_TEST_KEY}}"
    base_url: "{anthropic_server.url}"
    model: claude-test
    max_retries: 0
monitoring:
  logging: {{level: DEBUG, format: {format}}}
""",
        env={"OPENAI_API_KEY": openai_key, "ANTHROPIC_TEST_KEY": anthropic_key},
    )
    configure_logging_from_config(config, stream=output)
    model = chat_model_from_config(config, breakers=BreakerRegistry())
    openai_server.script(error(500, "server error"))

    async def decide(state: dict[str, Any]) -> dict[str, Any]:
        answer = await model.agenerate([HumanMessage("approve?")])
        log.debug("config %r", config)
        log.debug("sent headers %s", {"Authorization": f"Bearer {openai_key}"})
        log.debug('{"x-api-key": "%s"}', anthropic_key)
        log.debug("with an extra", extra={"api_key": anthropic_key, "keys": [openai_key]})
        try:
            raise RuntimeError(f"rejected {openai_key} and {anthropic_key}")
        except RuntimeError:
            log.exception("call failed")
        return {"answer": answer.content}

    events: list[Event] = []
    graph = Orchestrator(hooks=[events.append], metrics=False).create_graph("secrets")
    graph.add_node("decide", decide).set_entry_point("decide").set_finish_point("decide")
    assert (await graph.compile().ainvoke({}))["answer"] == "ok"
    await model.aclose()

    # The keys were really in play: each server received its own.
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {openai_key}"
    headers = anthropic_server.requests[0].headers
    assert anthropic_key in headers.get("x-api-key", "") + headers.get("authorization", "")
    written = output.getvalue()
    assert openai_key not in written and anthropic_key not in written
    assert openai_key[:20] not in written and anthropic_key[10:30] not in written
    assert written.count("**********") >= 7
    if format == "json":
        lines = [json.loads(line) for line in written.splitlines() if line.startswith("{")]
        loggers = {line["logger"].split(".")[0] for line in lines}
        assert {"openai", "anthropic", "httpcore2", "belugaflow", "tests"} <= loggers, loggers
        sdk = [line for line in lines if line["logger"].startswith(("openai", "anthropic"))]
        assert {(line["graph"], line["node"]) for line in sdk} == {("secrets", "decide")}
        assert {line["run_id"] for line in sdk} == {events[0].run_id}


def test_the_providers_environment_keys_are_masked(
    output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK providers read their key from ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` when
    the config names none: those values are masked too, whatever their shape; so is a value
    passed as ``secrets=``."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "plain-value-1")
    configure_logging(secrets=["given-value-2"], stream=output)
    log.warning("keys plain-value-1 and given-value-2 and 'given-value-2'")
    assert output.getvalue().rstrip().endswith("keys ********** and ********** and '**********'")


# --- Temporal ------------------------------------------------------------------------------------


def shipping(state: dict[str, Any]) -> dict[str, Any]:
    log.info("shipping %s", state["order"])
    return {"shipped": True}


async def test_a_durable_node_names_its_run_graph_and_node(
    temporal_server: DevServer, output: io.StringIO, json_lines: Lines
) -> None:
    """In a node activity on the real dev server, with no event hook in the worker, a record
    names the graph, the node and the run: the workflow id, from the activity."""
    configure_logging(format="json", stream=output)
    orch = Orchestrator(
        workflow_task_queue=f"logs-{uuid.uuid4().hex[:8]}",
        temporal_address=temporal_server.address,
        temporal_namespace=temporal_server.namespace,
        metrics=False,
    )
    graph = orch.create_graph("durable-logs").add_node("ship", shipping, blocking=True)
    graph.set_entry_point("ship").set_finish_point("ship")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    run_id = f"durable-logs-{uuid.uuid4().hex[:8]}"
    try:
        handle = await orch.start(graph, {"order": "o-7"}, engine="temporal", id=run_id)
        assert (await handle.result())["shipped"]
    finally:
        stop.set()
        await worker
    line = by_message(json_lines(), "shipping o-7")
    assert (line["graph"], line["node"], line["run_id"]) == ("durable-logs", "ship", run_id)


@activity.defn(name="logs.note")
async def note(order: str) -> str:
    log.info("noting %s", order)
    return order


@workflow.defn(name="LogsWorkflow", sandboxed=False)
class LogsWorkflow:
    @workflow.run
    async def run(self, order: str) -> str:
        log.info("workflow for %s", order)
        return await workflow.execute_activity(
            note, order, start_to_close_timeout=timedelta(seconds=30)
        )


async def test_hand_written_workflows_and_activities_name_their_run(
    temporal_server: DevServer, output: io.StringIO, json_lines: Lines
) -> None:
    """Outside graph nodes, Temporal names the run too: workflow code logs its workflow type
    and id, an activity its workflow type, activity type and workflow id."""
    configure_logging(format="json", stream=output)
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    orch = Orchestrator(
        workflow_task_queue=queue,
        temporal_address=temporal_server.address,
        temporal_namespace=temporal_server.namespace,
        metrics=False,
    )
    orch.register_workflow(LogsWorkflow)
    orch.register_activities(note)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    run_id = f"logs-workflow-{uuid.uuid4().hex[:8]}"
    try:
        client = await orch.client()
        await client.execute_workflow(LogsWorkflow.run, "o-3", id=run_id, task_queue=queue)
    finally:
        stop.set()
        await worker
    in_workflow = by_message(json_lines(), "workflow for o-3")
    assert (in_workflow["graph"], in_workflow["run_id"]) == ("LogsWorkflow", run_id)
    assert "node" not in in_workflow
    in_activity = by_message(json_lines(), "noting o-3")
    assert (in_activity["graph"], in_activity["node"]) == ("LogsWorkflow", "logs.note")
    assert in_activity["run_id"] == run_id


async def test_the_worker_command_logs_json_from_the_apps_config(
    temporal_server: DevServer, temporal_client: Client, tmp_path: Path
) -> None:
    """``belugaflow worker`` logs as the app's ``monitoring.logging`` says (JSON lines), each
    node record naming its run, graph and node, and the config's secret masked."""
    from tests.monitoring import logging_app

    key = "app-key-" + secrets.token_hex(12)
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        "tests.monitoring.logging_app:orch",
        address=temporal_server.address,
        namespace=temporal_server.namespace,
        task_queue=queue,
        log=tmp_path / "worker.log",
        env={"LOGGING_APP_KEY": key},
    )
    run_id = f"logged-{uuid.uuid4().hex[:8]}"
    try:
        engine = TemporalEngine(temporal_client, task_queue=queue)
        handle = await engine.start(logging_app.graph, {"order": "o-9"}, id=run_id)
        # The handler writes (and flushes) before the node returns, so before the result.
        assert (await asyncio.wait_for(handle.result(), 60))["packed"], worker.output()
    finally:
        assert worker.stop() == 0, worker.output()
    text = worker.log.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    line = by_message(records, "packing order o-9")
    assert (line["graph"], line["node"], line["run_id"]) == ("logged", "pack", run_id)
    assert key not in text and "(key **********)" in line["message"]


def test_creating_a_filter_turns_on_node_naming() -> None:
    """The attempt loop names nodes once a filter exists (the switch is process-wide)."""
    LogContextFilter()
    assert _context.tracking
