"""The CLI as a client of the REST API: ``belugaflow run``, ``workflows ...`` and ``graph ...``
run as subprocesses against the API served over real HTTP on 127.0.0.1, with a real worker
process and the session's dev server (the fixtures of ``tests/server``).

Each command's exit code is checked against the documented table (``docs/cli.md``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.server import conftest as server_fixtures
from tests.server.conftest import Service
from tests.server.web import call
from tests.temporal.fault_app import ROOT, belugaflow_command

from belugaflow.cli._output import ExitCode

# The REST API tests' fixtures: the API, its worker process, fresh ids.
service = server_fixtures.service
unique = server_fixtures.unique

ORDER = "order-processing"
NODES = ["validate", "check_inventory", "decide", "process_payment", "fulfill", "notify"]
_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}  (?P<subject>.+?) +(?P<status>\S+)(?: +(?P<rest>.*))?$")


def order(order_id: str, product: str = "prod-1", quantity: int = 2, **more: Any) -> dict[str, Any]:
    return {"order_id": order_id, "product_id": product, "quantity": quantity, **more}


def cli(
    service: Service, *args: str, api: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``belugaflow ARGS`` in a subprocess, with ``$BELUGAFLOW_API`` naming ``api`` (default
    the service's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BELUGAFLOW_API")}
    env["BELUGAFLOW_API"] = api or service.root
    return subprocess.run(
        [*belugaflow_command(), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def progress(text: str) -> list[tuple[str, str]]:
    """The ``(subject, status)`` of each progress line of ``run --wait``."""
    found = []
    for line in text.splitlines():
        matched = _LINE.match(line)
        if matched:
            found.append((matched["subject"], matched["status"]))
    return found


def result_json(text: str) -> Any:
    """The JSON document after the progress lines."""
    return json.loads(text[text.index("\n{") + 1 :] if not text.startswith("{") else text)


def timeline_rows(text: str) -> dict[str, str]:
    """Each node's outcome in the table ``workflows show`` prints."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("NODE "))
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        node, outcome, *_ = line.split()
        rows[node] = outcome
    return rows


def node_steps(nodes: list[str]) -> list[tuple[str, str]]:
    return [(node, step) for node in nodes for step in ("scheduled", "started", "completed")]


def test_run_wait_shows_each_node_then_the_result(service: Service, unique: str) -> None:
    """``run --wait`` for an in-stock order prints every event of the stream in order, one line
    each, then the result, and exits 0."""
    id = f"cli-paid-{unique}"
    done = cli(
        service,
        *("run", ORDER, "--input", json.dumps(order(f"A-{unique}")), "--id", id, "--wait"),
    )
    assert done.returncode == ExitCode.OK, done.stderr
    assert progress(done.stdout) == [
        ("run", "started"),
        *node_steps(NODES),
        ("run", "completed"),
    ]
    final = result_json(done.stdout)
    assert final["status"] == "completed" and final["order_id"] == f"A-{unique}"

    again = cli(service, "run", ORDER, "--input", json.dumps(order(f"A-{unique}")), "--id", id)
    assert again.returncode == ExitCode.OK, again.stderr  # the id's run, not a second one
    assert again.stdout.startswith(f"found the run this id started (completed): {id}")


def test_review_by_signal(service: Service, unique: str, tmp_path: Path) -> None:
    """An order that needs review: ``run`` without ``--wait`` (the input from a file), the
    ``progress`` query, a refused and an accepted ``review`` signal, then its result."""
    id = f"cli-review-{unique}"
    input_file = tmp_path / "order.json"
    input_file.write_text(json.dumps(order(f"R-{unique}", customer_tier="new")))
    started = cli(service, "run", ORDER, "--input", f"@{input_file}", "--id", id)
    assert started.returncode == ExitCode.OK, started.stderr
    assert started.stdout.startswith(f"started {id} ({ORDER}, run ")
    service.wait_until(id, "waiting")

    asked = cli(service, "workflows", "query", id, "progress")
    assert asked.returncode == ExitCode.OK, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["status"] == "waiting" and answer["waiting"][0]["signal"] == "review"

    pending = cli(service, "workflows", "result", id)
    assert pending.returncode == ExitCode.RUNNING
    assert f"workflow {id!r} is still running" in pending.stderr

    refused = cli(service, "workflows", "signal", id, "review", "--value", '{"verdict": "maybe"}')
    assert refused.returncode == ExitCode.INPUT_REFUSED
    assert "verdict: 'maybe' is not one of" in refused.stderr
    assert "[422 input_invalid]" in refused.stderr

    sent = cli(service, "workflows", "signal", id, "review", "--value", '{"verdict": "approve"}')
    assert sent.returncode == ExitCode.OK, sent.stderr
    done = cli(service, "workflows", "result", id, "--wait", "30")
    assert done.returncode == ExitCode.OK, done.stderr
    final = json.loads(done.stdout)
    assert final["status"] == "completed" and final["review"] == {"verdict": "approve"}

    # workflows show: through the API (--api); the direct mode is tested in test_cli.py.
    shown = cli(service, "workflows", "show", id, "--api", service.root)
    assert shown.returncode == ExitCode.OK, shown.stderr
    rows = timeline_rows(shown.stdout)
    assert rows["await_review"] == "completed" and rows["release"] == "skipped"
    assert "\nresult:\n" in shown.stdout and "flowchart TD" in shown.stdout
    as_json = json.loads(cli(service, "workflows", "show", id, "--json").stdout)  # $BELUGAFLOW_API
    assert as_json["status"] == "completed" and as_json["result"] == final
    assert as_json["timeline"]["graph"] == ORDER


def test_workflows_list(service: Service, unique: str) -> None:
    """``workflows list``: the API's page as JSON, a table, and the next page by its cursor."""
    ids = [service.start(ORDER, order(f"L{n}-{unique}", "prod-3", 1))["id"] for n in (1, 2)]
    for id in ids:
        service.result(id)

    listed = cli(service, "workflows", "list", "--type", ORDER, "--limit", "1000", "--json")
    assert listed.returncode == ExitCode.OK, listed.stderr
    page = json.loads(listed.stdout)
    assert {"items", "next_cursor"} == set(page)
    found = {item["id"]: item["status"] for item in page["items"]}
    assert found[ids[0]] == found[ids[1]] == "completed"

    first = cli(service, "workflows", "list", "--status", "completed", "--limit", "1")
    assert first.returncode == ExitCode.OK, first.stderr
    header, row, following = first.stdout.splitlines()
    assert header.split() == ["ID", "TYPE", "STATUS", "STARTED", "(UTC)", "CLOSED", "(UTC)"]
    assert row.split()[2] == "completed"
    assert following.startswith("next page: --cursor ")
    cursor = following.removeprefix("next page: --cursor ")
    second = cli(service, "workflows", "list", "--status", "completed", "--limit", "1", "--json")
    assert json.loads(second.stdout)["next_cursor"] == cursor
    after = cli(service, "workflows", "list", "--status", "completed", "--cursor", cursor)
    assert after.returncode == ExitCode.OK, after.stderr
    assert row.split()[0] not in after.stdout  # the next page, not the first again

    wrong = cli(service, "workflows", "list", "--cursor", "not-a-cursor")
    assert wrong.returncode == ExitCode.INVALID
    assert "[400 invalid_cursor]" in wrong.stderr


def test_cancel_and_terminate(service: Service, unique: str) -> None:
    """``cancel`` and ``terminate`` a waiting run each; their results exit 4 (cancelled or
    terminated), and stopping a run that has ended exits 1."""
    cancelled = service.start(ORDER, order(f"X-{unique}", customer_tier="new"))["id"]
    terminated = service.start(ORDER, order(f"T-{unique}", customer_tier="new"))["id"]
    service.wait_until(cancelled, "waiting")
    service.wait_until(terminated, "waiting")

    assert cli(service, "workflows", "cancel", cancelled).returncode == ExitCode.OK
    outcome = cli(service, "workflows", "result", cancelled, "--wait", "30")
    assert outcome.returncode == ExitCode.CANCELLED, outcome.stderr
    assert "[409 run_cancelled]" in outcome.stderr

    stopped = cli(service, "workflows", "terminate", terminated, "--reason", "cli test", "--json")
    assert stopped.returncode == ExitCode.OK, stopped.stderr
    assert json.loads(stopped.stdout)["status"] == "terminated"
    outcome = cli(service, "workflows", "result", terminated, "--wait", "30", "--json")
    assert outcome.returncode == ExitCode.CANCELLED
    assert json.loads(outcome.stdout)["code"] == "run_terminated"  # the problem, for scripts

    again = cli(service, "workflows", "cancel", terminated)
    assert again.returncode == ExitCode.INVALID
    assert "[409 workflow_closed]" in again.stderr


def _register(service: Service, document: dict[str, Any]) -> None:
    reply = call(f"{service.url}/graphs", "POST", document)
    assert reply.status == 201, reply.body


def test_runs_that_fail_or_time_out(service: Service, unique: str) -> None:
    """``graph run --wait`` of a graph whose node fails exits 3 naming the node; one that
    exceeds its timeout exits 5."""
    once = {"max_attempts": 1, "initial_interval": 0.1, "backoff_coefficient": 1}
    failing, slow = f"cli-fails-{unique}", f"cli-slow-{unique}"
    _register(
        service,
        {
            "name": failing,
            "nodes": [{"name": "upper", "ref": "text.upper", "retry": once}],
            "entry": ["upper"],
            "finish": ["upper"],
        },
    )
    _register(
        service,
        {
            "name": slow,
            "nodes": [{"name": "hold", "ref": "", "wait": {"signal": "go", "key": "go"}}],
            "entry": ["hold"],
            "finish": ["hold"],
            "timeout": 1,
        },
    )
    failed = cli(service, "graph", "run", failing, "--input", "{}", "--wait")
    assert failed.returncode == ExitCode.FAILED, failed.stderr
    assert ("upper", "failed") in progress(failed.stdout)
    assert "[409 node_failed]" in failed.stderr and "KeyError" in failed.stderr

    timed_out = cli(service, "graph", "run", slow, "--wait")
    assert timed_out.returncode == ExitCode.TIMED_OUT, timed_out.stderr
    assert progress(timed_out.stdout)[-1] == ("run", "timed_out")
    assert "[409 run_timeout]" in timed_out.stderr


def test_graph_commands_through_the_api(service: Service, unique: str) -> None:
    """``graph list`` and ``graph show`` read the API's graphs; ``graph run --wait --json``
    prints only the result's JSON on stdout, the progress on stderr."""
    listed = cli(service, "graph", "list")
    assert listed.returncode == ExitCode.OK, listed.stderr
    assert listed.stdout.splitlines()[0].split() == [
        *("WORKFLOW", "TYPE", "VERSIONS", "SOURCE", "WAITS", "FOR"),
    ]
    assert [ORDER, "1", "code", "review"] in [line.split() for line in listed.stdout.splitlines()]
    graphs = json.loads(cli(service, "graph", "list", "--json").stdout)
    assert ORDER in {graph["name"] for graph in graphs}

    drawn = cli(service, "graph", "show", ORDER)
    assert drawn.returncode == ExitCode.OK and drawn.stdout.startswith("flowchart TD")
    spec = json.loads(cli(service, "graph", "show", ORDER, "--format", "json").stdout)
    assert spec["name"] == ORDER and spec["nodes"][0]["name"] == "validate"

    ran = cli(
        service,
        *("graph", "run", ORDER, "-i", json.dumps(order(f"G-{unique}", "prod-3", 1))),
        *("--id", f"cli-graph-{unique}", "--wait", "--json"),
    )
    assert ran.returncode == ExitCode.OK, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["id"] == f"cli-graph-{unique}" and answer["status"] == "completed"
    assert answer["result"]["status"] == "out_of_stock"
    assert progress(ran.stderr) == [
        ("run", "started"),
        *node_steps(["validate", "check_inventory", "notify"]),
        ("run", "completed"),
    ]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_error_exit_codes(service: Service) -> None:
    """Unknown type 7, bad input 6 (each field named), input that is no JSON 2, no such run
    7, nothing listening 8; ``--json`` puts the problem on stdout."""
    unknown = cli(service, "run", "no-such-type", "--input", "{}", "--json")
    assert unknown.returncode == ExitCode.NOT_FOUND
    assert "no workflow type 'no-such-type'" in unknown.stderr
    assert "[404 unknown_type]" in unknown.stderr
    assert json.loads(unknown.stdout)["code"] == "unknown_type"

    bad = cli(service, "run", ORDER, "--input", '{"order_id": 1}')
    assert bad.returncode == ExitCode.INPUT_REFUSED
    [line] = bad.stderr.splitlines()
    assert "input.order_id: 1 is not of type 'string'" in line
    assert "input.product_id: missing (required)" in line and "[422 input_invalid]" in line

    not_json = cli(service, "run", ORDER, "--input", "{order_id: 1}")
    assert not_json.returncode == ExitCode.USAGE and "is not JSON" in not_json.stderr

    missing = cli(service, "workflows", "result", "no-such-run")
    assert missing.returncode == ExitCode.NOT_FOUND
    assert "[404 workflow_not_found]" in missing.stderr

    nowhere = f"http://127.0.0.1:{_closed_port()}"
    for args in (("workflows", "list"), ("run", ORDER, "--input", "{}")):
        down = cli(service, *args, api=nowhere)
        assert down.returncode == ExitCode.UNREACHABLE, down.stderr
        assert f"cannot reach the API at {nowhere}" in down.stderr


class CuttingProxy:
    """A TCP proxy to the API on 127.0.0.1 that records each request's head and cuts the
    first event stream after ``cut_after`` messages (the stream's ``retry:`` counts as one)."""

    def __init__(self, target: str, cut_after: int = 3) -> None:
        host, _, port = target.removeprefix("http://").partition(":")
        self.target = (host, int(port))
        self.cut_after = cut_after
        self.heads: list[str] = []
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError), client:
            self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        with upstream:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            text = head.decode("latin-1")
            with self._lock:
                self.heads.append(text)
                cut = "/events " in text.split("\r\n")[0] and self.cuts == 0
                self.cuts += cut
            upstream.sendall(head)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            seen = b""
            while chunk := upstream.recv(65536):
                if cut:
                    seen += chunk
                    ends = [m.end() for m in re.finditer(b"\n\n", seen)]
                    if len(ends) >= self.cut_after:
                        client.sendall(chunk[: len(chunk) - (len(seen) - ends[self.cut_after - 1])])
                        # Drop the connection mid-stream. shutdown, not just close: the pipe
                        # thread blocked in recv() would keep the connection open.
                        for end in (client, upstream):
                            end.shutdown(socket.SHUT_RDWR)
                        return
                client.sendall(chunk)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)


@pytest.fixture
def proxy(service: Service) -> Iterator[CuttingProxy]:
    cutting = CuttingProxy(service.root)
    try:
        yield cutting
    finally:
        cutting.close()


def test_run_wait_reconnects_with_last_event_id(
    service: Service, unique: str, proxy: CuttingProxy
) -> None:
    """When the event stream drops, ``run --wait`` reconnects with ``Last-Event-ID`` and
    shows every event once, in order; every request carries the API key given."""
    done = cli(
        service,
        *("run", ORDER, "--input", json.dumps(order(f"D-{unique}", "prod-3", 1)), "--wait"),
        *("--api", proxy.url, "--api-key", "s3cret"),
    )
    assert done.returncode == ExitCode.OK, done.stderr
    assert progress(done.stdout) == [
        ("run", "started"),
        *node_steps(["validate", "check_inventory", "notify"]),
        ("run", "completed"),
    ]
    assert "reconnecting in 2 s, after event " in done.stderr
    streams = [head for head in proxy.heads if "/events " in head.split("\r\n")[0]]
    assert len(streams) == 2 and "Last-Event-ID" not in streams[0]
    resumed = re.search(r"(?im)^last-event-id: (\S+)\r$", streams[1])
    assert resumed is not None and int(resumed[1]) > 1  # after run.started (event 1) and more
    assert all("Authorization: Bearer s3cret\r\n" in head for head in proxy.heads)


def test_the_exit_code_table_is_the_enum() -> None:
    """docs/cli.md's exit-code table lists exactly the codes of ``ExitCode``."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    table = text[text.index("## Exit codes") :].split("\n\n")[1]
    documented = [int(code) for code in re.findall(r"^\| `(\d+)` \|", table, re.MULTILINE)]
    assert documented == [int(code) for code in ExitCode]
