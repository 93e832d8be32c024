"""The monitoring endpoints as one small ASGI app: ``/metrics``, ``/healthz`` and ``/readyz``.

Plain ASGI, no framework: a worker serves it with uvicorn on its metrics port, and the REST
service can mount it as it is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ._metrics import Metrics

__all__ = ["CHECK_TIMEOUT", "Check", "MonitoringApp"]

Check = Callable[[], Awaitable[None]]
"""A readiness check: returns when ready, raises with what is wrong otherwise."""

CHECK_TIMEOUT = 3.0
"""Seconds one readiness check may take before it counts as failed."""

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]


class MonitoringApp:
    """``GET /metrics`` (Prometheus text: ours, then ``extra`` — e.g. the Temporal SDK's own),
    ``GET /healthz`` (the process answers) and ``GET /readyz`` (every check passes: 200, else
    503; the JSON body names each check and what is wrong)."""

    def __init__(
        self,
        metrics: Metrics | None,
        checks: Mapping[str, Check] | None = None,
        extra: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        self.metrics = metrics
        self.checks = dict(checks or {})
        self.extra = extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if scope.get("method") not in ("GET", "HEAD"):
            await _json(send, 405, {"error": f"{scope.get('method')} not allowed; use GET"})
        elif path == "/metrics":
            await self._metrics(send)
        elif path == "/healthz":
            await _json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            await self._ready(send)
        else:
            await _json(send, 404, {"error": f"no {path}; try /metrics, /healthz or /readyz"})

    async def _metrics(self, send: Send) -> None:
        if self.metrics is None:
            body = {"error": "metrics are off (monitoring.metrics.enabled: false)"}
            await _json(send, 404, body)
            return
        text = generate_latest(self.metrics.registry)
        if self.extra is not None:
            text += await self.extra()
        await _reply(send, 200, CONTENT_TYPE_LATEST, text)

    async def _ready(self, send: Send) -> None:
        names = list(self.checks)
        outcomes = await asyncio.gather(*(_run(self.checks[name]) for name in names))
        checks = {name: outcome for name, outcome in zip(names, outcomes, strict=True)}
        ready = all(outcome["ok"] for outcome in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        await _json(send, 200 if ready else 503, body)


async def _run(check: Check) -> dict[str, Any]:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:g} s"}
    except Exception as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {"ok": True}


async def _json(send: Send, status: int, body: Mapping[str, Any]) -> None:
    await _reply(send, status, "application/json", json.dumps(body).encode() + b"\n")


async def _reply(send: Send, status: int, content_type: str, body: bytes) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
