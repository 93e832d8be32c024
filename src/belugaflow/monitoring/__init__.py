"""Observability: Prometheus metrics of runs, nodes and model calls, and the monitoring
endpoints (``/metrics``, ``/healthz``, ``/readyz``)."""

from ._http import Check, MonitoringApp
from ._metrics import Metrics, failure_code

__all__ = ["Check", "Metrics", "MonitoringApp", "failure_code"]
