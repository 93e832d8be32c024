"""Use the configured Temporal server, or start the embedded one where there is none."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from ._devserver import HOST, DevServer, DevServerError, Durability

__all__ = ["DEFAULT_DB_FILE", "embedded_server"]

DEFAULT_DB_FILE = Path(".belugaflow") / "temporal.db"
"""Where the embedded server keeps its state, relative to the current directory."""

_LOCAL_HOSTS = {"localhost", "127.0.0.1", HOST}
_PROBE_TIMEOUT = 1.0


async def _answers(address: str, namespace: str) -> bool:
    """Whether a Temporal frontend at ``address`` answers for ``namespace`` within a second."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    try:
        client = await asyncio.wait_for(
            Client.connect(address, namespace=namespace), _PROBE_TIMEOUT
        )
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace),
            timeout=timedelta(seconds=_PROBE_TIMEOUT),
        )
    except Exception:  # refused, unavailable, timed out, unknown namespace: not usable
        return False
    return True


@asynccontextmanager
async def embedded_server(
    address: str,
    *,
    namespace: str = "default",
    db_file: str | os.PathLike[str] = DEFAULT_DB_FILE,
    durability: Durability | str = Durability.FULL,
) -> AsyncIterator[DevServer | None]:
    """Yield ``None`` if a Temporal server answers at ``address``; else start the embedded dev
    server on that address's port, with its state in ``db_file``, yield it, and stop it on exit.

    Raises:
        DevServerError: ``address`` is not ``HOST:PORT``; or it does not answer and is not on
            this machine (only a local address can be served by the embedded server); or the
            server did not start.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise DevServerError(f"a Temporal address is HOST:PORT, got {address!r}")
    if await _answers(address, namespace):
        yield None
        return
    if host not in _LOCAL_HOSTS:
        raise DevServerError(
            f"no Temporal server answers at {address!r}, and the embedded server can only serve"
            f" a local address (localhost:PORT or {HOST}:PORT); start one there, or fix"
            " temporal.address"
        )
    server = DevServer(db_file, port=int(port), namespace=namespace, durability=durability)
    async with server:
        yield server
