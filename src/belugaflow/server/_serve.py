"""Serve an app with uvicorn on this event loop, for as long as a block runs."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["serving"]

logger = logging.getLogger("belugaflow.server")


@contextlib.asynccontextmanager
async def serving(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> AsyncIterator[str]:
    """Serve the ASGI ``app`` with uvicorn on the running loop while the block runs, and yield
    its base URL (``http://127.0.0.1:PORT``; port 0 takes a free one). Leaving the block
    stops the server: open event streams are cut after a second.

    An API made with auth off (``create_app(orch, auth="off")``) listens on 127.0.0.1 only,
    whatever ``host`` says (a warning says so): without keys, the network must not reach it.

    Raises:
        OSError: the port cannot be bound (taken, say), before anything is served.
    """
    import uvicorn

    if open_to_all(app) and not loopback(host):
        logger.warning(
            "auth is off (server.auth.enabled: false): listening on 127.0.0.1, not %s", host
        )
        host = "127.0.0.1"
    # Bound here, so a taken port is an OSError of ours (uvicorn would exit the process).
    listening = socket.create_server((host, port))
    config = uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise OSError(f"the server on {host}:{port} stopped while starting")
            await asyncio.sleep(0.01)
        bound_host, bound_port = listening.getsockname()[:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.should_exit = True
        await task
        listening.close()


def open_to_all(app: Any) -> bool:
    """Whether ``app`` is a belugaflow API with auth off."""
    tenancy = getattr(getattr(app, "state", None), "tenancy", None)
    return tenancy is not None and tenancy.keys is None


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (``localhost``, ``127.0.0.1``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False
