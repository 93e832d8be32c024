"""Fixtures of the use case's tests: a fresh shop database and a task queue of one's own."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from examples.order_processing.db import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.create(tmp_path / "shop.db")


@pytest.fixture
def queue() -> str:
    return f"orders-{uuid.uuid4().hex[:8]}"
