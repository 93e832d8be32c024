"""API keys and tenants, over real HTTP on 127.0.0.1: keys made with ``belugaflow keys create``,
a ``belugaflow worker`` process polling each tenant's namespace (the tenants come from its
config, here through ``BELUGAFLOW__SERVER__AUTH__*``), the session's dev server, and ``curl``
and the official ``temporal`` CLI as clients we did not write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.server.chromium import Browser
from tests.server.conftest import BackgroundApi
from tests.server.test_api import ORDER, order
from tests.server.web import Reply, call
from tests.temporal.fault_app import ROOT, WorkerProcess, belugaflow_command

from belugaflow.server._auth import ApiKeys
from belugaflow.temporal import DevServer, find_temporal_cli

CHROMIUM = shutil.which("chromium")


def create_key(keys_file: Path, tenant: str) -> str:
    """``belugaflow keys create TENANT --file KEYS_FILE``, as a person would; the key."""
    done = subprocess.run(
        [*belugaflow_command(), "keys", "create", tenant, "--file", str(keys_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "shown this once" in done.stderr
    return done.stdout.strip()


@dataclass
class Tenants:
    url: str
    """The API's base, ``.../api/v1``."""
    root: str
    keys: dict[str, str]
    """Each tenant's key."""
    keys_file: Path
    address: str

    def call(self, tenant: str | None, path: str, method: str = "GET", body: Any = None) -> Reply:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"} if tenant else {}
        if body is None:
            return call(f"{self.url}{path}", method, headers=headers)
        return call(f"{self.url}{path}", method, body, headers=headers)

    def temporal(self, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
        """The official ``temporal`` CLI, in ``namespace``."""
        command = [str(find_temporal_cli()), *args, "--address", self.address]
        command += ["--namespace", namespace]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def tenants(
    temporal_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tenants]:
    """Tenants ``acme-*`` and ``globex-*`` (namespaces of their names), a key each, a worker
    for both, and the API with those keys."""
    from tests.server.app import build

    folder = tmp_path_factory.mktemp("tenants")
    suffix = uuid.uuid4().hex[:6]
    names = [f"acme-{suffix}", f"globex-{suffix}"]
    keys_file = folder / "keys.yaml"
    keys = {name: create_key(keys_file, name) for name in names}
    db = folder / "shop.db"
    task_queue = f"tenants-{suffix}"
    worker = WorkerProcess(
        "tests.server.app:build",
        address=temporal_server.address,
        namespace=temporal_server.namespace,
        task_queue=task_queue,
        log=folder / "worker.log",
        env={
            "BELUGAFLOW_ORDERS_DB": str(db),
            "BELUGAFLOW__SERVER__AUTH__TENANTS": ",".join(names),
            "BELUGAFLOW__SERVER__AUTH__KEYS_FILE": str(keys_file),
        },
    )
    try:
        worker.monitoring_url()  # it polls every namespace once it serves its endpoints
        orch = build(db)
        orch.temporal_address = temporal_server.address
        orch.temporal_namespace = temporal_server.namespace
        orch.workflow_task_queue = task_queue
        auth = ApiKeys({name: name for name in names}, keys_file=keys_file)
        with BackgroundApi(orch, auth=auth) as api:
            yield Tenants(api.url + "/api/v1", api.url, keys, keys_file, temporal_server.address)
    finally:
        worker.stop()


def acme(tenants: Tenants) -> str:
    return next(name for name in tenants.keys if name.startswith("acme"))


def globex(tenants: Tenants) -> str:
    return next(name for name in tenants.keys if name.startswith("globex"))


def curl(*args: str) -> tuple[int, dict[str, str], Any]:
    """``curl -i ARGS``: the status, the headers (lowercase names) and the JSON body."""
    done = subprocess.run(
        ["curl", "-sS", "-i", *args], capture_output=True, text=True, timeout=30, check=True
    )
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    status_line, *lines = head.splitlines()
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body) if body else None


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_no_key_or_a_wrong_key_is_401_and_monitoring_needs_none(tenants: Tenants) -> None:
    starts = ["-X", "POST", "-H", "Content-Type: application/json"]
    body = ["-d", json.dumps({"type": ORDER, "input": order("K-1")})]
    cases = [
        ([], "unauthorized"),
        (["-H", "Authorization: Bearer bf_not-a-key"], "invalid_api_key"),
        (["-H", f"Authorization: Basic {tenants.keys[acme(tenants)]}"], "unauthorized"),
        (["-H", "Authorization: Bearer "], "unauthorized"),
    ]
    for path, extra in [
        ("/workflows", []),
        ("/workflows", starts + body),
        ("/graphs", []),
        ("/workflows/some-id/events", []),
        ("/workflows/some-id/cancel", ["-X", "POST"]),
    ]:
        for headers, code in cases:
            status, got, problem = curl(*extra, *headers, f"{tenants.url}{path}")
            assert status == 401, (path, headers, problem)
            assert problem["code"] == code and got["www-authenticate"].startswith("Bearer")
            assert tenants.keys[acme(tenants)] not in json.dumps(problem)
    # Monitoring, the docs and the run page's HTML need no key.
    for path in ("/healthz", "/metrics", "/openapi.json", "/docs", "/runs/some-id"):
        assert call(f"{tenants.root}{path}").status == 200, path
    assert tenants.call(None, "/workflows").status == 401  # still
    # No workflow started: neither tenant has a run of that order.
    for tenant in tenants.keys:
        assert tenants.call(tenant, "/workflows/K-1").status == 404


def test_the_openapi_schema_names_the_bearer_scheme(tenants: Tenants) -> None:
    schema = call(f"{tenants.root}/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"] == {"type": "http", "scheme": "bearer"}
    start = schema["paths"]["/api/v1/workflows"]["post"]
    assert start["security"] == [{"apiKey": []}] and "401" in start["responses"]
    assert "security" not in schema["paths"].get("/healthz", {}).get("get", {})


def test_a_tenant_can_neither_see_signal_nor_cancel_anothers_runs(
    tenants: Tenants, tmp_path: Path
) -> None:
    a, g = acme(tenants), globex(tenants)
    id = f"tenant-{uuid.uuid4().hex[:8]}"
    waiting = order(f"T-{id}", "prod-2", 3, customer_tier="new")  # waits for review
    started = tenants.call(a, "/workflows", "POST", {"type": ORDER, "input": waiting, "id": id})
    assert started.status == 201, started.body

    deadline = time.monotonic() + 30
    while tenants.call(a, f"/workflows/{id}/queries/progress").json()["result"]["status"] != (
        "waiting"
    ):
        assert time.monotonic() < deadline, "the run never waited for review"
        time.sleep(0.2)

    approve = {"verdict": "approve", "note": "by acme"}
    for method, path, body in [
        ("GET", f"/workflows/{id}", None),
        ("GET", f"/workflows/{id}/result?wait=0", None),
        ("GET", f"/workflows/{id}/graph", None),
        ("GET", f"/workflows/{id}/events", None),
        ("GET", f"/workflows/{id}/queries/progress", None),
        ("POST", f"/workflows/{id}/signals/review", approve),
        ("POST", f"/workflows/{id}/cancel", None),
        ("POST", f"/workflows/{id}/terminate", None),
        ("GET", f"/workflows/{ORDER}/status?id={id}", None),
    ]:
        reply = tenants.call(g, path, method, body)
        assert reply.status == 404, (path, reply.body)  # not 403: the id does not leak
        assert reply.problem["code"] == "workflow_not_found"
    listed = tenants.call(g, f"/workflows?type={ORDER}&limit=1000").json()["items"]
    assert id not in {item["id"] for item in listed}
    assert id in {item["id"] for item in tenants.call(a, "/workflows?limit=1000").json()["items"]}

    # The same id is free in the other tenant's namespace: its own run, not acme's.
    theirs = tenants.call(
        g, "/workflows", "POST", {"type": ORDER, "input": order(f"G-{id}"), "id": id}
    )
    assert theirs.status == 201 and theirs.json()["run_id"] != started.json()["run_id"]
    assert tenants.call(g, f"/workflows/{id}/result?wait=30").json()["status"] == "completed"

    # Acme's run still waits, untouched; acme approves it.
    assert tenants.call(a, f"/workflows/{id}").json()["status"] == "running"
    sent = tenants.call(a, f"/workflows/{id}/signals/review", "POST", approve)
    assert sent.status == 202, sent.body
    done = tenants.call(a, f"/workflows/{id}/result?wait=30").json()
    assert done["status"] == "completed" and done["result"]["review"]["note"] == "by acme"

    # As Temporal sees it: each run in its tenant's namespace, none in the default one.
    for namespace, order_id in ((a, f"T-{id}"), (g, f"G-{id}")):
        shown = tenants.temporal(namespace, "workflow", "describe", "-w", id, "-o", "json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["workflowExecutionInfo"]["type"]["name"] == ORDER
        result = tenants.temporal(namespace, "workflow", "result", "-w", id, "-o", "json")
        assert order_id in result.stdout
    assert tenants.temporal("default", "workflow", "describe", "-w", id).returncode != 0


def test_a_graph_registered_by_a_tenant_is_its_own(tenants: Tenants) -> None:
    a, g = acme(tenants), globex(tenants)
    name = f"shout-{uuid.uuid4().hex[:6]}"
    document = {
        "name": name,
        "version": 1,
        "nodes": [{"name": "up", "ref": "text.upper"}, {"name": "bang", "ref": "text.exclaim"}],
        "edges": [["up", "bang"]],
        "entry": ["up"],
        "finish": ["bang"],
    }
    assert tenants.call(a, "/graphs", "POST", document).status == 201
    assert name in {graph["name"] for graph in tenants.call(a, "/graphs").json()}
    assert name not in {graph["name"] for graph in tenants.call(g, "/graphs").json()}
    assert tenants.call(g, f"/graphs/{name}").status == 404
    refused = tenants.call(g, f"/graphs/{name}/runs", "POST", {"text": "hi"})
    assert refused.status == 404, refused.body
    # Acme runs it durably, on the worker that started before it was registered.
    run = tenants.call(a, f"/graphs/{name}/runs", "POST", {"text": "hi"})
    assert run.status == 201, run.body
    result = tenants.call(a, f"/workflows/{run.json()['id']}/result?wait=30").json()
    assert result["result"]["text"] == "HI!"


def test_keys_are_read_again_when_the_file_changes(tenants: Tenants) -> None:
    """A key added with ``belugaflow keys create`` works at once; one deleted from the file
    stops working within a second or two; no restart."""
    g = globex(tenants)
    before = yaml.safe_load(tenants.keys_file.read_text())
    added = create_key(tenants.keys_file, g)
    headers = {"Authorization": f"Bearer {added}"}

    def status() -> int:
        return call(f"{tenants.url}/workflows?limit=1", headers=headers).status

    deadline = time.monotonic() + 10
    while status() != 200:
        assert time.monotonic() < deadline, "the added key never worked"
        time.sleep(0.2)
    tenants.keys_file.write_text(yaml.safe_dump(before))  # its entry removed
    while status() != 401:
        assert time.monotonic() < deadline, "the removed key kept working"
        time.sleep(0.2)
    assert tenants.call(g, "/workflows?limit=1").status == 200  # the others still do


def test_a_tenants_namespace_is_made_on_first_use(
    temporal_server: DevServer, tmp_path: Path
) -> None:
    """A tenant no worker polls yet: its first request makes its namespace (here with the
    namespace set in the config, not the tenant's name)."""
    from belugaflow import Orchestrator
    from belugaflow.config import load_config_text

    tenant, namespace = "fresh", f"fresh-ns-{uuid.uuid4().hex[:6]}"
    keys_file = tmp_path / "keys.yaml"
    key = create_key(keys_file, tenant)
    config = load_config_text(
        yaml.safe_dump(
            {
                "temporal": {"address": temporal_server.address},
                "server": {"auth": {"tenants": {tenant: {"namespace": namespace}},
                                    "keys_file": str(keys_file)}},
            }
        ),
        env={},
    )  # fmt: skip
    describe = [str(find_temporal_cli()), "operator", "namespace", "describe", "-n", namespace]
    describe += ["--address", temporal_server.address]
    assert subprocess.run(describe, capture_output=True, timeout=30).returncode != 0
    with BackgroundApi(Orchestrator.from_config(config), auth=None) as api:
        reply = call(f"{api.url}/api/v1/workflows", headers={"Authorization": f"Bearer {key}"})
        assert reply.status == 200 and reply.json()["items"] == [], reply.body
    shown = subprocess.run(describe, capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and namespace in shown.stdout, shown.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make tools installs it)")
def test_the_run_page_asks_for_the_key_and_takes_it_from_the_link(
    tenants: Tenants, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    a = acme(tenants)
    id = f"page-{uuid.uuid4().hex[:8]}"
    started = tenants.call(a, "/workflows", "POST", {"type": ORDER, "input": order(id), "id": id})
    assert started.status == 201
    page = f"{tenants.root}/runs/{id}"
    with Browser(CHROMIUM, tmp_path) as browser:
        browser.goto(page)
        browser.wait_until("!document.getElementById('key-form').hidden", what="the key form")
        assert "(401, unauthorized)" in browser.evaluate(
            "document.getElementById('error').textContent"
        )

        browser.goto("about:blank")  # else only the fragment changes: no new load
        browser.goto(f"{page}#key={tenants.keys[a]}")
        browser.wait_until(
            "document.getElementById('status').textContent === 'completed'", what="completed"
        )
        assert browser.evaluate("location.hash") == ""  # the key left the address bar
        assert browser.evaluate("document.getElementById('key-form').hidden")
        assert browser.evaluate("document.querySelectorAll('svg.graph [data-node]').length") > 5
        assert (
            browser.evaluate(
                "document.querySelector('svg.graph [data-node=\"notify\"]').dataset.status"
            )
            == "completed"
        )
        assert browser.exceptions() == []

        # Another tenant's key sees no such run.
        browser.goto("about:blank")
        browser.goto(f"{page}#key={tenants.keys[globex(tenants)]}")
        browser.wait_until("!document.getElementById('error').hidden", what="the problem")
        shown = browser.evaluate("document.getElementById('error').textContent")
        assert "(404, workflow_not_found)" in shown


def test_serve_refuses_to_start_without_keys_and_without_auth_listens_locally(
    temporal_server: DevServer, tmp_path: Path
) -> None:
    """``belugaflow serve``: auth on and no keys → exit 1 saying what to do; ``--no-auth``
    with ``--host 0.0.0.0`` → it listens on 127.0.0.1 and says so."""
    command = [*belugaflow_command(), "serve", "--app", "tests.server.app:build", "--port", "0"]
    command += ["--address", temporal_server.address]
    env = {**os.environ, "BELUGAFLOW_ORDERS_DB": str(tmp_path / "shop.db")}
    refused = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "belugaflow keys create" in refused.stderr and "server.auth.enabled" in refused.stderr

    with subprocess.Popen(
        [*command, "--no-auth", "--host", "0.0.0.0"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            said = []
            for line in process.stderr:
                said.append(line)
                if "SIGTERM or Ctrl-C stops" in line:
                    break
            text = "".join(said)
            assert "listening on 127.0.0.1, not 0.0.0.0" in text, text
            assert "auth off" in text
            assert "API for tests.server.app:build at http://127.0.0.1:" in text
        finally:
            process.terminate()
            process.wait(30)
