"""Serve an app with uvicorn on this event loop, for as long as a block runs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["serving"]


@contextlib.asynccontextmanager
async def serving(
    app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> AsyncIterator[str]:
    """Serve the ASGI ``app`` with uvicorn on the running loop while the block runs, and yield
    its base URL (``http://127.0.0.1:PORT``; port 0 takes a free one). Leaving the block
    stops the server: open event streams are cut after a second.

    Raises:
        OSError: the port cannot be bound (taken, say), before anything is served.
    """
    import uvicorn

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
