"""CircuitBreaker transitions, probing, exclusions, hooks and the registry."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta

import pytest

from belugaflow._errors import CircuitOpenError
from belugaflow.resilience import BreakerRegistry, CircuitBreaker, CircuitState
from belugaflow.testing import FakeClock


class Boom(Exception):
    pass


class NotFound(Exception):
    pass


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.on_failure(Boom())


def succeed(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.before_call()
        breaker.on_success()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("payments", failure_threshold=3, recovery_timeout=10, clock=clock)


def test_starts_closed(breaker: CircuitBreaker) -> None:
    """A new breaker is closed, with no failures and no opening time."""
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0
    assert breaker.opened_at is None


def test_opens_after_consecutive_failures(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """failure_threshold consecutive failures open the circuit and stamp opened_at."""
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 2
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened_at == 1000.0


def test_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    """A success in between restarts the count of consecutive failures."""
    fail(breaker, 2)
    succeed(breaker)
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 2


def test_open_rejects_with_time_until_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """An open circuit rejects calls with CircuitOpenError carrying reopens_in."""
    fail(breaker, 3)
    clock.advance(4)
    with pytest.raises(CircuitOpenError) as caught:
        breaker.before_call()
    assert caught.value.name == "payments"
    assert caught.value.reopens_in == pytest.approx(6.0)
    assert caught.value.retry_after == pytest.approx(6.0)


def test_half_open_after_recovery_timeout(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """Once recovery_timeout has passed, reading state shows HALF_OPEN."""
    fail(breaker, 3)
    clock.advance(9.999)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.001)
    assert breaker.state is CircuitState.HALF_OPEN


def test_probe_success_closes_and_resets(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """A successful probe closes the circuit and clears the failure count."""
    fail(breaker, 3)
    clock.advance(10)
    succeed(breaker)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0
    assert breaker.opened_at is None


def test_probe_failure_reopens_and_restarts_timer(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    """A failed probe opens the circuit again for a full recovery_timeout."""
    fail(breaker, 3)
    clock.advance(15)
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened_at == 1015.0
    clock.advance(9)
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.advance(1)
    assert breaker.state is CircuitState.HALF_OPEN


def test_only_one_probe_is_admitted(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """While the probe is in flight, further calls are rejected at once."""
    fail(breaker, 3)
    clock.advance(10)
    breaker.before_call()
    with pytest.raises(CircuitOpenError) as caught:
        breaker.before_call()
    assert caught.value.reopens_in == 0.0


async def test_exactly_one_of_many_racing_tasks_probes(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    """Of 10 tasks calling a half-open breaker at once, exactly one runs; the rest are rejected."""
    fail(breaker, 3)
    clock.advance(10)
    release = asyncio.Event()
    ran = 0

    async def probe() -> str:
        nonlocal ran
        ran += 1
        await release.wait()
        return "ok"

    tasks = [asyncio.create_task(breaker.call(probe)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert ran == 1
    assert results.count("ok") == 1
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 9
    assert breaker.state is CircuitState.CLOSED


def test_exactly_one_of_many_racing_threads_probes(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    """Threads racing into a half-open breaker also get exactly one probe."""
    fail(breaker, 3)
    clock.advance(10)
    start = threading.Barrier(8)
    admitted: list[bool] = []

    def attempt() -> None:
        start.wait()
        try:
            breaker.before_call()
        except CircuitOpenError:
            admitted.append(False)
        else:
            admitted.append(True)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == 1


async def test_cancelled_probe_releases_the_slot(breaker: CircuitBreaker, clock: FakeClock) -> None:
    """A probe cancelled mid-call frees the slot, so the next caller becomes the probe."""
    fail(breaker, 3)
    clock.advance(10)
    probe = asyncio.create_task(breaker.call(asyncio.sleep, 3600))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.failure_count == 3  # the cancellation was not counted
    breaker.before_call()  # admitted as the new probe
    breaker.on_success()
    assert breaker.state is CircuitState.CLOSED


def test_excluded_errors_do_not_count(clock: FakeClock) -> None:
    """Excluded errors neither count as failures nor reset the count."""
    breaker = CircuitBreaker("users", failure_threshold=2, excluded=(NotFound,), clock=clock)
    fail(breaker)
    for _ in range(5):
        breaker.before_call()
        breaker.on_failure(NotFound())
    assert breaker.failure_count == 1
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_excluded_error_on_probe_frees_the_slot(clock: FakeClock) -> None:
    """A probe ending in an excluded error decides nothing and lets another call probe."""
    breaker = CircuitBreaker("users", failure_threshold=1, excluded=(NotFound,), clock=clock)
    fail(breaker)
    clock.advance(30)
    breaker.before_call()
    breaker.on_failure(NotFound())
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.before_call()


def test_cancellation_does_not_count_as_failure(breaker: CircuitBreaker) -> None:
    """on_failure with CancelledError or KeyboardInterrupt is not counted."""
    for error in (asyncio.CancelledError(), KeyboardInterrupt()):
        breaker.before_call()
        breaker.on_failure(error)
    assert breaker.failure_count == 0


def test_outcomes_of_stragglers_while_open_are_ignored(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    """Results of calls admitted before the trip neither close nor re-time an open circuit."""
    for _ in range(4):
        breaker.before_call()  # four calls in flight
    for _ in range(3):
        breaker.on_failure(Boom())
    clock.advance(5)
    breaker.on_success()
    breaker.on_failure(Boom())
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened_at == 1000.0


def test_failure_rate_mode_opens_on_share_of_failures(clock: FakeClock) -> None:
    """With a rate threshold, the circuit opens once enough calls show that failure share."""
    breaker = CircuitBreaker(
        "llm",
        failure_threshold=100,
        failure_rate_threshold=0.5,
        window_size=10,
        minimum_calls=4,
        clock=clock,
    )
    fail(breaker)
    succeed(breaker)
    fail(breaker)  # 2 of 3: not enough calls yet
    assert breaker.state is CircuitState.CLOSED
    succeed(breaker)  # 2 of 4 = 50 %, but a success never trips
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)  # 3 of 5
    assert breaker.state is CircuitState.OPEN


def test_failure_rate_window_slides(clock: FakeClock) -> None:
    """Only the last window_size outcomes count toward the failure rate."""
    breaker = CircuitBreaker(
        "llm",
        failure_threshold=100,
        failure_rate_threshold=0.3,
        window_size=10,
        minimum_calls=10,
        clock=clock,
    )
    for _ in range(2):
        fail(breaker)
        succeed(breaker)
    succeed(breaker, 12)  # pushes both early failures out of the window
    fail(breaker, 2)  # 2 of 10
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)  # 3 of 10 = exactly 30 %
    assert breaker.state is CircuitState.OPEN


def test_failure_rate_window_is_cleared_when_the_circuit_closes(clock: FakeClock) -> None:
    """After a successful probe, the rate starts from an empty window."""
    breaker = CircuitBreaker(
        "llm", failure_rate_threshold=0.5, window_size=4, minimum_calls=2, clock=clock
    )
    fail(breaker, 2)
    assert breaker.state is CircuitState.OPEN
    clock.advance(30)
    succeed(breaker)
    fail(breaker)  # 1 of 1: below minimum_calls
    assert breaker.state is CircuitState.CLOSED


def test_state_change_hook_sees_every_transition(clock: FakeClock) -> None:
    """on_state_change receives (name, old, new) for each transition, in order."""
    seen: list[tuple[str, CircuitState, CircuitState]] = []
    breaker = CircuitBreaker(
        "db",
        failure_threshold=1,
        recovery_timeout=timedelta(seconds=5),
        clock=clock,
        on_state_change=lambda *change: seen.append(change),
    )
    fail(breaker)
    clock.advance(5)
    fail(breaker)  # the probe fails
    clock.advance(5)
    succeed(breaker)  # the next probe succeeds
    assert seen == [
        ("db", CircuitState.CLOSED, CircuitState.OPEN),
        ("db", CircuitState.OPEN, CircuitState.HALF_OPEN),
        ("db", CircuitState.HALF_OPEN, CircuitState.OPEN),
        ("db", CircuitState.OPEN, CircuitState.HALF_OPEN),
        ("db", CircuitState.HALF_OPEN, CircuitState.CLOSED),
    ]


def test_hook_may_read_the_breaker(clock: FakeClock) -> None:
    """The hook runs outside the lock, so it can read the breaker's state without deadlock."""
    states: list[CircuitState] = []
    db = CircuitBreaker(
        "db",
        failure_threshold=1,
        clock=clock,
        on_state_change=lambda name, old, new: states.append(db.state),
    )
    fail(db)
    assert states == [CircuitState.OPEN]


def test_failing_hook_is_logged_and_does_not_wedge_the_breaker(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises is logged; the transition still happens and the probe is admitted."""

    def broken(name: str, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("monitoring down")

    breaker = CircuitBreaker("db", failure_threshold=1, clock=clock, on_state_change=broken)
    with caplog.at_level(logging.ERROR, logger="belugaflow.resilience"):
        fail(breaker)
        clock.advance(30)
        breaker.before_call()
    assert breaker.state is CircuitState.HALF_OPEN
    assert "on_state_change hook of circuit breaker 'db' failed" in caplog.text


async def test_call_passes_results_and_counts_outcomes(breaker: CircuitBreaker) -> None:
    """call() returns the coroutine's result and records its failure."""

    async def add(a: int, b: int) -> int:
        return a + b

    async def explode() -> None:
        raise Boom

    assert await breaker.call(add, 2, b=3) == 5
    with pytest.raises(Boom):
        await breaker.call(explode)
    assert breaker.failure_count == 1


def test_call_sync_returns_results(breaker: CircuitBreaker) -> None:
    """call_sync() passes arguments through and returns the result."""
    assert breaker.call_sync(divmod, 7, 2) == (3, 1)


def test_call_sync_rejects_without_calling(breaker: CircuitBreaker) -> None:
    """call_sync() counts failures and, once open, does not call the function."""
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        raise Boom

    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call_sync(flaky)
    with pytest.raises(CircuitOpenError):
        breaker.call_sync(flaky)
    assert calls == 3


def test_repr_shows_name_state_and_failures(breaker: CircuitBreaker) -> None:
    """repr names the breaker, its state and its failure count."""
    fail(breaker, 2)
    assert repr(breaker) == "CircuitBreaker('payments', state=closed, failures=2/3)"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"recovery_timeout": 0}, "recovery_timeout"),
        ({"failure_rate_threshold": 0.0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"window_size": 0}, "window_size"),
        ({"minimum_calls": 30, "window_size": 20}, "minimum_calls"),
    ],
)
def test_invalid_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    """Out-of-range settings raise ValueError naming the setting."""
    with pytest.raises(ValueError, match=field):
        CircuitBreaker("x", **kwargs)  # type: ignore[arg-type]


def test_registry_register_and_get() -> None:
    """A registered breaker is found by name; registering it twice is harmless."""
    registry = BreakerRegistry()
    breaker = CircuitBreaker("payments")
    assert registry.register(breaker) is breaker
    assert registry.register(breaker) is breaker
    assert registry.get("payments") is breaker
    assert registry.get("missing") is None
    assert "payments" in registry
    assert list(registry) == [breaker]
    assert len(registry) == 1


def test_registry_rejects_a_second_instance_under_one_name() -> None:
    """Registering a different breaker under a taken name raises ValueError naming it."""
    registry = BreakerRegistry()
    registry.register(CircuitBreaker("payments"))
    with pytest.raises(ValueError, match="'payments'"):
        registry.register(CircuitBreaker("payments"))


def test_get_or_create_shares_one_instance() -> None:
    """get_or_create creates once and then returns the same breaker."""
    registry = BreakerRegistry()
    first = registry.get_or_create("llm", failure_threshold=2)
    assert first.failure_threshold == 2
    assert registry.get_or_create("llm", failure_threshold=2) is first
    assert registry.get_or_create("llm") is first


def test_get_or_create_rejects_conflicting_settings() -> None:
    """Asking for an existing breaker with other settings raises instead of ignoring them."""
    registry = BreakerRegistry()
    registry.get_or_create("llm", failure_threshold=2)
    with pytest.raises(ValueError, match=r"'llm'.*failure_threshold=2"):
        registry.get_or_create("llm", failure_threshold=3)
