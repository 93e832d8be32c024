"""OpenTelemetry traces: a real OTLP gRPC receiver on 127.0.0.1 gets the span tree of a run —
in process, and across a client and a worker process on the real dev server — with the model
call's GenAI attributes; an endpoint that is down is said once and costs the run nothing."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.llms.fake_openai import fake_openai
from tests.llms.fake_server import FakeServer, running
from tests.monitoring import otlp_receiver
from tests.monitoring.otlp_receiver import OtlpReceiver, Received
from tests.monitoring.tracing_app import (
    GRAPH,
    MODEL,
    OPENAI_ENV,
    OTEL_ENV,
    WORKER_SERVICE,
    create_app,
)
from tests.temporal.fault_app import ROOT, WorkerProcess

from belugaflow import (
    NodeFailedError,
    Orchestrator,
    RetryPolicy,
    RunCancelledError,
    RunTimeoutError,
)
from belugaflow.temporal import DevServer

CLIENT = 3  # OTLP span kinds
SERVER = 2
ERROR = 2  # OTLP status code


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    yield from otlp_receiver.running()


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    yield from running(fake_openai())


def by_name(spans: list[Received]) -> dict[str, Received]:
    found = {span.name: span for span in spans}
    assert len(found) == len(spans), sorted(span.name for span in spans)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_in_process_run_is_one_trace_under_the_callers_span(
    receiver: OtlpReceiver, openai_server: FakeServer
) -> None:
    """run → node → ``chat gpt-test`` under the caller's span, GenAI attributes on the call."""
    orch, graph = create_app(receiver.endpoint, openai_server.url, "traced-local")
    assert orch.tracing is not None
    caller = orch.tracing.provider.get_tracer("the-app")
    with caller.start_as_current_span("checkout"):
        state = await graph.ainvoke({"order_id": "A1"})
    assert state["decision"] == "ok"
    assert orch.tracing.flush()

    spans = by_name(receiver.wait_for(lambda spans: len(spans) >= 5))
    checkout, run = spans["checkout"], spans[f"run {GRAPH}"]
    validate, decide, chat = spans["node validate"], spans["node decide"], spans[f"chat {MODEL}"]
    assert {span.trace_id for span in spans.values()} == {checkout.trace_id}
    assert {span.service for span in spans.values()} == {"traced-local"}
    assert run.parent_id == checkout.span_id
    assert validate.parent_id == decide.parent_id == run.span_id
    assert chat.parent_id == decide.span_id
    assert run.attributes == {
        "belugaflow.graph": GRAPH,
        "belugaflow.run_id": run.attributes["belugaflow.run_id"],
        "belugaflow.engine": "local",
        "belugaflow.outcome": "completed",
    }
    assert decide.attributes["belugaflow.attempt"] == 1
    assert decide.attributes["belugaflow.outcome"] == "completed"
    assert chat.kind == CLIENT
    assert decide.start <= chat.start < chat.end <= decide.end
    assert chat.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": MODEL,
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.response.finish_reasons": ["stop"],
    }


def tree(spans: list[Received]) -> list[str]:
    """``service: name <- parent name`` of each span, sorted (parent ``-`` for a root)."""
    names = {span.span_id: span.name for span in spans}
    return sorted(
        f"{span.service}: {span.name} <- {names.get(span.parent_id, '-')}" for span in spans
    )


async def test_a_durable_run_is_one_trace_across_the_client_and_the_worker_process(
    temporal_server: DevServer,
    receiver: OtlpReceiver,
    openai_server: FakeServer,
    tmp_path: Path,
) -> None:
    """The caller's span, Temporal's start and run spans, per node its activity's spans and
    the node span, and the model call: one trace, parents linked across processes."""
    worker = WorkerProcess(
        "tests.monitoring.tracing_app:orch",
        address=temporal_server.address,
        namespace=temporal_server.namespace,
        task_queue=f"traced-{uuid.uuid4().hex[:8]}",
        log=tmp_path / "worker.log",
        env={OTEL_ENV: receiver.endpoint, OPENAI_ENV: openai_server.url},
    )
    try:
        await asyncio.to_thread(worker.monitoring_url)  # it polls
        orch, graph = create_app(receiver.endpoint, openai_server.url, "traced-client")
        orch.temporal_address = temporal_server.address
        orch.temporal_namespace = temporal_server.namespace
        orch.workflow_task_queue = worker.task_queue
        assert orch.tracing is not None
        caller = orch.tracing.provider.get_tracer("the-app")
        with caller.start_as_current_span("checkout"):
            run = await orch.start(graph, {"order_id": "D1"}, engine="temporal")
            assert (await run.result())["decision"] == "ok"
        assert orch.tracing.flush()
    finally:
        assert worker.stop() == 0, worker.output()  # SIGTERM: the worker delivers its spans
    spans = receiver.wait_for(lambda spans: len(spans) >= 11)
    assert {span.trace_id for span in spans} == {spans[0].trace_id}, tree(spans)
    assert tree(spans) == [
        f"traced-client: StartWorkflow:{GRAPH} <- checkout",
        "traced-client: checkout <- -",
        f"{WORKER_SERVICE}: CompleteWorkflow:{GRAPH} <- StartWorkflow:{GRAPH}",
        f"{WORKER_SERVICE}: RunActivity:belugaflow.node <- StartActivity:belugaflow.node",
        f"{WORKER_SERVICE}: RunActivity:belugaflow.node <- StartActivity:belugaflow.node",
        f"{WORKER_SERVICE}: RunWorkflow:{GRAPH} <- StartWorkflow:{GRAPH}",
        f"{WORKER_SERVICE}: StartActivity:belugaflow.node <- StartWorkflow:{GRAPH}",
        f"{WORKER_SERVICE}: StartActivity:belugaflow.node <- StartWorkflow:{GRAPH}",
        f"{WORKER_SERVICE}: chat {MODEL} <- node decide",
        f"{WORKER_SERVICE}: node decide <- RunActivity:belugaflow.node",
        f"{WORKER_SERVICE}: node validate <- RunActivity:belugaflow.node",
    ]
    named = {span.span_id: span for span in spans}
    start = next(span for span in spans if span.name.startswith("StartWorkflow"))
    for node in ("validate", "decide"):  # each node under an activity of its own
        span = next(span for span in spans if span.name == f"node {node}")
        run_activity = named[span.parent_id]
        assert named[run_activity.parent_id].parent_id == start.span_id
        assert run_activity.kind == SERVER
        assert span.attributes["belugaflow.engine"] == "temporal"
        assert span.attributes["belugaflow.run_id"] == run_activity.attributes["temporalWorkflowID"]
    chat = next(span for span in spans if span.name == f"chat {MODEL}")
    assert chat.kind == CLIENT and chat.attributes["gen_ai.usage.output_tokens"] == 5


async def test_an_endpoint_that_is_down_is_said_once_and_runs_go_on(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Runs work while the endpoint refuses; one log line says so, however many exports fail;
    one more says when spans are delivered again."""
    caplog.set_level(logging.INFO)
    port = free_port()
    orch = Orchestrator(otel_endpoint=f"127.0.0.1:{port}", otel_service_name="down", metrics=False)
    assert orch.tracing is not None
    graph = orch.create_graph("down")
    graph.add_node("a", lambda state: {"n": state["n"] + 1})
    graph.set_entry_point("a").set_finish_point("a")
    compiled = graph.compile()
    for n in range(3):
        assert (await compiled.ainvoke({"n": n}))["n"] == n + 1
        assert orch.tracing.flush()  # each a failed export
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1, said
    assert said[0].startswith(f"traces to 127.0.0.1:{port} cannot be delivered (127.0.0.1:{port}:")
    assert "delivery is retried silently" in said[0]
    assert "127.0.0.1" not in capfd.readouterr().err  # nor does gRPC write anything

    receiver = OtlpReceiver(port)
    try:
        assert (await compiled.ainvoke({"n": 0}))["n"] == 1
        assert orch.tracing.flush()
        spans = receiver.wait_for(lambda spans: len(spans) == 2)
        assert sorted(span.name for span in spans) == ["node a", "run down"]
    finally:
        receiver.stop()
    said = [r.getMessage() for r in caplog.records if r.name.startswith(("belugaflow", "opent"))]
    assert said[1:] == [f"traces to 127.0.0.1:{port} are delivered again"]


@pytest.fixture
def memory() -> tuple[Orchestrator, InMemorySpanExporter]:
    """An orchestrator tracing to an in-memory exporter, and the exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Orchestrator(tracer_provider=provider, metrics=False), exporter


def finished(exporter: InMemorySpanExporter) -> dict[str, list[dict[str, object]]]:
    """Attributes (plus status and parent name) of the finished spans, by span name."""
    spans = exporter.get_finished_spans()
    names = {span.context.span_id: span.name for span in spans}
    found: dict[str, list[dict[str, object]]] = {}
    for span in spans:
        parent = names.get(span.parent.span_id) if span.parent else None
        entry: dict[str, object] = {**dict(span.attributes or {})}
        entry.update(parent=parent, error=not span.status.is_ok)
        found.setdefault(span.name, []).append(entry)
    return found


async def test_retries_and_failures_show_on_the_attempts_and_the_run(
    memory: tuple[Orchestrator, InMemorySpanExporter],
) -> None:
    """One span per attempt: a retried one, then the failed one, each with its error; the run
    fails with the error's code; nothing is left open."""
    orch, exporter = memory
    calls = []

    def flaky(state: dict[str, object]) -> dict[str, object]:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("gateway down")
        raise ValueError("card declined")

    graph = orch.create_graph("pay", retry=RetryPolicy(max_attempts=2, initial_interval=0.001))
    graph.add_node("charge", flaky)
    graph.set_entry_point("charge").set_finish_point("charge")
    with pytest.raises(NodeFailedError):
        await graph.compile().ainvoke({})
    spans = finished(exporter)
    first, second = spans["node charge"]
    assert (first["belugaflow.attempt"], first["belugaflow.outcome"]) == (1, "retried")
    assert (first["error.type"], first["error"]) == ("ConnectionError", True)
    assert first["belugaflow.retry_delay"] is not None
    assert (second["belugaflow.attempt"], second["belugaflow.outcome"]) == (2, "failed")
    assert (second["error.type"], second["parent"]) == ("ValueError", "run pay")
    [run] = spans["run pay"]
    assert (run["belugaflow.outcome"], run["error.type"], run["error"]) == (
        "failed", "node_failed", True
    )  # fmt: skip
    assert orch.tracing is not None and repr(orch.tracing) == "<Tracing runs=0 nodes=0 open>"


async def test_a_run_that_ends_early_closes_its_waits_and_running_nodes(
    memory: tuple[Orchestrator, InMemorySpanExporter],
) -> None:
    """A wait is a ``wait`` span until its signal comes; a run's timeout ends the running
    node's span as cancelled, and cancelling a waiting run ends the wait's."""
    orch, exporter = memory

    async def slow(state: dict[str, object]) -> dict[str, object]:
        await asyncio.sleep(30)
        return {}

    graph = orch.create_graph("review", timeout=0.3)
    graph.add_wait("approval")
    graph.add_node("ship", slow)
    graph.add_edge("approval", "ship")
    graph.set_entry_point("approval").set_finish_point("ship")
    compiled = graph.compile()
    run = await compiled.start({})
    await run.signal("approval", "yes")
    with pytest.raises(RunTimeoutError):
        await run.result()
    spans = finished(exporter)
    [wait], [ship], [whole] = spans["wait approval"], spans["node ship"], spans["run review"]
    assert wait["parent"] == ship["parent"] == "run review"
    assert (wait["belugaflow.outcome"], ship["belugaflow.outcome"]) == ("completed", "cancelled")
    assert (whole["belugaflow.outcome"], whole["error.type"]) == ("failed", "run_timeout")

    exporter.clear()
    run = await compiled.start({})
    await asyncio.sleep(0.01)
    await run.cancel()
    with pytest.raises(RunCancelledError):
        await run.result()
    spans = finished(exporter)
    assert spans["wait approval"][0]["belugaflow.outcome"] == "cancelled"
    assert spans["run review"][0]["belugaflow.outcome"] == "cancelled"
    assert orch.tracing is not None and repr(orch.tracing) == "<Tracing runs=0 nodes=0 open>"


def test_without_an_endpoint_nothing_traces() -> None:
    """No endpoint, no provider: no tracing, no hook, no LLM hook."""
    orch = Orchestrator(metrics=False)
    assert orch.tracing is None and orch.hooks == [] and orch.llm_hooks == []


def run_python(code: str) -> None:
    """Run ``code`` in a fresh interpreter (the global tracer provider is set once per
    process), from the repository root."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_the_first_provider_is_the_global_one_and_an_applications_own_is_kept() -> None:
    """The first orchestrator with an endpoint installs its provider globally; another
    endpoint gets a provider of its own; an application's global provider is used as is; a
    missing extra is named."""
    run_python(
        "import sys\n"
        "from opentelemetry import trace\n"
        "from belugaflow import Orchestrator\n"
        "sys.modules['opentelemetry.sdk'] = None\n"
        "try:\n"
        "    Orchestrator(otel_endpoint='127.0.0.1:9')\n"
        "except ImportError as error:\n"
        "    assert \"pip install 'belugaflow[otel]'\" in str(error), error\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
        "del sys.modules['opentelemetry.sdk']\n"
        "first = Orchestrator(otel_endpoint='127.0.0.1:9')\n"
        "assert trace.get_tracer_provider() is first.tracing.provider\n"
        "again = Orchestrator(otel_endpoint='127.0.0.1:9')\n"
        "other = Orchestrator(otel_endpoint='127.0.0.1:10')\n"
        "assert again.tracing.provider is first.tracing.provider\n"
        "assert other.tracing.provider is not first.tracing.provider\n"
        "assert trace.get_tracer_provider() is first.tracing.provider\n"
    )
    run_python(
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from belugaflow import Orchestrator\n"
        "app = TracerProvider()\n"
        "trace.set_tracer_provider(app)\n"
        "assert Orchestrator(otel_endpoint='127.0.0.1:9').tracing.provider is app\n"
    )
