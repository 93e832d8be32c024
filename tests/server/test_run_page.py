"""The run page (``/runs/{id}``): served by the API, drawn on the server, live in a real
headless Chromium (Debian's ``chromium``; ``make tools`` installs it) against a real worker
and the dev server."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from tests.server.chromium import Browser
from tests.server.conftest import Service
from tests.server.test_api import ORDER, order
from tests.server.web import call

from belugaflow.server._drawing import graph_svg

CHROMIUM = shutil.which("chromium")

# Every change of a node's status, in order, recorded in the page from its first moment.
RECORD_CHANGES = """
window.__changes = [];
new MutationObserver((records) => {
  for (const {target} of records) {
    if (target.dataset.node) window.__changes.push([target.dataset.node, target.dataset.status]);
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-status"]});
"""


def status_of(node: str) -> str:
    # The page draws the graph once GET /graph answered: null-safe until then.
    return f"(document.querySelector('svg.graph [data-node=\"{node}\"]')?.dataset.status || '')"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make tools installs it)")
def test_run_page_live_in_chromium(service: Service, unique: str, tmp_path: Path) -> None:
    """A person's view: the page loads an order waiting for review, shows its nodes and
    timeline, is approved by a click on its button, and follows the run to its end."""
    assert CHROMIUM is not None
    run = service.start(
        ORDER, order(f"W-{unique}", "prod-2", 3, customer_tier="new"), id=f"page-{unique}"
    )
    with Browser(CHROMIUM, tmp_path) as browser:
        browser.on_new_document(RECORD_CHANGES)
        browser.goto(f"{service.root}/runs/{run['id']}")
        assert browser.evaluate("document.getElementById('run-id').textContent") == run["id"]

        browser.wait_until(f"{status_of('await_review')} === 'waiting'", what="review waits")
        approve = 'button[data-signal="review"][data-value="approve"]'
        browser.wait_until(f"!document.querySelector('{approve}').disabled", what="enabled")
        assert browser.evaluate("document.getElementById('status').textContent") == "running"
        assert browser.evaluate(status_of("validate")) == "completed"
        assert browser.evaluate(status_of("process_payment")) == ""
        rows = browser.evaluate(
            "[...document.querySelectorAll('#timeline tbody tr')]"
            ".map(tr => [tr.cells[0].textContent, tr.cells[1].textContent])"
        )
        assert ["validate", "completed"] in rows and ["await_review", "waiting"] in rows
        # A refusal of the API is shown on the page (the next action clears it).
        browser.evaluate("act('a signal it does not take', '/signals/nope', {})")
        shown = browser.evaluate("document.getElementById('error').textContent")
        assert "(404, unknown_signal)" in shown and "takes no signal 'nope'" in shown
        before = len(browser.evaluate("window.__changes"))

        browser.click(approve)

        browser.wait_until(
            "document.getElementById('status').textContent === 'completed'", what="completed"
        )
        browser.wait_until(f"{status_of('notify')} === 'completed'", what="notify completed")
        browser.wait_until("!!document.querySelector('#outcome pre')", what="the result shown")
        changes = [tuple(c) for c in browser.evaluate("window.__changes")]
        assert ("await_review", "waiting") in changes[:before]
        after = changes[before:]
        # After the click, live: the wait ends, payment runs and ends, as the events come.
        assert ("await_review", "completed") in after
        payment = [status for node, status in after if node == "process_payment"]
        assert payment and payment[-1] == "completed"
        log = browser.evaluate(
            "[...document.querySelectorAll('#events li')].map(li => li.textContent)"
        )
        assert any(line.endswith("node.scheduled process_payment") for line in log)
        assert any(line.endswith("node.completed process_payment") for line in log)
        assert any(line.endswith("run.completed completed") for line in log)
        assert browser.evaluate(status_of("release")) == "skipped"
        assert any(line.endswith("signal.received review") for line in log)
        result = json.loads(browser.evaluate("document.querySelector('#outcome pre').textContent"))
        assert result["review"]["verdict"] == "approve"
        assert browser.evaluate("document.getElementById('error').hidden")
        assert browser.evaluate(f"document.querySelector('{approve}').disabled")
        assert browser.evaluate("document.getElementById('cancel').disabled")
        assert browser.exceptions() == []
        outside = [url for url in browser.requested() if not url.startswith(service.root)]
        assert outside == []  # nothing from a CDN or anywhere else

    shown = call(f"{service.url}/workflows/{run['id']}").json()
    assert shown["status"] == "completed" and shown["result"]["review"]["verdict"] == "approve"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make tools installs it)")
def test_run_page_of_an_unknown_run(service: Service, tmp_path: Path) -> None:
    """``/runs/{id}`` of no run shows the API's problem: the page holds only the id, and
    learns the rest from the API."""
    assert CHROMIUM is not None
    with Browser(CHROMIUM, tmp_path) as browser:
        browser.goto(f"{service.root}/runs/no-such-run")
        browser.wait_until("!document.getElementById('error').hidden", what="the problem shown")
        shown = browser.evaluate("document.getElementById('error').textContent")
        assert "(404, workflow_not_found)" in shown and "no-such-run" in shown
        assert browser.evaluate("document.getElementById('status').textContent") == "unknown"
        assert browser.evaluate("document.getElementById('key-form').hidden")
        assert browser.exceptions() == []


def test_the_run_graph_route_and_a_page_that_escapes(service: Service, unique: str) -> None:
    """``GET /workflows/{id}/graph`` draws the run's graph and names its signals with their
    schemas and waits; the page of an id with markup in it keeps it text."""
    run = service.start(ORDER, order(f"S-{unique}"), id=f"<b>{{{{data}}}}-{unique}")
    quoted = run["id"].replace("<", "%3C").replace(">", "%3E")
    reply = call(f"{service.url}/workflows/{quoted}/graph")
    assert reply.status == 200, reply.body
    graph = reply.json()
    assert graph["id"] == run["id"] and graph["type"] == ORDER
    assert graph["svg"].startswith("<svg") and 'data-node="await_review"' in graph["svg"]
    signals = {s["name"]: s for s in graph["signals"]}
    assert signals["review"]["waits"] == ["await_review"]
    assert signals["review"]["schema"]["properties"]["verdict"]["enum"] == ["approve", "reject"]
    assert "resolve" in signals

    page = call(f"{service.root}/runs/{quoted}")
    assert page.status == 200 and page.content_type == "text/html"
    text = page.body.decode()
    assert "<b>" not in text and "<svg" not in text  # the drawing comes from the API
    found = re.search(r'<script type="application/json" id="run-data">(.*?)</script>', text)
    assert found is not None
    assert json.loads(found[1]) == {"id": run["id"], "api": "../api/v1/"}
    service.result(run["id"])


def test_graph_svg_draws_every_node_and_edge(tmp_path: Path) -> None:
    """Each node of the order graph is a group named by ``data-node``; routes are dashed and
    labelled, and a wait names its signal."""
    from tests.server.app import build

    spec = build(tmp_path / "shop.db").registry.graphs[ORDER][1]
    svg = graph_svg(spec)
    drawn = re.findall(r'class="node (\w+)"[^>]*data-node="([^"]+)"', svg)
    assert {name for _, name in drawn} == {n.name for n in spec.nodes} | {
        "__start__",
        "__end__",
    }
    assert ("wait", "await_review") in drawn and "waits for review" in svg
    routes = re.findall(r'<g class="edge route" data-source="decide" data-target="(\w+)">', svg)
    assert sorted(routes) == ["await_review", "process_payment", "release"]
    assert ">out_of_stock</text>" in svg
