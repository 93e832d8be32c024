"""``chaos``: the order graph run durably, thousands of times, while its server and workers die.

A soak, not a speed test. :func:`soak` starts a durable embedded Temporal server (a SQLite file,
``Durability.FULL``), a shop database and two ``belugaflow worker --app
tests.temporal.fault_app:orch`` processes on one task queue, then runs the example's order graph
(``examples.order_processing.graph``) once per order through ``TemporalEngine``, a bounded
number at a time. Meanwhile a fault schedule SIGKILLs the server (and starts it again on the
same file and port) and SIGKILLs workers (each replaced at once). At the end it counts what
every run became, what the shop recorded, and what the server holds:

- ``lost``: runs submitted but never finished (must be 0);
- ``duplicate_payments``: orders with more than one payment row (must be 0);
- ``payment_mismatches``: a completed order whose result names another payment than the shop's
  row, or that has no fulfilment; an out-of-stock order that was charged (must be 0);
- ``runs_started_twice``: workflow ids the server ran more than once (must be 0).

Run ``python -m benchmarks.chaos`` (2,000 runs, faults at random, seeded) or
``python -m benchmarks.run --only chaos``; ``make bench`` leaves it out (several minutes, and it
measures survival, not speed). ``tests/temporal/test_chaos.py`` runs a small one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode
from tests.temporal import fault_app
from tests.temporal.fault_app import FAULT_DIR_ENV, WorkerProcess

from belugaflow import Graph, Orchestrator, RunError
from belugaflow.temporal import DevServer, Durability
from belugaflow.temporal._engine import TemporalEngine
from examples.order_processing.app import DB_ENV
from examples.order_processing.db import Store
from examples.order_processing.graph import build_order_graph

__all__ = [
    "QUICK_IN_FLIGHT",
    "QUICK_RUNS",
    "ChaosReport",
    "Cluster",
    "FaultSchedule",
    "Progress",
    "chaos",
    "faults_after",
    "main",
    "quick_faults",
    "random_faults",
    "soak",
]

Record = dict[str, Any]

APP = "tests.temporal.fault_app:orch"
WORKERS = 2
IN_STOCK = "prod-1"
SOLD_OUT = "prod-3"  # seeded with no stock: its orders take the out_of_stock route
HEARTBEAT_TIMEOUT = 2.0  # seconds: a killed worker's nodes are retried elsewhere this soon
RETRY_PAUSE = 0.5  # seconds between a run's client-side retries while the server is away
MAX_CLIENT_RETRIES = 200  # per run; with RETRY_PAUSE and the SDK's own retries, minutes
SUPERVISE_EVERY = 0.25  # seconds between looks at the workers
SERVER_CALL_TIMEOUT = 30.0  # seconds for the closing look at the server (listing, describing)
DEFAULT_RUNS = 2000  # about 3 minutes on 2 cores: 8-10 server restarts and ~15 worker kills
DEFAULT_IN_FLIGHT = 50
ERROR_CHARS = 300
SHOWN = 10  # distinct errors, and lost ids, listed in the report


# --- what happened --------------------------------------------------------------------------------


@dataclass
class Progress:
    """How far the runs are; fault schedules read it."""

    runs: int
    submitted: int = 0
    finished: int = 0

    @property
    def all_submitted(self) -> bool:
        return self.submitted >= self.runs


@dataclass
class Outcome:
    """One run: its final state or its error, and when it was submitted and finished."""

    order_id: str
    submitted_at: float
    finished_at: float | None = None
    state: dict[str, Any] | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        """``completed`` or ``out_of_stock`` (the graph's own), ``failed``, or ``unfinished``."""
        if self.finished_at is None:
            return "unfinished"
        if self.state is None:
            return "failed"
        return str(self.state.get("status"))


@dataclass
class ChaosReport:
    """What a soak did and what survived it; :meth:`record` is its JSON line."""

    runs: int
    submitted: int
    completed: int
    out_of_stock: int
    expected_out_of_stock: int
    failed: int
    errors: list[str]
    lost: int
    lost_status: dict[str, str]
    duplicate_payments: int
    payment_mismatches: int
    runs_started_twice: int | None
    """``None`` if the server could not be asked."""
    server_runs: int | None
    """Executions the server lists on the run's task queue (one per run if none is missing)."""
    server_restarts: int
    server_down_max_s: float
    """The longest time from a server's SIGKILL to its successor answering."""
    worker_kills: int
    worker_exits_replaced: int
    """Workers that exited without being killed (say, started while the server was down)."""
    client_retries: dict[str, int]
    """A run's start or result retried by the benchmark after the SDK gave up, by cause."""
    drain_s: float | None
    """From the last fault to the last run finishing; ``None`` without a fault."""
    wall_s: float
    """From the first submission to the last run finishing."""
    total_s: float
    """Everything, processes started and stopped included."""
    run_p50_s: float
    run_p90_s: float
    run_max_s: float
    in_flight: int
    seed: int | None
    durability: str
    deadline_s: float
    deadline_hit: bool

    @property
    def meets_target(self) -> bool:
        """Nothing lost, nothing failed, nobody charged twice or wrongly, no run started twice,
        and the out-of-stock orders were exactly the sold-out ones."""
        return (
            self.submitted == self.runs
            and self.lost == 0
            and self.failed == 0
            and self.duplicate_payments == 0
            and self.payment_mismatches == 0
            and self.runs_started_twice == 0
            and self.out_of_stock == self.expected_out_of_stock
        )

    def record(self) -> Record:
        fields = dict(vars(self))
        return {
            "workload": "chaos",
            "name": "chaos_soak",
            **fields,
            "meets_target": self.meets_target,
        }


# --- the processes under test ---------------------------------------------------------------------


class Cluster:
    """One durable dev server and :data:`WORKERS` worker processes, and the faults done to them.

    ``workers`` are the ones meant to be alive; ``started`` every one ever started (each is
    stopped by :meth:`stop`). ``faults`` holds ``(monotonic time, kind)`` per fault.
    """

    def __init__(
        self, server: DevServer, directory: Path, task_queue: str, env: dict[str, str]
    ) -> None:
        self.server = server
        self.directory = directory
        self.task_queue = task_queue
        self.env = env
        self.workers: list[WorkerProcess] = []
        self.started: list[WorkerProcess] = []
        self.faults: list[tuple[float, str]] = []
        self.server_up = asyncio.Event()
        self.restarts = 0
        self.down_s: list[float] = []
        self.kills = 0
        self.exits_replaced = 0

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(
            APP,
            address=self.server.address,
            namespace=self.server.namespace,
            task_queue=self.task_queue,
            log=self.directory / f"worker-{len(self.started) + 1}.log",
            env=self.env,
        )
        self.started.append(worker)
        self.workers.append(worker)
        return worker

    async def start(self) -> None:
        await self.server.start()
        self.server_up.set()
        for _ in range(WORKERS):
            self.start_worker()

    async def restart_server(self, downtime: float = 0.0) -> None:
        """SIGKILL the server's process group, wait ``downtime`` s, start it on the same file
        and port."""
        pid = self.server.pid
        assert pid is not None, "the server is not running"
        self.server_up.clear()
        killed_at = time.monotonic()
        self.faults.append((killed_at, "server_restart"))
        self.restarts += 1
        os.killpg(pid, signal.SIGKILL)  # the server leads its own process group
        await asyncio.to_thread(self.server.wait, 10.0)
        await self.server.stop()  # reaps it
        await asyncio.sleep(downtime)
        await self.server.start()  # DevServerError (with the log's tail) if it does not answer
        self.down_s.append(time.monotonic() - killed_at)
        self.server_up.set()

    async def kill_worker(self, rng: random.Random) -> None:
        """SIGKILL a random worker once the server is up, and start its replacement."""
        await self.server_up.wait()
        victim = rng.choice(self.workers)
        self.workers.remove(victim)
        self.faults.append((time.monotonic(), "worker_kill"))
        self.kills += 1
        victim.kill()
        self.start_worker()

    async def supervise(self) -> None:
        """Replace any worker that exits on its own (e.g. one that started while the server was
        down cannot connect and exits 1), so that :data:`WORKERS` stay alive."""
        while True:
            await asyncio.sleep(SUPERVISE_EVERY)
            for worker in [w for w in self.workers if not w.running]:
                self.workers.remove(worker)
                self.exits_replaced += 1
                await self.server_up.wait()
                self.start_worker()

    def stop(self) -> None:
        """Stop every worker ever started (SIGTERM, SIGKILL after 10 s), then the server.

        Blocking on purpose: it runs in ``finally`` blocks, where a cancellation (Ctrl-C) must
        not cut it short.
        """
        for worker in self.started:
            with contextlib.suppress(Exception):
                worker.stop(timeout=10.0)
        self.server.stop_sync()


# --- when faults happen ---------------------------------------------------------------------------

FaultSchedule = Callable[[Cluster, Progress], Coroutine[Any, Any, None]]
"""Does faults to the cluster while the runs go on; cancelled once every run has finished."""


def random_faults(
    seed: int,
    *,
    restart_every: tuple[float, float] = (10.0, 30.0),
    kill_every: tuple[float, float] = (5.0, 20.0),
    downtime: tuple[float, float] = (0.0, 2.0),
) -> FaultSchedule:
    """Server restarts and worker kills on two independent timelines, each gap drawn uniformly
    from its range (seconds, seeded), until every run has been submitted. The server stays down
    for a ``downtime`` drawn the same way."""

    async def inject(cluster: Cluster, progress: Progress) -> None:
        restart_rng = random.Random(f"{seed}-restart")
        kill_rng = random.Random(f"{seed}-kill")

        async def restarts() -> None:
            while True:
                await asyncio.sleep(restart_rng.uniform(*restart_every))
                if progress.all_submitted:
                    return
                await cluster.restart_server(restart_rng.uniform(*downtime))

        async def kills() -> None:
            while True:
                await asyncio.sleep(kill_rng.uniform(*kill_every))
                if progress.all_submitted:
                    return
                await cluster.kill_worker(kill_rng)

        await asyncio.gather(restarts(), kills())

    return inject


def faults_after(
    *, restart_after: Sequence[int] = (), kill_after: Sequence[int] = ()
) -> FaultSchedule:
    """Faults at fixed points: a server restart once ``n`` runs have finished, for each ``n`` of
    ``restart_after``; a worker kill likewise for ``kill_after``."""
    plan = sorted([(n, "restart") for n in restart_after] + [(n, "kill") for n in kill_after])

    async def inject(cluster: Cluster, progress: Progress) -> None:
        rng = random.Random(0)
        for finished, kind in plan:
            while progress.finished < finished:  # noqa: ASYNC110 - a count, not an event
                await asyncio.sleep(0.05)
            if kind == "restart":
                await cluster.restart_server()
            else:
                await cluster.kill_worker(rng)

    return inject


# --- the runs -------------------------------------------------------------------------------------


class Orders:
    """Runs orders through the graph, durably, each exactly once per workflow id."""

    def __init__(self, client: Client, graph: Graph, task_queue: str) -> None:
        self.client = client
        self.graph = graph
        self.engine = TemporalEngine(
            client, task_queue=task_queue, heartbeat_timeout=HEARTBEAT_TIMEOUT
        )
        self.retries: Counter[str] = Counter()

    async def run(self, order_id: str, product_id: str) -> dict[str, Any]:
        """The run's final state.

        If a call fails because the server is away for longer than the SDK retries, the run
        may or may not have started: the server is asked, and an existing run is awaited rather
        than started again. (``TemporalEngine.run`` starts with Temporal's default id-reuse
        policy, which would start a second run of a finished id.)

        Raises:
            RunError: the run failed (from ``TemporalEngine.run``).
            WorkflowFailureError: the run failed (from awaiting an existing run).
        """
        workflow_id = f"chaos-{order_id}"
        order = {"order_id": order_id, "product_id": product_id, "quantity": 1}
        may_exist = False
        for _ in range(MAX_CLIENT_RETRIES):
            try:
                if may_exist and await self._exists(workflow_id):
                    state: dict[str, Any] = await self.client.get_workflow_handle(
                        workflow_id
                    ).result()
                    return state
                return await self.engine.run(self.graph, order, id=workflow_id)
            except WorkflowAlreadyStartedError:
                self.retries["already_started"] += 1  # an earlier start got through
                may_exist = True
            except RPCError as error:
                self.retries[error.status.name if error.status else "rpc_error"] += 1
                may_exist = True
                await asyncio.sleep(RETRY_PAUSE)
        raise RuntimeError(f"{workflow_id}: the server stayed unreachable")

    async def _exists(self, workflow_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True


def _error_text(error: BaseException) -> str:
    if isinstance(error, WorkflowFailureError) and error.cause is not None:
        error = error.cause
    return f"{type(error).__name__}: {error}"[:ERROR_CHARS]


def order_ids(runs: int) -> list[str]:
    return [f"order-{i:04d}" for i in range(runs)]


def product_of(index: int, sold_out_every: int) -> str:
    """Every ``sold_out_every``-th order (the 10th, 20th, ...) asks for the sold-out product."""
    sold_out = sold_out_every > 0 and (index + 1) % sold_out_every == 0
    return SOLD_OUT if sold_out else IN_STOCK


async def _submit_all(
    orders: Orders,
    outcomes: list[Outcome],
    progress: Progress,
    in_flight: int,
    sold_out_every: int,
) -> None:
    """Run every order, ``in_flight`` at a time; each outcome is filled in as its run ends."""
    limit = asyncio.Semaphore(in_flight)

    async def one(index: int, order_id: str) -> None:
        async with limit:
            outcome = Outcome(order_id, submitted_at=time.monotonic())
            outcomes.append(outcome)
            progress.submitted += 1
            try:
                outcome.state = await orders.run(order_id, product_of(index, sold_out_every))
            except (RunError, WorkflowFailureError, RuntimeError, RPCError) as error:
                outcome.error = _error_text(error)
            outcome.finished_at = time.monotonic()
            progress.finished += 1

    await asyncio.gather(*(one(i, order_id) for i, order_id in enumerate(order_ids(progress.runs))))


async def _until_done(
    runs: asyncio.Task[None], helpers: list[asyncio.Task[None]], at: float
) -> bool:
    """Wait for ``runs`` until the loop time ``at``; a helper's error is raised at once.
    Returns whether the deadline was hit (``runs`` is then cancelled)."""
    pending: set[asyncio.Task[None]] = {runs, *helpers}
    loop = asyncio.get_running_loop()
    while runs in pending:
        done, pending = await asyncio.wait(
            pending, timeout=max(0.0, at - loop.time()), return_when=asyncio.FIRST_COMPLETED
        )
        if not done:
            runs.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runs
            return True
        for task in done:
            error = task.exception() if task is not runs else None
            if error is not None:
                raise error
    return False


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- the closing checks ---------------------------------------------------------------------------


def _shop(path: Path, runs: int) -> Store:
    """The example's shop, with enough of :data:`IN_STOCK` for every order."""
    store = Store.create(path)
    with store.transaction() as db:
        db.execute("UPDATE stock SET quantity = ? WHERE product_id = ?", (runs, IN_STOCK))
    assert store.in_stock(SOLD_OUT) == 0, "the seed changed: pick another sold-out product"
    return store


def _payments(store: Store) -> dict[str, str]:
    with closing(sqlite3.connect(store.path, timeout=10.0)) as db:
        return dict(db.execute("SELECT order_id, payment_id FROM payments").fetchall())


def _payment_mismatches(store: Store, outcomes: list[Outcome]) -> int:
    """Finished orders whose payment is not what their run says it is."""
    payments = _payments(store)
    wrong = 0
    for outcome in outcomes:
        if outcome.status == "completed":
            assert outcome.state is not None
            paid_as_said = payments.get(outcome.order_id) == outcome.state.get("payment_id")
            shipped = store.count("fulfillments", outcome.order_id) == 1
            wrong += not (paid_as_said and shipped)
        elif outcome.status == "out_of_stock":
            wrong += outcome.order_id in payments
    return wrong


async def _runs_per_id(client: Client, task_queue: str) -> Counter[str] | None:
    """How many executions the server lists for each workflow id on ``task_queue`` (``None``
    if it cannot be asked)."""
    runs: Counter[str] = Counter()
    try:
        async with asyncio.timeout(SERVER_CALL_TIMEOUT):
            async for execution in client.list_workflows(f"TaskQueue = '{task_queue}'"):
                runs[execution.id] += 1
    except (RPCError, TimeoutError):
        return None
    return runs


async def _server_status(client: Client, workflow_ids: list[str]) -> dict[str, str]:
    """What the server says about each id (``NOT_FOUND`` if it has none)."""
    found: dict[str, str] = {}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SERVER_CALL_TIMEOUT):
            for workflow_id in workflow_ids:
                try:
                    described = await client.get_workflow_handle(workflow_id).describe()
                    found[workflow_id] = described.status.name if described.status else "?"
                except RPCError as error:
                    found[workflow_id] = error.status.name if error.status else str(error)
    return found


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# --- the soak -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _workdir(directory: Path | None) -> Iterator[Path]:
    """``directory`` (kept afterwards, with the logs), or a temporary one."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="belugaflow-chaos-") as temporary:
        yield Path(temporary)


def _client_orchestrator(server: DevServer, task_queue: str) -> Orchestrator:
    """The client side, built like the fault tests' starter: the fault app's config, pointed
    at ``server`` and ``task_queue``."""
    orch = Orchestrator.from_config(fault_app.config())
    orch.temporal_address, orch.temporal_namespace = server.address, server.namespace
    orch.workflow_task_queue = task_queue
    return orch


async def _connect(orch: Orchestrator) -> Client:
    """``orch``'s client, with the SDK's own log lines sent to Python's ``logging`` (hence to
    stderr) instead of its default, stdout, where the JSON line must stand alone: every outage
    makes the SDK warn about each call it retries."""
    forwarding = LogForwardingConfig(logger=logging.getLogger("benchmarks.chaos.temporalio"))
    quiet_stdout = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarding
    )
    client = await Client.connect(
        orch.temporal_address,
        namespace=orch.temporal_namespace,
        data_converter=orch.data_converter,
        runtime=Runtime(telemetry=TelemetryConfig(logging=quiet_stdout)),
    )
    orch.use_client(client)
    return client


async def soak(
    runs: int = DEFAULT_RUNS,
    *,
    faults: FaultSchedule | None = None,
    seed: int | None = 0,
    in_flight: int = DEFAULT_IN_FLIGHT,
    sold_out_every: int = 10,
    deadline: float = 900.0,
    durability: Durability = Durability.FULL,
    directory: Path | None = None,
) -> ChaosReport:
    """Run ``runs`` orders through the order graph on a cluster under ``faults``.

    Args:
        runs: Orders, one run each, with distinct order ids and deterministic workflow ids.
        faults: Default: :func:`random_faults` with ``seed``.
        seed: Echoed in the report (``None`` for a schedule that is not random).
        in_flight: Runs going on at once.
        sold_out_every: Every n-th order asks for a product out of stock (0: none).
        deadline: Seconds for everything after the processes started; runs unfinished then
            are lost, and everything is stopped.
        durability: The server's.
        directory: Where the databases and logs go (kept); default a temporary directory.
    """
    began = time.monotonic()
    if faults is None:
        faults = random_faults(seed or 0)
    with _workdir(directory) as work:
        (work / "faults").mkdir(exist_ok=True)
        store = _shop(work / "shop.db", runs)
        task_queue = f"chaos-{uuid.uuid4().hex[:8]}"
        env = {DB_ENV: str(store.path), FAULT_DIR_ENV: str(work / "faults")}
        server = DevServer(work / "temporal.db", durability=durability)
        cluster = Cluster(server, work, task_queue, env)
        progress = Progress(runs)
        outcomes: list[Outcome] = []
        try:
            await cluster.start()
            orch = _client_orchestrator(server, task_queue)
            client = await _connect(orch)
            orders = Orders(client, build_order_graph(orch, store), task_queue)
            first_submit = time.monotonic()
            at = asyncio.get_running_loop().time() + deadline
            runs_task = asyncio.create_task(
                _submit_all(orders, outcomes, progress, in_flight, sold_out_every)
            )
            helpers = [
                asyncio.create_task(faults(cluster, progress)),
                asyncio.create_task(cluster.supervise()),
            ]
            try:
                deadline_hit = await _until_done(runs_task, helpers, at)
            finally:
                await _cancel([runs_task, *helpers])
            if not server.running:  # cancelled mid-restart by the deadline
                await server.start()
            lost_ids = [o.order_id for o in outcomes if o.status == "unfinished"]
            lost_status = await _server_status(client, [f"chaos-{i}" for i in lost_ids[:SHOWN]])
            runs_per_id = await _runs_per_id(client, task_queue)
        finally:
            cluster.stop()
        ended = time.monotonic()
        return _report(
            runs=runs,
            outcomes=outcomes,
            store=store,
            cluster=cluster,
            orders=orders,
            runs_per_id=runs_per_id,
            lost_status=lost_status,
            first_submit=first_submit,
            elapsed=ended - began,
            expected_out_of_stock=sum(
                product_of(i, sold_out_every) == SOLD_OUT for i in range(runs)
            ),
            in_flight=in_flight,
            seed=seed,
            durability=durability,
            deadline=deadline,
            deadline_hit=deadline_hit,
        )


def _report(
    *,
    runs: int,
    outcomes: list[Outcome],
    store: Store,
    cluster: Cluster,
    orders: Orders,
    runs_per_id: Counter[str] | None,
    lost_status: dict[str, str],
    first_submit: float,
    elapsed: float,
    expected_out_of_stock: int,
    in_flight: int,
    seed: int | None,
    durability: Durability,
    deadline: float,
    deadline_hit: bool,
) -> ChaosReport:
    statuses = Counter(o.status for o in outcomes)
    finished = [o for o in outcomes if o.finished_at is not None]
    last_finish = max((o.finished_at for o in finished if o.finished_at), default=first_submit)
    last_fault = max((at for at, _ in cluster.faults), default=None)
    seconds = [o.finished_at - o.submitted_at for o in finished if o.finished_at]
    errors = sorted({o.error for o in outcomes if o.error})
    return ChaosReport(
        runs=runs,
        submitted=len(outcomes),
        completed=statuses["completed"],
        out_of_stock=statuses["out_of_stock"],
        expected_out_of_stock=expected_out_of_stock,
        failed=len(finished) - statuses["completed"] - statuses["out_of_stock"],
        errors=errors[:SHOWN],
        lost=len(outcomes) - len(finished),
        lost_status=lost_status,
        duplicate_payments=sum(store.count("payments", o.order_id) > 1 for o in outcomes),
        payment_mismatches=_payment_mismatches(store, outcomes),
        runs_started_twice=None
        if runs_per_id is None
        else sum(n > 1 for n in runs_per_id.values()),
        server_runs=None if runs_per_id is None else sum(runs_per_id.values()),
        server_restarts=cluster.restarts,
        server_down_max_s=round(max(cluster.down_s, default=0.0), 1),
        worker_kills=cluster.kills,
        worker_exits_replaced=cluster.exits_replaced,
        client_retries=dict(orders.retries),
        drain_s=None if last_fault is None else round(last_finish - last_fault, 1),
        wall_s=round(last_finish - first_submit, 1),
        total_s=round(elapsed, 1),
        run_p50_s=round(statistics.median(seconds), 2) if seconds else 0.0,
        run_p90_s=round(_percentile(seconds, 0.9), 2),
        run_max_s=round(max(seconds, default=0.0), 2),
        in_flight=in_flight,
        seed=seed,
        durability=durability.value,
        deadline_s=deadline,
        deadline_hit=deadline_hit,
    )


# --- entry points ---------------------------------------------------------------------------------

QUICK_RUNS = 50
QUICK_IN_FLIGHT = 20


def quick_faults() -> FaultSchedule:
    """The small soak's faults (the test's): a server restart after 10 runs finished, a worker
    kill after 25."""
    return faults_after(restart_after=[10], kill_after=[25])


def chaos(quick: bool) -> list[Record]:
    """``benchmarks.run``'s entry: 2,000 runs under random faults (``quick``: the small soak)."""
    if quick:
        report = asyncio.run(
            soak(QUICK_RUNS, faults=quick_faults(), seed=None, in_flight=QUICK_IN_FLIGHT)
        )
    else:
        report = asyncio.run(soak())
    return [report.record()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--in-flight", type=int, help="runs going on at once (default 50; --quick: 20)"
    )
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds (default 900)")
    parser.add_argument("--dir", type=Path, help="keep the databases and logs here")
    parser.add_argument("--quick", action="store_true", help="the test's small soak")
    args = parser.parse_args(argv)
    in_flight = args.in_flight or (QUICK_IN_FLIGHT if args.quick else DEFAULT_IN_FLIGHT)
    soaking = soak(
        QUICK_RUNS if args.quick else args.runs,
        faults=quick_faults() if args.quick else random_faults(args.seed),
        seed=None if args.quick else args.seed,
        in_flight=in_flight,
        deadline=args.deadline,
        directory=args.dir,
    )
    try:
        report = asyncio.run(_stopped_by_sigterm(soaking))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("chaos: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    print(json.dumps(report.record()), flush=True)
    return 0 if report.meets_target else 1


async def _stopped_by_sigterm(soaking: Coroutine[Any, Any, ChaosReport]) -> ChaosReport:
    """``soaking``, cancelled by SIGTERM as Ctrl-C cancels it, so that its cleanup runs."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await soaking


if __name__ == "__main__":
    raise SystemExit(main())
