"""Use the configured Temporal server, or start the embedded one where there is none."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from belugaflow.config._models import Secret, TemporalTLSConfig

from ._devserver import HOST, DevServer, DevServerError, Durability

__all__ = ["DEFAULT_DB_FILE", "embedded_server"]

DEFAULT_DB_FILE = Path(".belugaflow") / "temporal.db"
"""Where the embedded server keeps its state, relative to the current directory."""

_LOCAL_HOSTS = {"localhost", "127.0.0.1", HOST}
_PROBE_TIMEOUT = 1.0


async def _answers(
    address: str, namespace: str, tls: TemporalTLSConfig | None, api_key: Secret | str | None
) -> str | None:
    """None if a Temporal frontend at ``address`` answers for ``namespace`` within a second;
    else why not."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    from ._connect import connect

    try:
        client = await asyncio.wait_for(
            connect(address, namespace=namespace, tls=tls, api_key=api_key), _PROBE_TIMEOUT
        )
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace),
            timeout=timedelta(seconds=_PROBE_TIMEOUT),
        )
    except TimeoutError:
        return "no answer within a second"
    except Exception as error:  # refused, TLS, key, unknown namespace: not usable
        return str(error)
    return None


@asynccontextmanager
async def embedded_server(
    address: str,
    *,
    namespace: str = "default",
    db_file: str | os.PathLike[str] = DEFAULT_DB_FILE,
    durability: Durability | str = Durability.FULL,
    tls: TemporalTLSConfig | None = None,
    api_key: Secret | str | None = None,
) -> AsyncIterator[DevServer | None]:
    """Yield ``None`` if a Temporal server answers at ``address`` (connected with ``tls`` and
    ``api_key``, as ``temporal.tls`` and ``temporal.api_key``); else start the embedded dev
    server on that address's port, with its state in ``db_file``, yield it, and stop it on exit.

    Raises:
        DevServerError: ``address`` is not ``HOST:PORT``; or it does not answer and is not on
            this machine (only a local address can be served by the embedded server); or the
            server did not start.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise DevServerError(f"a Temporal address is HOST:PORT, got {address!r}")
    why = await _answers(address, namespace, tls, api_key)
    if why is None:
        yield None
        return
    if host not in _LOCAL_HOSTS:
        raise DevServerError(
            f"no Temporal server answers at {address!r} ({why}), and the embedded server can"
            f" only serve a local address (localhost:PORT or {HOST}:PORT); start one there, or"
            " fix temporal.address"
        )
    server = DevServer(db_file, port=int(port), namespace=namespace, durability=durability)
    async with server:
        yield server
