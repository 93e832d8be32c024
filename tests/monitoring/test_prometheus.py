"""A real Prometheus (Debian's) scrapes a worker process of the order example every second
while it runs orders; PromQL through Prometheus's HTTP API sees the use case's metrics with
the right values."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.temporal.fault_app import WorkerProcess

from belugaflow import NodeFailedError, Orchestrator
from belugaflow.temporal import DevServer
from examples.order_processing.app import DB_ENV
from examples.order_processing.db import Store
from examples.order_processing.graph import build_order_graph

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="Debian's prometheus is not installed (make test installs it as root with apt-get)",
)

Query = Callable[[str], float | None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], Query]]:
    """``start(target)``: Prometheus scraping ``target`` (``host:port``) every second; returns
    a PromQL query function (the first sample's value, None when the result is empty)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> Query:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: belugaflow\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
        api = f"127.0.0.1:{free_port()}"
        with (tmp_path / "prometheus.log").open("wb") as log:
            started.append(
                subprocess.Popen(
                    [
                        "prometheus",
                        f"--config.file={config}",
                        f"--web.listen-address={api}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://{api}/-/ready", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or started[-1].poll() is not None:
                    pytest.fail((tmp_path / "prometheus.log").read_text()[-2000:])
                time.sleep(0.2)

        def query(promql: str) -> float | None:
            url = f"http://{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
            with urllib.request.urlopen(url, timeout=10) as response:
                answer: dict[str, Any] = json.load(response)
            assert answer["status"] == "success", answer
            result = answer["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        return query

    try:
        yield start
    finally:
        for process in started:
            process.terminate()
            process.wait(30)


async def until_equal(query: Query, promql: str, expected: float) -> None:
    """Poll ``promql`` until it equals ``expected`` (Prometheus scrapes every second)."""
    deadline = time.monotonic() + 30
    found = None
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(query, promql)
        if found == expected:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{promql} = {found}, expected {expected}")


async def test_prometheus_scrapes_the_use_case_metrics_from_a_worker(
    temporal_server: DevServer, tmp_path: Path, prometheus: Callable[[str], Query]
) -> None:
    shop = tmp_path / "orders.db"
    worker = WorkerProcess(
        "examples.order_processing.app:orch",
        address=temporal_server.address,
        namespace=temporal_server.namespace,
        task_queue=f"scraped-{uuid.uuid4().hex[:8]}",
        log=tmp_path / "worker.log",
        env={DB_ENV: str(shop)},
    )
    try:
        url = await asyncio.to_thread(worker.monitoring_url)
        query = prometheus(urllib.parse.urlsplit(url).netloc)
        client = Orchestrator(
            temporal_address=temporal_server.address,
            temporal_namespace=temporal_server.namespace,
            workflow_task_queue=worker.task_queue,
            metrics=False,
        )
        graph = build_order_graph(client, Store.create(shop))  # the worker's graph, by name
        orders = [
            {"order_id": f"p-{n}", "product_id": "prod-1", "quantity": 1, "review_threshold": 1e6}
            for n in range(3)
        ]
        for order in orders:
            assert (await client.run(graph, order, engine="temporal"))["status"] == "completed"
        with pytest.raises(NodeFailedError, match="unknown product"):
            unknown = {"order_id": "p-x", "product_id": "nope", "quantity": 1}
            await client.run(graph, unknown, engine="temporal")

        run = 'workflow="order-processing",engine="temporal"'
        await until_equal(query, f"workflows_started_total{{{run}}}", 4)
        await until_equal(query, f'workflow_failures_total{{{run},code="node_failed"}}', 1)
        await until_equal(query, f"sum(workflow_duration_seconds_count{{{run}}})", 4)
        await until_equal(query, f"workflow_runs_in_flight{{{run}}}", 0)
        activity = f'{run},activity="process_payment",outcome="completed"'
        await until_equal(query, f"workflow_activities_total{{{activity}}}", 3)
        await until_equal(query, f"sum(workflow_retries_total{{{run}}}) or vector(0)", 0)
        await until_equal(query, 'up{job="belugaflow"}', 1)
    finally:
        worker.stop()
