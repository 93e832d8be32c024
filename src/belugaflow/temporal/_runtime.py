"""The Temporal SDK's own metrics, beside ours: one SDK runtime per process that serves them in
Prometheus format on a private 127.0.0.1 port, which our ``/metrics`` reads and appends."""

from __future__ import annotations

import asyncio
import functools
import socket
import urllib.request

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

__all__ = ["sdk_metrics", "sdk_runtime"]


@functools.cache
def sdk_runtime() -> tuple[Runtime, str]:
    """The process's SDK runtime with Prometheus metrics, and the URL they are served at."""
    with socket.socket() as probe:  # a free port; the runtime binds it right after
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    metrics = PrometheusConfig(
        bind_address=address, counters_total_suffix=True, durations_as_seconds=True
    )
    runtime = Runtime(telemetry=TelemetryConfig(metrics=metrics))
    return runtime, f"http://{address}/metrics"


async def sdk_metrics() -> bytes:
    """The SDK runtime's metrics text, or a comment saying why there is none."""
    url = sdk_runtime()[1]

    def fetch() -> bytes:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bytes(response.read())

    try:
        return await asyncio.to_thread(fetch)
    except OSError as error:
        return f"# Temporal SDK metrics unavailable: {error}\n".encode()
