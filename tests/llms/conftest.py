"""Fixtures of the LLM tests: fake provider servers on 127.0.0.1 and models pointed at them.

Retry sleeps are skipped in every test here (attempt counts are unchanged), and each model gets
its own circuit breaker registry, so no test sees another's open breaker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from tests.llms.fake_openai import fake_openai
from tests.llms.fake_server import FakeServer, running

from belugaflow import testing
from belugaflow.llms import RulesModel
from belugaflow.llms._openai import OpenAIChatModel
from belugaflow.resilience import BreakerRegistry

CHOICES = ["approve", "review", "reject"]
"""The choices of the decision tests."""


@pytest.fixture(autouse=True)
def _no_backoff() -> Iterator[None]:
    with testing.no_backoff():
        yield


@pytest.fixture
def breakers() -> BreakerRegistry:
    """A registry of circuit breakers for this test alone."""
    return BreakerRegistry()


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    """A running fake OpenAI server."""
    yield from running(fake_openai())


@pytest.fixture
async def openai_model(
    openai_server: FakeServer, breakers: BreakerRegistry
) -> AsyncIterator[OpenAIChatModel]:
    """An openai model of the fake server: 3 attempts, its own breaker."""
    model = OpenAIChatModel(
        model="gpt-test", base_url=f"{openai_server.url}/v1", breakers=breakers, timeout=10
    )
    yield model
    await model.aclose()


@pytest.fixture
def rules() -> RulesModel:
    """The order-decision table: out of stock → reject, big amounts → review, else approve."""
    return RulesModel(
        [
            {"name": "out_of_stock", "when": {"in_stock": False}, "choice": "reject"},
            {"name": "big_order", "when": {"amount": {"gt": 1000}}, "choice": "review"},
        ],
        default="approve",
    )
