"""Observability: Prometheus metrics of runs, nodes and model calls, the monitoring
endpoints (``/metrics``, ``/healthz``, ``/readyz``), structured logs, and OpenTelemetry spans
(:class:`Tracing`, loaded on first use: it needs the OpenTelemetry API)."""

from typing import TYPE_CHECKING, Any

from ._http import Check, MonitoringApp
from ._logging import (
    JsonFormatter,
    LogContextFilter,
    TextFormatter,
    configure_logging,
    configure_logging_from_config,
)
from ._metrics import Metrics, failure_code

if TYPE_CHECKING:
    from ._tracing import Tracing

__all__ = [
    "Check",
    "JsonFormatter",
    "LogContextFilter",
    "Metrics",
    "MonitoringApp",
    "TextFormatter",
    "Tracing",
    "configure_logging",
    "configure_logging_from_config",
    "failure_code",
]


def __getattr__(name: str) -> Any:
    if name == "Tracing":  # the OpenTelemetry API is imported only by those who trace
        from ._tracing import Tracing

        return Tracing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
