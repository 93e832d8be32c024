"""Fixtures shared by every test package.

``temporal_server`` is one real Temporal dev server for the whole session (started on first use,
stopped at the end); ``temporal_client`` connects a fresh client to it for one test. Tests that
share the server use their own task queues and workflow ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from temporalio.client import Client

    from belugaflow.temporal import DevServer


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A running dev server on a free port, SQLite file in a temp dir, ``fast`` durability."""
    from belugaflow.temporal import DevServer, Durability

    # Imported here, not at the top: sessions that never use Temporal do not load the SDK.
    db_file = tmp_path_factory.mktemp("temporal") / "temporal.db"
    server = DevServer(db_file, durability=Durability.FAST)
    server.start_sync()
    try:
        yield server
    finally:
        server.stop_sync()


@pytest.fixture
async def temporal_client(temporal_server: DevServer) -> Client:
    """A client of the session's dev server, in its namespace."""
    from temporalio.client import Client

    return await Client.connect(temporal_server.address, namespace=temporal_server.namespace)
