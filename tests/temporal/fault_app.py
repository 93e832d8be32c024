"""The use case as a worker app for the fault tests, steered by files.

``belugaflow worker --app tests.temporal.fault_app:orch`` serves the example's
``OrderProcessingWorkflow`` and activities (``examples.order_processing.app``), with the
environment giving:

- ``BELUGAFLOW_ORDERS_DB``: the shop database;
- ``BELUGAFLOW_FAULT_DIR``: a directory through which a test steers the activities, per order
  (:class:`Faults`): hold the payment after it was charged (the worst moment for a crash: the
  charge is committed, its completion not yet reported), hold the fulfilment while it
  heartbeats, make payment attempts fail (retryable) or decline it (non-retryable). Every
  payment and fulfilment attempt leaves a marker file with the worker's pid.

Config: the example's ``config.yaml`` with ``orchestration.workflow.max_retries`` = 2 (three
attempts per step). :func:`steps` adds timeouts of seconds, so that a killed worker's activity
is retried quickly. :class:`WorkerProcess` runs a worker app in its own process group, for the
tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from temporalio import activity

from belugaflow import Config, NonRetryableError, Orchestrator, load_config
from examples.order_processing.activities import Order, OrderActivities, PaymentRequest
from examples.order_processing.app import CONFIG, create_app
from examples.order_processing.workflow import StepOptions

__all__ = [
    "FAULT_DIR_ENV",
    "MAX_RETRIES",
    "Faults",
    "FaultyActivities",
    "StartWorker",
    "WorkerProcess",
    "belugaflow_command",
    "config",
    "steps",
    "worker_pool",
]

ROOT = Path(__file__).resolve().parents[2]
FAULT_DIR_ENV = "BELUGAFLOW_FAULT_DIR"
MAX_RETRIES = 2
_POLL = 0.05  # seconds between looks at a hold file


class Faults:
    """The files in a fault directory, per order id and step (``payment`` or ``fulfill``)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @classmethod
    def from_env(cls) -> Faults:
        return cls(os.environ[FAULT_DIR_ENV])

    def _file(self, order_id: str, name: str) -> Path:
        return self.directory / f"{order_id}.{name}"

    def hold(self, order_id: str, step: str) -> None:
        """Hold ``step`` of the order (payment: after the charge) until :meth:`release`."""
        self._file(order_id, f"{step}-hold").touch()

    def release(self, order_id: str, step: str) -> None:
        self._file(order_id, f"{step}-hold").unlink(missing_ok=True)

    def held(self, order_id: str, step: str) -> bool:
        return self._file(order_id, f"{step}-hold").exists()

    def fail_payment(self, order_id: str, attempts: int) -> None:
        """Make the first ``attempts`` payment attempts fail with a retryable error."""
        self._file(order_id, "payment-fails").write_text(str(attempts))

    def payment_failures(self, order_id: str) -> int:
        path = self._file(order_id, "payment-fails")
        return int(path.read_text()) if path.exists() else 0

    def decline_payment(self, order_id: str, message: str) -> None:
        """Make every payment attempt fail with a non-retryable error saying ``message``."""
        self._file(order_id, "payment-declined").write_text(message)

    def decline(self, order_id: str) -> str | None:
        path = self._file(order_id, "payment-declined")
        return path.read_text() if path.exists() else None

    def mark(self, order_id: str, event: str) -> None:
        """Record that ``event`` (e.g. ``payment.2``, ``fulfill.cancelled``) happened here."""
        self._file(order_id, event).write_text(str(os.getpid()))

    def marks(self, order_id: str, step: str) -> dict[str, int]:
        """What happened at ``step``: event suffix (``1``, ``2``, ``cancelled``) → worker pid."""
        prefix = f"{order_id}.{step}."
        return {
            path.name.removeprefix(prefix): int(path.read_text())
            for path in self.directory.glob(f"{prefix}*")
        }


class FaultyActivities(OrderActivities):
    """The order activities, with the payment and fulfilment steered by :class:`Faults`."""

    @activity.defn(name="order.process_payment")
    async def process_payment(self, payment: PaymentRequest) -> str:
        faults, order_id, attempt = Faults.from_env(), payment.order_id, activity.info().attempt
        faults.mark(order_id, f"payment.{attempt}")
        declined = faults.decline(order_id)
        if declined is not None:
            raise NonRetryableError(declined)
        if attempt <= faults.payment_failures(order_id):
            raise ConnectionError(f"payment gateway unreachable (attempt {attempt})")
        payment_id = await super().process_payment(payment)
        # The test, another process, says when by removing a file: nothing to wait on but time.
        while faults.held(order_id, "payment"):  # noqa: ASYNC110
            await asyncio.sleep(_POLL)
        return payment_id

    @activity.defn(name="order.fulfill")
    async def fulfill(self, order: Order) -> str:
        faults, attempt = Faults.from_env(), activity.info().attempt
        faults.mark(order.order_id, f"fulfill.{attempt}")
        try:
            while faults.held(order.order_id, "fulfill"):
                activity.heartbeat()  # how a cancellation reaches the activity
                await asyncio.sleep(_POLL)
        except asyncio.CancelledError:
            faults.mark(order.order_id, "fulfill.cancelled")
            raise
        return await super().fulfill(order)


def config() -> Config:
    """The example's config, with ``max_retries`` set as an operator would, by environment."""
    override = {"BELUGAFLOW__ORCHESTRATION__WORKFLOW__MAX_RETRIES": str(MAX_RETRIES)}
    return load_config(CONFIG, env={**os.environ, **override})


def steps() -> StepOptions:
    """Attempts from :func:`config`; timeouts short enough for a test to wait them out."""
    from_config = StepOptions.from_orchestrator(Orchestrator.from_config(config()))
    return dataclasses.replace(
        from_config, step_timeout=3.0, fulfill_timeout=30.0, fulfill_heartbeat=2.0
    )


_orch: Orchestrator | None = None


def __getattr__(name: str) -> Orchestrator:
    # Built on first access, so the test process imports this module without a database.
    global _orch
    if name != "orch":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _orch is None:
        _orch = create_app(config(), activities_class=FaultyActivities)
    return _orch


# --- running a worker app in its own process (used by the tests, not by the worker) ---


def belugaflow_command() -> list[str]:
    """The ``belugaflow`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("belugaflow")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from belugaflow.cli import main; main()"]


class WorkerProcess:
    """``belugaflow worker --app APP`` in its own process group, from the repository root (so
    ``tests....`` and ``examples....`` import), its output appended to ``log``."""

    def __init__(
        self,
        app: str,
        *,
        address: str,
        namespace: str,
        task_queue: str,
        log: Path,
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.log = log
        self.task_queue = task_queue
        command = [*belugaflow_command(), "worker", "--app", app, "--address", address]
        command += ["--namespace", namespace, "--task-queue", task_queue]
        command += ["--metrics-port", "0", *args]  # a free port each: workers run side by side
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # kill() reaches the whole group, and only it
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> int:
        """SIGKILL the process group: no draining, nothing said to the server. The exit code."""
        self._signal(signal.SIGKILL)
        return self.process.wait()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the worker drains and exits), SIGKILL after ``timeout`` s. The exit code."""
        if self.running:
            self._signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def _signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def monitoring_url(self, timeout: float = 30.0) -> str:
        """The base URL of the worker's ``/metrics``, ``/healthz`` and ``/readyz``, as it
        printed it once it listened."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace") if self.log.exists() else ""
            if found := re.search(r"metrics at (http://\S+)/metrics", text):
                return found.group(1)
            if not self.running:
                break
            time.sleep(0.1)
        raise AssertionError(f"the worker printed no metrics URL:\n{self.output()}")

    def output(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the worker's output, for failure messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


StartWorker = Callable[[], WorkerProcess]


@contextlib.contextmanager
def worker_pool(
    app: str, *, address: str, namespace: str, task_queue: str, logs: Path, env: Mapping[str, str]
) -> Iterator[StartWorker]:
    """Start workers of ``app`` on ``task_queue`` (logs ``worker-N.log`` in ``logs``); every one
    is stopped, and reaped, on exit."""
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(
            app,
            address=address,
            namespace=namespace,
            task_queue=task_queue,
            log=logs / f"worker-{len(started) + 1}.log",
            env=env,
        )
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()
