"""``Chain``: sequential steps, each step's output the next one's input."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ._defaults import DEFAULTS
from ._duration import to_seconds_or_none
from ._errors import BelugaflowError, RunError, RunTimeoutError
from ._events import Event, EventKind, Hook, RunEvents, stream_events
from ._execute import DeadlineExceeded, StepCall, arun_step, run_step
from ._runnable import CallKind, RunnableBase, call_kind, run_blocking, sync_capable
from .resilience import BreakerRegistry, CircuitBreaker, RetryPolicy

__all__ = ["Chain", "Step"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """A chain step with its own policies. Plain callables in a chain get the chain's."""

    fn: Callable[[Any], Any] | RunnableBase
    """The callable: sync, async or a Runnable."""
    name: str | None = None
    """Name in events and errors; default: the function's name."""
    retry: RetryPolicy | None = None
    """Retry policy; default: the chain's."""
    timeout: float | timedelta | None = None
    """Seconds one attempt may take (a sync function then runs in a worker thread)."""
    breaker: CircuitBreaker | None = None
    """Circuit breaker guarding the step."""
    blocking: bool = False
    """The sync function does blocking I/O: run it in a worker thread."""


def _step_name(fn: object, index: int) -> str:
    name = getattr(fn, "name", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) and name != "<lambda>" else f"step{index}"


class Chain(RunnableBase):
    """Run steps in order: ``invoke(x)`` is ``steps[-1](...steps[1](steps[0](x)))``.

    Each step is retried by its policy (a :class:`Step`, else the chain's ``retry``), and the
    whole chain must finish within ``timeout`` seconds. A chain of plain sync functions runs
    without an event loop; it checks the timeout between steps, since a running sync call
    cannot be interrupted.
    """

    def __init__(
        self,
        steps: Sequence[Callable[[Any], Any] | RunnableBase | Step],
        *,
        name: str = "chain",
        timeout: float | timedelta | None = DEFAULTS.chain_timeout,
        retry: RetryPolicy | None = None,
        breakers: BreakerRegistry | None = None,
        hooks: Sequence[Hook] = (),
    ) -> None:
        if not steps:
            raise ValueError(f"chain {name!r} needs at least one step")
        self.name = name
        self.timeout = to_seconds_or_none(timeout, f"chain {name!r}: timeout")
        default_retry = retry or DEFAULTS.retry
        calls = []
        seen: set[str] = set()
        for index, raw in enumerate(steps):
            step = raw if isinstance(raw, Step) else Step(fn=raw)
            step_name = step.name or _step_name(step.fn, index)
            if step_name in seen:
                step_name = f"{step_name}#{index}"
            seen.add(step_name)
            where = f"chain {name!r}: step {step_name!r}"
            kind = call_kind(step.fn, blocking=step.blocking, where=where)
            step_timeout = to_seconds_or_none(step.timeout, f"{where}: timeout")
            if kind is CallKind.INLINE and step_timeout is not None:
                kind = CallKind.THREAD  # only a thread can be abandoned when it times out
            if step.breaker is not None and breakers is not None:
                breakers.register(step.breaker)
            calls.append(
                StepCall(
                    name,
                    step_name,
                    step.fn,  # type: ignore[arg-type]
                    kind,
                    step.retry or default_retry,
                    step_timeout,
                    step.breaker,
                )
            )
        self.steps: tuple[StepCall, ...] = tuple(calls)
        self._sync_ok = all(sync_capable(c.fn, c.kind) and c.timeout is None for c in calls)
        self._hooks = tuple(hooks)

    def __repr__(self) -> str:
        return f"<Chain {self.name!r}: {' -> '.join(s.name for s in self.steps)}>"

    @property
    def is_sync(self) -> bool:
        return self._sync_ok

    def _failed(
        self, error: BelugaflowError, step: str, value: Any, events: RunEvents | None, began: float
    ) -> None:
        if isinstance(error, RunError):
            error.state = {"step": step, "input": value}
        if events is not None:
            events(EventKind.RUN_FAILED, step, error=error, duration=time.monotonic() - began)

    def invoke(self, input: Any) -> Any:
        """Run the steps on ``input`` and return the last step's output."""
        if not self._sync_ok:
            return run_blocking(self.ainvoke(input), what=f"chain {self.name!r}")
        events = RunEvents.open(self._hooks, self.name)
        began = time.monotonic()
        deadline = None if self.timeout is None else began + self.timeout
        if events is not None:
            events(EventKind.RUN_STARTED, update=input)
        value = input
        for step in self.steps:
            try:
                if deadline is not None and time.monotonic() > deadline:
                    raise DeadlineExceeded
                value = run_step(step, value, events, deadline)
            except DeadlineExceeded as exc:
                assert self.timeout is not None
                error = RunTimeoutError(
                    graph=self.name, timeout=self.timeout, node=step.name, state={}
                )
                self._failed(error, step.name, value, events, began)
                raise error from exc.__cause__
            except BelugaflowError as error:
                self._failed(error, step.name, value, events, began)
                raise
        if events is not None:
            events(EventKind.RUN_COMPLETED, update=value, duration=time.monotonic() - began)
        return value

    async def ainvoke(self, input: Any) -> Any:
        """Run the steps on ``input`` on the running loop; return the last step's output."""
        return await self._arun(input, self._hooks)

    async def _arun(self, input: Any, listeners: Sequence[Hook]) -> Any:
        events = RunEvents.open(listeners, self.name)
        began = time.monotonic()
        if events is not None:
            events(EventKind.RUN_STARTED, update=input)
        value = input
        current = self.steps[0]
        try:
            async with asyncio.timeout(self.timeout):
                for current in self.steps:
                    value = await arun_step(current, value, events)
        except TimeoutError as exc:
            assert self.timeout is not None
            timed_out = RunTimeoutError(
                graph=self.name, timeout=self.timeout, node=current.name, state={}
            )
            self._failed(timed_out, current.name, value, events, began)
            raise timed_out from exc
        except BelugaflowError as error:
            self._failed(error, current.name, value, events, began)
            raise
        if events is not None:
            events(EventKind.RUN_COMPLETED, update=value, duration=time.monotonic() - began)
        return value

    async def astream(self, input: Any) -> AsyncIterator[Event]:
        """Yield an event per step start, retry, completion and failure, as they happen."""
        stream = stream_events(self._hooks, lambda listeners: self._arun(input, listeners))
        async with aclosing(stream):  # closing this generator stops the run at once
            async for event in stream:
                yield event
