"""Prometheus metrics move exactly as the runs did, on both engines: N runs, K failures by
code, R retries in, those numbers out; gauges go back down on failure, cancel and wait's end.
Scraped over real HTTP on 127.0.0.1 and linted by Debian's ``promtool``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from tests.llms.fake_openai import completion, error
from tests.llms.fake_server import FakeServer, running

from belugaflow import (
    CircuitState,
    NonRetryableError,
    Orchestrator,
    RetryableError,
    RetryPolicy,
    RunCancelledError,
)
from belugaflow.graph import CompiledGraph
from belugaflow.llms import HumanMessage
from belugaflow.llms._openai import OpenAIChatModel
from belugaflow.temporal import DevServer, run_worker
from examples.order_processing.activities import Order
from examples.order_processing.app import create_app, start_order
from examples.order_processing.db import Store

FAST = RetryPolicy(max_attempts=3, initial_interval=0.001, jitter=0)


def value(orch: Orchestrator, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series never recorded."""
    assert orch.metrics is not None
    found = orch.metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def order_graph(orch: Orchestrator, name: str = "orders") -> CompiledGraph:
    """``check`` fails once per run when asked (retried), ``pay`` fails for good when asked."""
    failed_once: set[str] = set()

    def check(state: dict[str, Any]) -> dict[str, Any]:
        if state.get("flaky") and state["id"] not in failed_once:
            failed_once.add(state["id"])
            raise RetryableError("inventory service busy")
        return {"checked": True}

    def pay(state: dict[str, Any]) -> dict[str, Any]:
        if state.get("declined"):
            raise NonRetryableError("card declined")
        return {"paid": True}

    graph = orch.create_graph(name, retry=FAST)
    graph.add_node("check", check).add_node("pay", pay).add_edge("check", "pay")
    return graph.set_entry_point("check").set_finish_point("pay").compile()


RUNS = [
    {"id": "1"},
    {"id": "2", "flaky": True},
    {"id": "3", "flaky": True},
    {"id": "4", "declined": True},
    {"id": "5", "flaky": True, "declined": True},
]
"""5 runs, 3 retries (the flaky ones), 2 failures (declined)."""


def assert_counted(orch: Orchestrator, engine: str, workflow: str = "orders") -> None:
    run = {"workflow": workflow, "engine": engine}
    assert value(orch, "workflows_started_total", **run) == 5
    assert value(orch, "workflow_failures_total", **run, code="node_failed") == 2
    assert value(orch, "workflow_duration_seconds_count", **run, outcome="completed") == 3
    assert value(orch, "workflow_duration_seconds_count", **run, outcome="failed") == 2
    assert value(orch, "workflow_runs_in_flight", **run) == 0
    check = {**run, "activity": "check"}
    pay = {**run, "activity": "pay"}
    assert value(orch, "workflow_retries_total", **check) == 3
    assert value(orch, "workflow_retries_total", **pay) == 0
    assert value(orch, "workflow_activities_total", **check, outcome="completed") == 5
    assert value(orch, "workflow_activities_total", **check, outcome="retried") == 3
    assert value(orch, "workflow_activities_total", **pay, outcome="completed") == 3
    assert value(orch, "workflow_activities_total", **pay, outcome="failed") == 2
    assert value(orch, "workflow_node_duration_seconds_count", **pay, outcome="failed") == 2


async def test_local_runs_are_counted_exactly() -> None:
    orch = Orchestrator()
    graph = order_graph(orch)
    for state in RUNS:
        with contextlib.suppress(Exception):
            await graph.ainvoke(state)
    assert_counted(orch, "local")


def add_one(x: int) -> int:
    return x + 1


def double(x: int) -> int:
    return x * 2


def test_a_chain_is_counted_under_its_name() -> None:
    orch = Orchestrator()
    chain = orch.create_chain([add_one, double], name="double")
    assert chain.invoke(1) == 4
    run = {"workflow": "double", "engine": "local"}
    assert value(orch, "workflows_started_total", **run) == 1
    assert value(orch, "workflow_duration_seconds_count", **run, outcome="completed") == 1
    assert value(orch, "workflow_activities_total", **run, activity="add_one", outcome="completed")


async def test_runs_in_flight_and_waits_go_down_on_signal_and_cancel() -> None:
    orch = Orchestrator()
    graph = orch.create_graph("approval")
    graph.add_node("submit", lambda s: {"submitted": True})
    graph.add_wait("review", signal="approve", key="approved", timeout="1m")
    graph.add_edge("submit", "review")
    compiled = graph.set_entry_point("submit").set_finish_point("review").compile()
    run = {"workflow": "approval", "engine": "local"}

    async def waiting() -> None:
        async with asyncio.timeout(5):
            while value(orch, "workflow_waits_in_progress", **run) < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    first = await compiled.start({})
    await waiting()
    assert value(orch, "workflow_runs_in_flight", **run) == 1
    await first.signal("approve", True)
    assert (await first.result())["approved"] is True
    assert value(orch, "workflow_waits_in_progress", **run) == 0
    assert value(orch, "workflow_runs_in_flight", **run) == 0

    second = await compiled.start({})
    await waiting()
    await second.cancel()
    with pytest.raises(RunCancelledError):
        await second.result()
    assert value(orch, "workflow_waits_in_progress", **run) == 0
    assert value(orch, "workflow_runs_in_flight", **run) == 0
    assert value(orch, "workflow_duration_seconds_count", **run, outcome="cancelled") == 1


def test_breaker_states_are_read_at_scrape_time() -> None:
    orch = Orchestrator()
    breaker = orch.breaker("payments", failure_threshold=1, recovery_timeout=60)
    state = {"breaker": "payments"}
    assert value(orch, "workflow_circuit_breaker_state", **state, state="closed") == 1
    breaker.on_failure(RuntimeError("down"))
    assert breaker.state is CircuitState.OPEN
    assert value(orch, "workflow_circuit_breaker_state", **state, state="open") == 1
    assert value(orch, "workflow_circuit_breaker_state", **state, state="closed") == 0


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    yield from running(FakeServer(lambda request: completion("ok", usage=(12, 3))))


async def test_model_calls_are_counted_with_tokens_and_latency(openai_server: FakeServer) -> None:
    orch = Orchestrator()
    model = OpenAIChatModel(
        model="gpt-test",
        api_key="sk-test",
        base_url=f"{openai_server.url}/v1",
        retry=RetryPolicy(max_attempts=1),
        hooks=orch.llm_hooks,
    )
    await model.agenerate([HumanMessage("hi")])
    openai_server.script(error(400, "bad request"))
    with pytest.raises(Exception, match="bad request"):
        await model.agenerate([HumanMessage("hi")])
    llm = {"provider": "openai", "model": "gpt-test"}
    assert value(orch, "workflow_llm_calls_total", **llm, outcome="ok") == 1
    assert value(orch, "workflow_llm_calls_total", **llm, outcome="error") == 1
    assert value(orch, "workflow_llm_tokens_total", **llm, type="input") == 12
    assert value(orch, "workflow_llm_tokens_total", **llm, type="output") == 3
    assert value(orch, "workflow_llm_call_duration_seconds_count", **llm) == 2


def test_a_prefix_renames_every_metric() -> None:
    orch = Orchestrator(metrics_prefix="shop")
    orch.create_chain([lambda x: x], name="c").invoke(1)
    assert value(orch, "shops_started_total", workflow="c", engine="local") == 1
    assert value(
        orch, "shop_duration_seconds_count", workflow="c", engine="local", outcome="completed"
    )


def test_metrics_off_records_nothing_and_adds_no_hook() -> None:
    orch = Orchestrator(metrics=False)
    assert orch.metrics is None and orch.hooks == [] and orch.llm_hooks == []


# --- a durable worker, scraped over HTTP -------------------------------------------------------


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as failed:
        return failed.code, failed.read().decode()


def curl(url: str) -> str:
    """The body at ``url`` as ``curl`` gets it (a client we did not write)."""
    done = subprocess.run(["curl", "-sf", url], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_durable_runs_are_counted_exactly_and_served_at_metrics(
    temporal_server: DevServer, temporal_client: Client
) -> None:
    orch = Orchestrator(
        workflow_task_queue=f"metrics-{uuid.uuid4().hex[:8]}",
        temporal_address=temporal_server.address,
        temporal_namespace=temporal_server.namespace,
    )
    graph = order_graph(orch)
    stop = asyncio.Event()
    served: list[str] = []
    worker = asyncio.create_task(
        run_worker(orch, stop=stop, metrics_port=0, on_serving=served.append)
    )
    try:
        for state in RUNS:
            with contextlib.suppress(Exception):
                await orch.run(graph, state, engine="temporal")
        (url,) = served
        text = await asyncio.to_thread(curl, f"{url}/metrics")
        ready = await asyncio.to_thread(get, f"{url}/readyz")
        health = await asyncio.to_thread(get, f"{url}/healthz")
    finally:
        stop.set()
        await worker
    assert_counted(orch, "temporal")
    assert 'workflows_started_total{engine="temporal",workflow="orders"} 5.0' in text
    assert "temporal_" in text  # the SDK's own worker metrics, beside ours
    assert health == (200, '{"status": "ok"}\n')
    status, body = ready
    assert status == 200, body
    assert json.loads(body) == {
        "status": "ready",
        "checks": {"temporal": {"ok": True}, "worker": {"ok": True}},
    }
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (make test installs Debian's prometheus as root)")
    lint = await asyncio.to_thread(
        subprocess.run,
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


async def test_readyz_names_what_is_not_ready() -> None:
    """A server that does not answer: 503, and the check says why."""
    orch = Orchestrator()

    async def temporal() -> None:
        raise ConnectionError("127.0.0.1:1 refused the connection")

    app = orch.metrics_app({"temporal": temporal})
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": "/readyz"}, receive, send)
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"]) == {
        "status": "not ready",
        "checks": {
            "temporal": {
                "ok": False,
                "error": "ConnectionError: 127.0.0.1:1 refused the connection",
            }
        },
    }


async def test_hand_written_workflows_and_their_activities_are_counted(
    temporal_server: DevServer, tmp_path: Path
) -> None:
    """The example's ``OrderProcessingWorkflow`` (plain Temporal code): runs by workflow type,
    activities by activity type, a failure by its application error's type."""
    orch = create_app(store=Store.create(tmp_path / "orders.db"))
    orch.temporal_address = temporal_server.address
    orch.temporal_namespace = temporal_server.namespace
    orch.workflow_task_queue = f"handwritten-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    try:
        for order in (Order("h-1", "prod-1"), Order("h-2", "prod-1", 2)):
            assert (await (await start_order(orch, order)).result()).status == "completed"
        with pytest.raises(WorkflowFailureError):
            await (await start_order(orch, Order("h-3", "nope"))).result()
    finally:
        stop.set()
        await worker
    run = {"workflow": "OrderProcessingWorkflow", "engine": "temporal"}
    assert value(orch, "workflows_started_total", **run) == 3
    assert value(orch, "workflow_failures_total", **run, code="NonRetryableError") == 1
    assert value(orch, "workflow_duration_seconds_count", **run, outcome="completed") == 2
    assert value(orch, "workflow_runs_in_flight", **run) == 0
    validate = {**run, "activity": "order.validate"}
    assert value(orch, "workflow_activities_total", **validate, outcome="completed") == 2
    assert value(orch, "workflow_activities_total", **validate, outcome="failed") == 1
    payment = {**run, "activity": "order.process_payment", "outcome": "completed"}
    assert value(orch, "workflow_activities_total", **payment) == 2


async def test_a_taken_metrics_port_fails_the_worker_at_start_naming_it(
    temporal_server: DevServer,
) -> None:
    orch = Orchestrator(
        workflow_task_queue=f"taken-{uuid.uuid4().hex[:8]}",
        temporal_address=temporal_server.address,
        temporal_namespace=temporal_server.namespace,
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=rf"cannot serve metrics on 127.0.0.1:{port}"):
            await run_worker(orch, stop=asyncio.Event(), metrics_port=port)
