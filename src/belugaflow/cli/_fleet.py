"""``belugaflow worker --processes N``: a small supervisor that keeps N worker processes running.

Each child is the same ``belugaflow worker`` command line (``sys.argv``) without
``--processes``, so every other flag reaches the children unchanged, and with
``--metrics-port`` P+i for child i. The supervisor itself polls nothing and never connects
to Temporal.

The rules (docs/cli.md, "belugaflow worker"):

- SIGTERM or SIGINT is forwarded to every child; each drains (stops polling, lets running
  activities finish up to ``temporal.worker.graceful_shutdown``) and exits. The supervisor
  exits 0 when every child exited 0. A child still running ``graceful_shutdown`` + 10 s later
  is killed (SIGKILL), named, and the exit code is 1. A second signal kills the children at
  once.
- A child that exits while the fleet is not stopping (a crash, SIGKILL, the OOM killer, an
  operator's SIGTERM to that child alone) is restarted and the exit is logged.
- A child that exits less than ``START_SECONDS`` after it was started counts as a failed
  start; the restart waits 1 s, then 2 s, 4 s, ... After ``MAX_FAILED_STARTS`` failed starts
  in a row of one child, the fleet stops with an error, exit code 1: what fails right after
  every start (an unreachable server, a bad certificate) will not heal by restarting. A child
  that ran at least ``START_SECONDS`` resets its count.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, BinaryIO, NoReturn

import typer

from belugaflow.cli._output import ExitCode, fail

if TYPE_CHECKING:
    from belugaflow import Orchestrator

__all__ = ["MAX_FAILED_STARTS", "MAX_PROCESSES", "START_SECONDS", "child_arguments", "run_fleet"]

MAX_PROCESSES = 64
"""More children than this on one machine is a mistake (a typo, a port range overrun), not a
plan: beyond a few per core they only compete for the CPU."""
START_SECONDS = 10.0
"""A child that exits sooner than this after it was started failed to start."""
MAX_FAILED_STARTS = 3
"""Failed starts in a row of one child that stop the fleet."""
KILL_MARGIN = 10.0
"""Seconds past the graceful shutdown timeout before the children still running are killed:
a drained worker still flushes traces and closes its connection."""

_ERROR = typer.style("error:", fg="red", bold=True)


def run_fleet(orch: Orchestrator, processes: int, metrics_port: int | None) -> NoReturn:
    """Run ``processes`` children of the current ``belugaflow worker`` command until a signal
    stops them, then exit with the fleet's code. ``metrics_port`` is the command's
    ``--metrics-port`` (None: the orchestrator's)."""
    base = orch.metrics_port if metrics_port is None else metrics_port
    ports = _child_ports(base, processes)
    settings = orch.temporal_worker
    drain = settings.graceful_shutdown.total_seconds() if settings is not None else 30.0
    # The command line as typed: typer keeps no public record of it, and the children must
    # get every flag this one got, whatever flags ``worker`` has by now.
    arguments = child_arguments(sys.argv[1:], drop=("--processes", "--metrics-port"))
    command = [sys.executable, "-m", "belugaflow.cli", *arguments]
    fleet = _Fleet(command, ports, orch.metrics_host, drain_timeout=drain)
    typer.echo(
        f"fleet of {processes} workers (pid {os.getpid()}): SIGTERM or Ctrl-C drains them all"
        " and stops",
        err=True,
    )
    raise typer.Exit(asyncio.run(fleet.run()))


def _child_ports(base: int | None, processes: int) -> list[int | None]:
    """Child i's ``--metrics-port``: ``base`` + i, 0 (a free port each) or -1 (none)."""
    if base is None or base == -1:
        return [-1] * processes
    if base == 0:
        return [0] * processes
    last = base + processes - 1
    if last > 65535:
        fail(
            f"--processes {processes} with metrics port {base}: worker {processes - 1} would"
            f" serve port {last}, beyond 65535; choose a lower --metrics-port, 0 (free ports)"
            " or -1 (none)"
        )
    return [base + index for index in range(processes)]


def child_arguments(argv: list[str], *, drop: tuple[str, ...]) -> list[str]:
    """``argv`` (the command line as typed, after the program: ``worker --app ...``) without
    the options in ``drop`` and their values, whether given as ``--opt VALUE`` or
    ``--opt=VALUE``. Everything else passes unchanged, so a flag added to ``worker`` later
    reaches the children without a change here."""
    kept: list[str] = []
    skip_value = False
    for argument in argv:
        if skip_value:
            skip_value = False
        elif argument in drop:
            skip_value = True
        elif not argument.startswith(tuple(f"{option}=" for option in drop)):
            kept.append(argument)
    return kept


@dataclasses.dataclass
class _Child:
    """One place in the fleet: its process (replaced on restart) and its start history."""

    index: int
    metrics_port: int | None
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failed_starts: int = 0


class _Fleet:
    def __init__(
        self, command: list[str], ports: list[int | None], host: str, *, drain_timeout: float
    ) -> None:
        self.command = command
        self.children = [_Child(index, port) for index, port in enumerate(ports)]
        self.host = host
        self.drain_timeout = drain_timeout
        self.stopping = asyncio.Event()
        self.signals = 0
        self.fatal: str | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        keepers = [asyncio.create_task(self._keep(child)) for child in self.children]
        stopped = asyncio.create_task(self.stopping.wait())
        # A keeper returns only once the fleet stops, unless it failed: then stop the rest.
        await asyncio.wait([stopped, *keepers], return_when=asyncio.FIRST_COMPLETED)
        if not self.stopping.is_set():
            failed = next(task for task in keepers if task.done())
            error = None if failed.cancelled() else failed.exception()
            self.fatal = f"the supervisor failed ({error!r}); the workers were stopped"
            self._stop_all()
        deadline = self.drain_timeout + KILL_MARGIN
        _, running = await asyncio.wait(keepers, timeout=deadline)
        stragglers = [child for child in self.children if _alive(child)]
        for child in stragglers:
            assert child.process is not None
            say(
                f"worker {child.index} (pid {child.process.pid}) still running {deadline:g} s"
                " after the stop: killed"
            )
            _send(child, signal.SIGKILL)
        if running:  # killed just now: their exit is a moment away
            await asyncio.wait(running, timeout=KILL_MARGIN)
        stopped.cancel()
        exits = [_exit_code(task) for task in keepers]
        if self.fatal is not None:
            typer.echo(f"{_ERROR} {self.fatal}", err=True)
            return ExitCode.INVALID
        # A child the forwarded signal ended before its worker took the signal over (it was
        # still starting) had nothing to drain.
        forwarded = {0, -signal.SIGTERM, -signal.SIGINT}
        if stragglers or any(code not in forwarded for code in exits):
            say("stopped, but not every worker drained cleanly (see above)")
            return ExitCode.INVALID
        say("every worker drained; stopped")
        return ExitCode.OK

    def _on_signal(self, signum: signal.Signals) -> None:
        self.signals += 1
        if self.signals == 1:
            say(f"{signum.name}: draining {len(self.children)} workers")
            self.stopping.set()
            for child in self.children:
                _send(child, signum)
        else:  # an operator who signals twice wants it over now
            say(f"{signum.name} again: killing the workers")
            for child in self.children:
                _send(child, signal.SIGKILL)

    async def _keep(self, child: _Child) -> int:
        """Run ``child`` until the fleet stops, restarting it when it exits; its last exit
        code."""
        while True:
            code = await self._run_once(child)
            if self.stopping.is_set():
                return code
            ran = time.monotonic() - child.started
            child.failed_starts = child.failed_starts + 1 if ran < START_SECONDS else 0
            exit_text = f"{_describe(code)} after {ran:.1f} s"
            if child.failed_starts >= MAX_FAILED_STARTS:
                self.fatal = (
                    f"worker {child.index} failed to start {MAX_FAILED_STARTS} times in a row"
                    f" (each time it ended within {START_SECONDS:g} s; last: {exit_text}), so"
                    " the fleet stops: restarting will not fix what fails at every start; its"
                    f" reason is in the lines marked [worker {child.index}] above"
                )
                self._stop_all()
                return code
            delay = 2.0 ** (child.failed_starts - 1) if child.failed_starts else 1.0
            say(f"worker {child.index} {exit_text}; restarting it in {delay:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return code

    async def _run_once(self, child: _Child) -> int:
        command = [*self.command, "--metrics-port", str(child.metrics_port)]
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=_die_with_parent,
            )
        except OSError as error:  # no such interpreter, too many processes
            self.fatal = f"cannot start worker {child.index}: {error}"
            self._stop_all()
            return ExitCode.INVALID
        child.process, child.started = process, time.monotonic()
        say(f"worker {child.index}: pid {process.pid}, {self._metrics_text(child)}")
        if self.stopping.is_set():  # the stop came while it was being started: it missed it
            _send(child, signal.SIGTERM)
        prefix = f"[worker {child.index}] ".encode()
        assert process.stdout is not None and process.stderr is not None
        await asyncio.gather(
            _relay(process.stdout, sys.stdout.buffer, prefix),
            _relay(process.stderr, sys.stderr.buffer, prefix),
        )
        return await process.wait()

    def _metrics_text(self, child: _Child) -> str:
        if child.metrics_port == -1:
            return "no metrics"
        if child.metrics_port == 0:
            return "metrics on a free port (its own line says which)"
        return f"metrics at http://{self.host}:{child.metrics_port}/metrics"

    def _stop_all(self) -> None:
        self.stopping.set()
        for child in self.children:
            _send(child, signal.SIGTERM)


def say(message: str) -> None:
    """A line of the supervisor's own, on stderr like the workers' own lines."""
    typer.echo(f"fleet: {message}", err=True)


def _exit_code(keeper: asyncio.Task[int]) -> int:
    """A keeper's last exit code; 1 for one that failed or never finished."""
    if not keeper.done() or keeper.cancelled() or keeper.exception() is not None:
        return ExitCode.INVALID
    return keeper.result()


def _alive(child: _Child) -> bool:
    return child.process is not None and child.process.returncode is None


def _send(child: _Child, signum: signal.Signals) -> None:
    if _alive(child):
        assert child.process is not None
        with contextlib.suppress(ProcessLookupError):  # it exited since we looked
            child.process.send_signal(signum)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


async def _relay(stream: asyncio.StreamReader, out: BinaryIO, prefix: bytes) -> None:
    """Copy a child's output to ours, each line marked with ``prefix`` — but JSON lines (the
    JSON log format) pass unmarked, so a log collector still parses them."""
    at_line_start = True
    while chunk := await stream.read(1 << 16):
        for line in chunk.splitlines(keepends=True):
            if at_line_start and not line.startswith(b"{"):
                line = prefix + line
            at_line_start = line.endswith(b"\n")
            with contextlib.suppress(OSError, ValueError):  # our output closed: keep reading
                out.write(line)
        with contextlib.suppress(OSError, ValueError):
            out.flush()


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before it runs: SIGTERM it when the supervisor dies (even by SIGKILL), so
    no worker outlives its fleet unsupervised. Linux only; elsewhere a no-op."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
