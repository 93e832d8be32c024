"""Observability: Prometheus metrics of runs, nodes and model calls, the monitoring
endpoints (``/metrics``, ``/healthz``, ``/readyz``), and structured logs."""

from ._http import Check, MonitoringApp
from ._logging import (
    JsonFormatter,
    LogContextFilter,
    TextFormatter,
    configure_logging,
    configure_logging_from_config,
)
from ._metrics import Metrics, failure_code

__all__ = [
    "Check",
    "JsonFormatter",
    "LogContextFilter",
    "Metrics",
    "MonitoringApp",
    "TextFormatter",
    "configure_logging",
    "configure_logging_from_config",
    "failure_code",
]
