"""The REST API end to end: real HTTP on 127.0.0.1, a real worker process, the dev server."""

from __future__ import annotations

import subprocess
from typing import Any

import yaml
from tests.server.conftest import Service
from tests.server.web import call, parse_events, read_events

ORDER = "order-processing"
NODES = ["validate", "check_inventory", "decide", "process_payment", "fulfill", "notify"]


def order(order_id: str, product: str = "prod-1", quantity: int = 2, **more: Any) -> dict[str, Any]:
    return {"order_id": order_id, "product_id": product, "quantity": quantity, **more}


def test_sample_orders(service: Service, unique: str) -> None:
    """In stock completes, out of stock ends early, and a large one waits for review until it
    is approved through ``POST .../signals/review``."""
    paid = service.start(ORDER, order(f"A-{unique}"), id=f"paid-{unique}")
    assert paid["status"] == "running" and paid["type"] == ORDER and paid["run_id"]
    short = service.start(ORDER, order(f"B-{unique}", "prod-3", 1), id=f"short-{unique}")
    review = service.start(
        ORDER, order(f"C-{unique}", "prod-2", 3, customer_tier="new"), id=f"review-{unique}"
    )

    assert service.result(paid["id"])["status"] == "completed"
    assert service.result(short["id"])["status"] == "out_of_stock"

    waiting = service.wait_until(review["id"], "waiting")
    assert waiting["waiting"][0]["signal"] == "review"
    pending = call(f"{service.url}/workflows/{review['id']}/result?wait=0")
    assert pending.status == 202 and pending.json()["status"] == "running"
    sent = call(
        f"{service.url}/workflows/{review['id']}/signals/review", "POST", {"verdict": "approve"}
    )
    assert sent.status == 202 and sent.json() == {
        "id": review["id"],
        "run_id": review["run_id"],
        "signal": "review",
        "status": "accepted",
    }
    final = service.result(review["id"])
    assert final["status"] == "completed" and final["review"]["verdict"] == "approve"

    shown = call(f"{service.url}/workflows/{review['id']}").json()
    assert shown["status"] == "completed" and shown["result"] == final
    outcomes = {row["node"]: row["outcome"] for row in shown["timeline"]["nodes"]}
    assert outcomes["await_review"] == "completed" and outcomes["release"] == "skipped"
    assert "flowchart" in shown["timeline"]["mermaid"]
    alias = call(f"{service.url}/workflows/{ORDER}/status?id={review['id']}")
    assert alias.status == 200 and alias.json()["result"] == final


def test_hand_written_workflow(service: Service, unique: str) -> None:
    """``OrderProcessingWorkflow`` starts by its type through the alias, is approved with its
    ``approve`` signal, and answers its own query."""
    reply = call(
        f"{service.url}/workflows/OrderProcessingWorkflow/execute?id=hw-{unique}",
        "POST",
        {"order_id": f"H-{unique}", "product_id": "prod-2", "quantity": 3},
    )
    assert reply.status == 201, reply.body
    started = reply.json()
    assert started["type"] == "OrderProcessingWorkflow"
    for _ in range(300):
        progress = call(f"{service.url}/workflows/{started['id']}/queries/progress").json()
        if progress["result"]["step"] == "await_approval":
            break
    else:
        raise AssertionError(progress)
    bad = call(f"{service.url}/workflows/{started['id']}/signals/approve", "POST", {"x": 1})
    assert bad.status == 422 and bad.problem["code"] == "input_invalid"
    sent = call(f"{service.url}/workflows/{started['id']}/signals/approve", "POST", "fine")
    assert sent.status == 202
    result = service.result(started["id"])
    assert result["status"] == "completed" and result["payment_id"].startswith("pay-")


def test_cancel_runs_the_compensation(service: Service, unique: str) -> None:
    """A waiting order cancelled through the API ends cancelled; its result is the error."""
    run = service.start(ORDER, order(f"X-{unique}", "prod-2", 3), id=f"cancel-{unique}")
    service.wait_until(run["id"], "waiting")
    reply = call(f"{service.url}/workflows/{run['id']}/cancel", "POST")
    assert reply.status == 202 and reply.json()["status"] == "cancel_requested"
    result = call(f"{service.url}/workflows/{run['id']}/result?wait=30")
    problem = result.problem
    assert result.status == 409 and problem["code"] == "run_cancelled"
    assert problem["workflow_status"] == "canceled"
    shown = call(f"{service.url}/workflows/{run['id']}").json()
    assert shown["status"] == "canceled" and shown["error"]["code"] == "run_cancelled"
    nodes = [row["node"] for row in shown["timeline"]["nodes"]]
    assert "check_inventory.compensate" in nodes  # the reservation was released
    again = call(f"{service.url}/workflows/{run['id']}/cancel", "POST")
    assert again.status == 409 and again.problem["code"] == "workflow_closed"


def test_terminate(service: Service, unique: str) -> None:
    """Terminate ends a run at once, with the reason given."""
    run = service.start(ORDER, order(f"T-{unique}", "prod-2", 3), id=f"term-{unique}")
    service.wait_until(run["id"], "waiting")
    reply = call(f"{service.url}/workflows/{run['id']}/terminate", "POST", {"reason": "test"})
    assert reply.status == 200 and reply.json()["status"] == "terminated"
    result = call(f"{service.url}/workflows/{run['id']}/result")
    assert result.status == 409 and result.problem["code"] == "run_terminated"


def test_events_stream_every_node_in_order_and_resume(service: Service, unique: str) -> None:
    """The SSE stream of a run gives each node's scheduled, started and completed events in
    order, from run start to run end; ``Last-Event-ID`` (sent by curl) resumes after one."""
    run = service.start(ORDER, order(f"E-{unique}"), id=f"events-{unique}")
    content_type, messages = read_events(f"{service.url}/workflows/{run['id']}/events")
    assert content_type == "text/event-stream"
    names = [m.event for m in messages]
    assert names[0] == "belugaflow.run.started" and names[-1] == "belugaflow.run.completed"
    expected = [
        (f"belugaflow.node.{step}", node)
        for node in NODES
        for step in ("scheduled", "started", "completed")
    ]
    assert [(m.event, m.data.get("node")) for m in messages[1:-1]] == expected
    assert all(m.data["event"] == m.event and m.data["id"] == m.id for m in messages)
    assert messages[-1].data["result"]["status"] == "completed"
    ids = [int(m.id or 0) for m in messages]
    assert ids == sorted(ids)

    middle = messages[7]
    resumed = subprocess.run(
        [
            "curl",
            "-sN",
            "--max-time",
            "30",
            "-H",
            f"Last-Event-ID: {middle.id}",
            f"{service.url}/workflows/{run['id']}/events",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert parse_events(resumed.stdout) == messages[8:]


def test_events_arrive_while_the_run_goes_on(service: Service, unique: str) -> None:
    """A stream opened on a waiting run shows its progress, then the signal and the rest."""
    run = service.start(ORDER, order(f"L-{unique}", "prod-2", 3), id=f"live-{unique}")
    service.wait_until(run["id"], "waiting")
    import threading

    got: list[Any] = []
    reader = threading.Thread(
        target=lambda: got.append(read_events(f"{service.url}/workflows/{run['id']}/events"))
    )
    reader.start()
    sent = call(
        f"{service.url}/workflows/{run['id']}/signals/review", "POST", {"verdict": "reject"}
    )
    assert sent.status == 202
    reader.join(60)
    [(_, messages)] = got
    names = [(m.event, m.data.get("node") or m.data.get("signal")) for m in messages]
    assert ("belugaflow.signal.received", "review") in names
    assert names.index(("belugaflow.signal.received", "review")) < names.index(
        ("belugaflow.node.scheduled", "release")
    )
    assert names[-1][0] == "belugaflow.run.completed"


def test_idempotent_start(service: Service, unique: str) -> None:
    """The same id twice is one run (201, then 200 with it); ``if_exists=fail`` is 409."""
    body = {"type": ORDER, "input": order(f"I-{unique}"), "id": f"idem-{unique}"}
    first = call(f"{service.url}/workflows", "POST", body)
    second = call(f"{service.url}/workflows", "POST", body)
    assert (first.status, second.status) == (201, 200)
    assert first.json()["run_id"] == second.json()["run_id"]
    failed = call(f"{service.url}/workflows?if_exists=fail", "POST", body)
    assert failed.status == 409 and failed.problem["code"] == "workflow_exists"
    other = call(
        f"{service.url}/workflows",
        "POST",
        {"type": "OrderProcessingWorkflow", "input": order("I2"), "id": f"idem-{unique}"},
    )
    assert other.status == 409 and other.problem["code"] == "id_conflict"
    service.result(body["id"])
    third = call(f"{service.url}/workflows", "POST", body)  # closed: still that run
    assert third.status == 200 and third.json()["status"] == "completed"
    listed = call(f"{service.url}/workflows?type={ORDER}&limit=1000").json()["items"]
    assert [item["id"] for item in listed].count(body["id"]) == 1


def test_list_pages_with_a_cursor(service: Service, unique: str) -> None:
    """A list filtered by type and status is walked a page at a time to its end."""
    for n in range(3):
        service.result(service.start(ORDER, order(f"P{n}-{unique}"), id=f"page{n}-{unique}")["id"])
    seen: list[str] = []
    url = f"{service.url}/workflows?type={ORDER}&status=completed&limit=2"
    page = call(url).json()
    seen += [item["id"] for item in page["items"]]
    while page["next_cursor"]:
        page = call(f"{url}&cursor={page['next_cursor']}").json()
        seen += [item["id"] for item in page["items"]]
    assert len(seen) == len(set(seen))
    assert {f"page{n}-{unique}" for n in range(3)} <= set(seen)
    everything = call(f"{service.url}/workflows?limit=1000").json()
    assert {item["status"] for item in everything["items"]} >= {"completed"}


TEXT_GRAPH = """\
name: shout-{unique}
version: 1
nodes:
  - {{name: upper, ref: text.upper}}
  - {{name: exclaim, ref: text.exclaim}}
edges: [[upper, exclaim]]
entry: [upper]
finish: [exclaim]
input_schema:
  type: object
  properties: {{text: {{type: string}}}}
  required: [text]
"""


def test_graph_registered_through_the_api_runs_on_a_worker_started_before(
    service: Service, unique: str
) -> None:
    """A graph sent as YAML runs durably on the worker process, which started before it was
    registered; it shows among the graphs, runs in process too, and keeps its version."""
    name = f"shout-{unique}"
    document = TEXT_GRAPH.format(unique=unique)
    created = call(
        f"{service.url}/graphs",
        "POST",
        data=document.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert created.status == 201, created.body
    assert created.json() == {"name": name, "version": 1, "created": True}
    as_json = call(f"{service.url}/graphs", "POST", yaml.safe_load(document))
    assert as_json.status == 200 and as_json.json()["created"] is False

    run = call(f"{service.url}/graphs/{name}/runs?id=shout-{unique}", "POST", {"text": "hey"})
    assert run.status == 201, run.body
    assert service.result(f"shout-{unique}") == {"text": "HEY!", "done": True}
    shown = call(f"{service.url}/workflows/shout-{unique}").json()
    assert shown["type"] == name and shown["timeline"]["status"] == "completed"
    assert [row["node"] for row in shown["timeline"]["nodes"]] == ["upper", "exclaim"]
    listed = call(f"{service.url}/workflows?type={name}").json()["items"]
    assert [item["id"] for item in listed] == [f"shout-{unique}"]

    graphs = {g["name"]: g for g in call(f"{service.url}/graphs").json()}
    assert graphs[name]["source"] == "api" and graphs[ORDER]["source"] == "code"
    detail = call(f"{service.url}/graphs/{name}").json()
    assert detail["spec"]["nodes"][0] == {"name": "upper", "ref": "text.upper"}
    assert detail["schema"]["input"]["required"] == ["text"]
    invoked = call(f"{service.url}/graphs/{name}/invoke", "POST", {"text": "abc"})
    assert invoked.status == 200 and invoked.json() == {"text": "ABC!", "done": True}

    changed = document.replace("edges: [[upper, exclaim]]", "edges: [[exclaim, upper]]")
    changed = changed.replace("entry: [upper]", "entry: [exclaim]").replace(
        "finish: [exclaim]", "finish: [upper]"
    )
    conflict = call(
        f"{service.url}/graphs",
        "POST",
        data=changed.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert conflict.status == 409 and conflict.problem["code"] == "graph_version_conflict"
    v2 = call(
        f"{service.url}/graphs",
        "POST",
        data=changed.replace("version: 1", "version: 2").encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert v2.status == 201
    assert call(f"{service.url}/graphs/{name}").json()["versions"] == [1, 2]


def test_invoke_in_process(service: Service) -> None:
    """``invoke`` runs a graph in the API process; a graph that waits is refused."""
    waits = call(f"{service.url}/graphs/{ORDER}/invoke", "POST", order("N-1"))
    assert waits.status == 409 and waits.problem["code"] == "graph_waits"


def test_health_readiness_and_metrics(service: Service) -> None:
    """``/healthz``, ``/readyz`` (Temporal answers) and ``/metrics`` are served beside the API."""
    assert call(f"{service.root}/healthz").json() == {"status": "ok"}
    ready = call(f"{service.root}/readyz")
    assert ready.status == 200 and ready.json()["checks"]["temporal"] == {"ok": True}
    metrics = call(f"{service.root}/metrics")
    assert metrics.status == 200 and b"# TYPE workflows_started_total counter" in metrics.body
    posted = call(f"{service.root}/healthz", "POST")
    assert posted.status == 405 and posted.problem["code"] == "method_not_allowed"


def test_an_idle_stream_keeps_alive_and_stops_when_the_client_goes(
    service: Service, unique: str
) -> None:
    """A stream on a waiting run sends keep-alive comments; when the client disconnects, the
    API stops reading the run's history (no task is left behind)."""
    import asyncio
    import http.client
    import time
    import urllib.parse

    run = service.start(ORDER, order(f"K-{unique}", customer_tier="new"), id=f"idle-{unique}")
    service.wait_until(run["id"], "waiting")

    async def tasks() -> int:
        return len(asyncio.all_tasks())

    before = service.api.run(tasks())
    parts = urllib.parse.urlsplit(f"{service.url}/workflows/{run['id']}/events")
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("GET", parts.path)
    response = connection.getresponse()
    seen = b""
    while b": keep-alive" not in seen:  # the test app's keep-alive is 1 s
        seen += response.read1(4096)
    assert b"event: belugaflow.node.scheduled" in seen
    assert service.api.run(tasks()) > before
    connection.close()
    deadline = time.monotonic() + 10
    while service.api.run(tasks()) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert service.api.run(tasks()) <= before
    call(f"{service.url}/workflows/{run['id']}/cancel", "POST")


def test_a_retried_node_shows_its_failed_attempt(service: Service, unique: str) -> None:
    """A node whose first attempt fails: the stream says so (``retry_scheduled`` with the
    error) before the attempt that completes, and the timeline counts both attempts."""
    name = f"flaky-{unique}"
    document = {
        "name": name,
        "nodes": [
            {
                "name": "try",
                "ref": "text.flaky",
                "retry": {"max_attempts": 3, "initial_interval": 0.1, "backoff_coefficient": 1},
            }
        ],
        "entry": ["try"],
        "finish": ["try"],
    }
    assert call(f"{service.url}/graphs", "POST", document).status == 201
    run = call(f"{service.url}/graphs/{name}/runs?id={name}", "POST", {"text": unique}).json()
    _, messages = read_events(f"{service.url}/workflows/{run['id']}/events")
    steps = [(m.event, m.data.get("attempt")) for m in messages if m.data.get("node") == "try"]
    assert steps == [
        ("belugaflow.node.scheduled", None),
        ("belugaflow.node.retry_scheduled", 1),
        ("belugaflow.node.started", 2),
        ("belugaflow.node.completed", 2),
    ]
    [retried] = [m for m in messages if m.event == "belugaflow.node.retry_scheduled"]
    assert retried.data["error"] == f"RuntimeError: first attempt for {unique!r}"
    [started] = [m for m in messages if m.event == "belugaflow.node.started"]
    assert started.id == f"{retried.id}.1"  # both from one history event
    shown = call(f"{service.url}/workflows/{run['id']}").json()
    [row] = shown["timeline"]["nodes"]
    assert (row["attempts"], row["outcome"]) == (2, "completed")
