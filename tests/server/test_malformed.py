"""Bad requests, table-driven: each one gets its 4xx problem with a stable code, never a 500
or a stack trace; afterwards the service still serves and no workflow was started."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.server.conftest import MAX_BODY_BYTES, Service
from tests.server.web import Reply, call, chunked

ORDER = "order-processing"
GOOD_ORDER = {"order_id": "M-1", "product_id": "prod-1", "quantity": 1}
JSON = {"Content-Type": "application/json"}
YAML = {"Content-Type": "application/yaml"}
WAITING = "{waiting}"  # replaced by the id of a run that waits for review
CLOSED = "{closed}"  # replaced by the id of a run that completed

_UNSET: Any = object()


@dataclass(frozen=True)
class Bad:
    """One malformed request and what it must get."""

    name: str
    method: str
    path: str
    status: int
    code: str
    json_body: Any = _UNSET
    data: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    field_in_errors: str | None = None
    """A ``loc`` element some entry of ``errors`` must name."""


def yaml_graph(ref: str = "text.upper", name: str = "bad-graph") -> bytes:
    return (
        f"name: {name}\nnodes:\n  - {{name: a, ref: {ref}}}\nentry: [a]\nfinish: [a]\n"
    ).encode()


CASES = [
    Bad("bad json", "POST", "/workflows", 400, "invalid_json", data=b'{"type": ', headers=JSON),
    Bad("not utf-8", "POST", "/workflows", 400, "invalid_json", data=b"\xff\xfe{", headers=JSON),
    Bad("body is a list", "POST", "/workflows", 422, "validation_error", json_body=[1, 2]),
    Bad(
        "no type",
        "POST",
        "/workflows",
        422,
        "validation_error",
        json_body={"input": {}},
        field_in_errors="type",
    ),
    Bad(
        "type is a number",
        "POST",
        "/workflows",
        422,
        "validation_error",
        json_body={"type": 5, "input": {}},
        field_in_errors="type",
    ),
    Bad(
        "unknown member",
        "POST",
        "/workflows",
        422,
        "validation_error",
        json_body={"type": ORDER, "inputs": {}},
        field_in_errors="inputs",
    ),
    Bad(
        "unknown type",
        "POST",
        "/workflows",
        404,
        "unknown_type",
        json_body={"type": "no-such-flow", "input": {}},
    ),
    Bad(
        "missing input field",
        "POST",
        "/workflows",
        422,
        "input_invalid",
        json_body={"type": ORDER, "input": {"order_id": "x"}},
        field_in_errors="product_id",
    ),
    Bad(
        "wrong input type",
        "POST",
        "/workflows",
        422,
        "input_invalid",
        json_body={"type": ORDER, "input": {**GOOD_ORDER, "quantity": "2"}},
        field_in_errors="quantity",
    ),
    Bad(
        "input not an object",
        "POST",
        "/workflows",
        422,
        "input_invalid",
        json_body={"type": ORDER, "input": [1]},
    ),
    Bad(
        "workflow input unknown field",
        "POST",
        "/workflows",
        422,
        "input_invalid",
        json_body={"type": "OrderProcessingWorkflow", "input": {**GOOD_ORDER, "qty": 2}},
        field_in_errors="qty",
    ),
    Bad(
        "id with a slash",
        "POST",
        "/workflows",
        422,
        "validation_error",
        json_body={"type": ORDER, "input": GOOD_ORDER, "id": "a/b"},
        field_in_errors="id",
    ),
    Bad(
        "bad if_exists",
        "POST",
        "/workflows?if_exists=maybe",
        422,
        "validation_error",
        json_body={"type": ORDER, "input": GOOD_ORDER},
        field_in_errors="if_exists",
    ),
    Bad(
        "text body",
        "POST",
        "/workflows",
        422,
        "validation_error",
        data=b"type=order-processing",
        headers={"Content-Type": "text/plain"},
    ),
    Bad(
        "oversized body",
        "POST",
        "/workflows",
        413,
        "body_too_large",
        json_body={"type": ORDER, "input": {"pad": "x" * (MAX_BODY_BYTES + 10)}},
    ),
    Bad(
        "oversized chunked body",
        "POST",
        "/workflows",
        413,
        "body_too_large",
        data=b"[" + b"1," * MAX_BODY_BYTES + b"1]",
        chunked=True,
    ),
    Bad(
        "bad status filter",
        "GET",
        "/workflows?status=sleeping",
        422,
        "validation_error",
        field_in_errors="status",
    ),
    Bad(
        "limit zero", "GET", "/workflows?limit=0", 422, "validation_error", field_in_errors="limit"
    ),
    Bad("quote in type filter", "GET", "/workflows?type=a'b", 422, "validation_error"),
    Bad("nul in type filter", "GET", "/workflows?type=a%00b", 422, "validation_error"),
    Bad("bad cursor", "GET", "/workflows?cursor=%21%21%21", 400, "invalid_cursor"),
    Bad("forged cursor", "GET", "/workflows?cursor=Z2FyYmFnZQ==", 400, "invalid_cursor"),
    Bad("unknown id", "GET", "/workflows/no-such-run", 404, "workflow_not_found"),
    Bad("result of unknown id", "GET", "/workflows/no-such-run/result", 404, "workflow_not_found"),
    Bad(
        "negative wait",
        "GET",
        f"/workflows/{CLOSED}/result?wait=-1",
        422,
        "validation_error",
        field_in_errors="wait",
    ),
    Bad(
        "signal bad json",
        "POST",
        f"/workflows/{WAITING}/signals/review",
        400,
        "invalid_json",
        data=b"{verdict",
        headers=JSON,
    ),
    Bad(
        "signal bad value",
        "POST",
        f"/workflows/{WAITING}/signals/review",
        422,
        "input_invalid",
        json_body={"verdict": "maybe"},
        field_in_errors="verdict",
    ),
    Bad(
        "unknown signal",
        "POST",
        f"/workflows/{WAITING}/signals/nudge",
        404,
        "unknown_signal",
        json_body=1,
    ),
    Bad(
        "signal to unknown id",
        "POST",
        "/workflows/no-such-run/signals/review",
        404,
        "workflow_not_found",
        json_body={"verdict": "approve"},
    ),
    Bad(
        "signal to closed run",
        "POST",
        f"/workflows/{CLOSED}/signals/review",
        409,
        "workflow_closed",
        json_body={"verdict": "approve"},
    ),
    Bad("unknown query", "GET", f"/workflows/{WAITING}/queries/secrets", 404, "unknown_query"),
    Bad("cancel unknown id", "POST", "/workflows/no-such-run/cancel", 404, "workflow_not_found"),
    Bad("cancel closed run", "POST", f"/workflows/{CLOSED}/cancel", 409, "workflow_closed"),
    Bad(
        "terminate reason a number",
        "POST",
        f"/workflows/{WAITING}/terminate",
        422,
        "validation_error",
        json_body={"reason": 5},
        field_in_errors="reason",
    ),
    Bad(
        "bad last event id",
        "GET",
        f"/workflows/{WAITING}/events",
        400,
        "invalid_event_id",
        headers={"Last-Event-ID": "abc"},
    ),
    Bad("events of unknown id", "GET", "/workflows/no-such-run/events", 404, "workflow_not_found"),
    Bad(
        "alias without id",
        "GET",
        f"/workflows/{ORDER}/status",
        422,
        "validation_error",
        field_in_errors="id",
    ),
    Bad(
        "alias of another type",
        "GET",
        f"/workflows/OrderProcessingWorkflow/status?id={CLOSED}",
        404,
        "workflow_not_found",
    ),
    Bad(
        "alias bad input",
        "POST",
        "/workflows/OrderProcessingWorkflow/execute",
        422,
        "input_invalid",
        json_body={"order_id": 1},
        field_in_errors="order_id",
    ),
    Bad("unknown graph", "GET", "/graphs/no-such-graph", 404, "unknown_graph"),
    Bad("unknown graph version", "GET", f"/graphs/{ORDER}?version=9", 404, "unknown_graph"),
    Bad(
        "invoke unknown graph",
        "POST",
        "/graphs/no-such-graph/invoke",
        404,
        "unknown_graph",
        json_body={},
    ),
    Bad(
        "invoke with a list",
        "POST",
        f"/graphs/{ORDER}/invoke",
        422,
        "validation_error",
        json_body=[],
    ),
    Bad(
        "run with a string",
        "POST",
        f"/graphs/{ORDER}/runs",
        422,
        "validation_error",
        json_body="order",
    ),
    Bad(
        "graph yaml syntax",
        "POST",
        "/graphs",
        400,
        "invalid_yaml",
        data=b"name: [unclosed\nnodes: {",
        headers=YAML,
    ),
    Bad(
        "graph unknown node function",
        "POST",
        "/graphs",
        422,
        "spec_invalid",
        data=yaml_graph("no.such.function"),
        headers=YAML,
    ),
    Bad(
        "graph without nodes",
        "POST",
        "/graphs",
        422,
        "spec_invalid",
        json_body={"name": "g", "entry": ["a"], "finish": ["a"]},
        field_in_errors="nodes",
    ),
    Bad(
        "graph edge to nowhere",
        "POST",
        "/graphs",
        422,
        "spec_invalid",
        json_body={
            "name": "g",
            "nodes": [{"name": "a", "ref": "text.upper"}],
            "edges": [["a", "b"]],
            "entry": ["a"],
            "finish": ["a"],
        },
    ),
    Bad(
        "graph version a string",
        "POST",
        "/graphs",
        422,
        "spec_invalid",
        json_body={
            "name": "g",
            "version": "two",
            "nodes": [{"name": "a", "ref": "text.upper"}],
            "entry": ["a"],
            "finish": ["a"],
        },
        field_in_errors="version",
    ),
    Bad("graph as a list", "POST", "/graphs", 422, "spec_invalid", json_body=[1]),
    Bad(
        "graph yaml with aliases",
        "POST",
        "/graphs",
        400,
        "invalid_yaml",
        data=b"a: &a [x, x]\nb: &b [*a, *a]\nname: *b\n",
        headers=YAML,
    ),
    Bad(
        "graph as text",
        "POST",
        "/graphs",
        415,
        "unsupported_media_type",
        data=yaml_graph(),
        headers={"Content-Type": "text/plain"},
    ),
    Bad(
        "graph named as a workflow",
        "POST",
        "/graphs",
        409,
        "type_conflict",
        data=yaml_graph(name="OrderProcessingWorkflow"),
        headers=YAML,
    ),
    Bad(
        "graph changed, same version",
        "POST",
        "/graphs",
        409,
        "graph_version_conflict",
        data=yaml_graph(name=ORDER),
        headers=YAML,
    ),
    Bad("wrong method", "DELETE", "/workflows", 405, "method_not_allowed"),
    Bad("no such route", "GET", "/nowhere", 404, "not_found"),
]


@pytest.fixture(scope="module")
def runs(service: Service) -> Iterator[dict[str, str]]:
    """A run waiting for review and a completed one, made before the snapshot; the waiting
    one is cancelled afterwards."""
    import uuid

    unique = uuid.uuid4().hex[:8]
    waiting = service.start(
        ORDER, {**GOOD_ORDER, "order_id": f"W-{unique}", "customer_tier": "new"}, f"w-{unique}"
    )
    closed = service.start(ORDER, {**GOOD_ORDER, "order_id": f"D-{unique}"}, f"d-{unique}")
    service.result(closed["id"])
    service.wait_until(waiting["id"], "waiting")
    yield {WAITING: waiting["id"], CLOSED: closed["id"]}
    call(f"{service.url}/workflows/{waiting['id']}/cancel", "POST")


def send(service: Service, bad: Bad, runs: dict[str, str]) -> Reply:
    path = bad.path
    for marker, run_id in runs.items():
        path = path.replace(marker, run_id)
    base = service.root if bad.path == "/nowhere" else service.url
    if bad.chunked:
        assert bad.data is not None
        return chunked(base + path, bad.data)
    if bad.json_body is _UNSET:
        return call(base + path, bad.method, data=bad.data, headers=bad.headers)
    return call(base + path, bad.method, bad.json_body, headers=bad.headers)


def test_there_are_enough_cases() -> None:
    """The table holds at least 25 distinct malformed requests."""
    assert len(CASES) >= 25 and len({case.name for case in CASES}) == len(CASES)


def test_malformed_requests(service: Service, runs: dict[str, str]) -> None:
    """Every case gets its status and problem code, with ``errors`` naming the field where
    one is expected; then the API still serves, and nothing was started or registered."""
    since = datetime.now(UTC)
    graphs = call(f"{service.url}/graphs").json()
    wrong = []
    for bad in CASES:
        reply = send(service, bad, runs)
        try:
            problem = reply.problem
            assert (reply.status, problem["code"]) == (bad.status, bad.code)
            assert "Traceback" not in problem["detail"]
            if bad.field_in_errors is not None:
                locs = [loc for error in problem["errors"] for loc in error["loc"]]
                assert bad.field_in_errors in locs, problem["errors"]
        except (AssertionError, ValueError, KeyError) as error:
            wrong.append(f"{bad.name}: {reply.status} {reply.body[:300]!r} ({error})")
    assert not wrong, "\n".join(wrong)

    assert _started_since(service, since) == 0  # no workflow was started
    assert call(f"{service.url}/graphs").json() == graphs  # nothing was registered
    assert call(f"{service.root}/healthz").status == 200
    assert call(f"{service.url}/workflows/{runs[WAITING]}").json()["status"] == "running"


def _started_since(service: Service, since: datetime) -> int:
    """Workflows started on the API's task queue since ``since``, asked of Temporal itself."""

    async def count() -> int:
        client = await service.orch.client()
        stamp = since.isoformat().replace("+00:00", "Z")
        query = f"TaskQueue = '{service.task_queue}' AND StartTime >= '{stamp}'"
        return (await client.count_workflows(query)).count

    time.sleep(0.5)  # what visibility records, it records within milliseconds
    found: int = service.api.run(count())
    return found
