"""Fixtures of the REST API tests: the API served over real HTTP on 127.0.0.1 against a real
worker process and the session's Temporal dev server.

``service`` (one per session of these tests) starts a ``belugaflow worker`` process of
``tests.server.app:build`` on a task queue of its own, then the API of the same app with
uvicorn on a free port, on an event loop in a background thread. Tests are plain functions
that talk HTTP; each uses its own workflow ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.server.web import call
from tests.temporal.fault_app import WorkerProcess

if TYPE_CHECKING:
    from belugaflow import Orchestrator
    from belugaflow.temporal import DevServer

MAX_BODY_BYTES = 64 * 1024
"""The test app's body limit (the default is 1 MiB)."""


class BackgroundApi:
    """``create_app(orch)`` served by uvicorn on its own event loop in a daemon thread; auth
    off unless ``options`` say otherwise."""

    def __init__(
        self, orch: Orchestrator, customize: Callable[[Any], None] | None = None, **options: Any
    ) -> None:
        self.orch = orch
        self.customize = customize
        self.options = {"auth": "off", **options}
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="api", daemon=True)

    def __enter__(self) -> BackgroundApi:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the API did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:
            self._error = error
            self._ready.set()

    async def _serve(self) -> None:
        from belugaflow.server import create_app, serving

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = create_app(self.orch, **self.options)
        if self.customize is not None:
            self.customize(app)
        async with serving(app) as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()

    def run(self, coroutine: Any, timeout: float = 60.0) -> Any:
        """Run ``coroutine`` on the API's loop (with its orchestrator's client) and return its
        result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)


@dataclass
class Service:
    """The API, its worker process and what they share."""

    api: BackgroundApi
    worker: WorkerProcess
    task_queue: str
    db: Path

    @property
    def url(self) -> str:
        return self.api.url + "/api/v1"

    @property
    def root(self) -> str:
        return self.api.url

    @property
    def orch(self) -> Orchestrator:
        return self.api.orch

    def start(self, type: str, input: Any, id: str | None = None) -> dict[str, Any]:
        """POST /workflows, expecting 201."""
        body: dict[str, Any] = {"type": type, "input": input}
        if id is not None:
            body["id"] = id
        reply = call(f"{self.url}/workflows", "POST", body)
        assert reply.status == 201, reply.body
        started: dict[str, Any] = reply.json()
        return started

    def result(self, id: str, wait: float = 30) -> Any:
        """GET /workflows/{id}/result, expecting 200."""
        reply = call(f"{self.url}/workflows/{id}/result?wait={wait}")
        assert reply.status == 200, reply.body
        return reply.json()["result"]

    def wait_until(self, id: str, status: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll the ``progress`` query until the run's status is ``status``."""
        import time

        deadline = time.monotonic() + timeout
        answer: dict[str, Any] = {}
        while time.monotonic() < deadline:
            reply = call(f"{self.url}/workflows/{id}/queries/progress")
            if reply.status == 200:
                answer = reply.json()["result"]
                if answer.get("status") == status:
                    return answer
            time.sleep(0.1)
        raise AssertionError(f"run {id} never became {status!r}: {answer}")


@pytest.fixture(scope="session")
def service(
    temporal_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """The API and a worker process of ``tests.server.app:build``; the worker starts first."""
    from tests.server.app import build

    folder = tmp_path_factory.mktemp("api")
    db = folder / "shop.db"
    task_queue = f"api-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        "tests.server.app:build",
        address=temporal_server.address,
        namespace=temporal_server.namespace,
        task_queue=task_queue,
        log=folder / "worker.log",
        env={"BELUGAFLOW_ORDERS_DB": str(db)},
    )
    try:
        worker.monitoring_url()  # it polls once it serves its endpoints
        orch = build(db)
        with contextlib.closing(sqlite3.connect(db)) as shop, shop:  # enough for every test
            shop.execute("UPDATE stock SET quantity = 100000 WHERE product_id != 'prod-3'")
        orch.temporal_address = temporal_server.address
        orch.temporal_namespace = temporal_server.namespace
        orch.workflow_task_queue = task_queue
        with BackgroundApi(orch, max_body_bytes=MAX_BODY_BYTES, sse_keepalive=1.0) as api:
            yield Service(api, worker, task_queue, db)
    finally:
        worker.stop()


@pytest.fixture
def unique() -> str:
    """A fresh suffix for workflow ids."""
    return uuid.uuid4().hex[:8]
