"""Export spans over OTLP gRPC: one tracer provider per endpoint for the whole process, and an
exporter that says once, not at every export, that the endpoint cannot be reached.

Needs the ``otel`` extra (``opentelemetry-sdk``, ``opentelemetry-exporter-otlp-proto-grpc``);
importing this module without it raises an ``ImportError`` naming the extra.
"""

from __future__ import annotations

import atexit
import logging
import socket
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

try:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
except ImportError as error:  # pragma: no cover - the extra is part of the dev install
    raise ImportError(
        f"exporting traces (monitoring.otel.endpoint) needs the otel extra:"
        f" pip install 'belugaflow[otel]' ({error})"
    ) from error
from opentelemetry import trace
from opentelemetry.trace import ProxyTracerProvider

from ._tracing import FLUSH_TIMEOUT, within

__all__ = ["otlp_provider"]

_log = logging.getLogger("belugaflow.monitoring")

_PROBE_TIMEOUT = 2.0
"""Seconds a TCP probe of the endpoint may take."""

_providers: dict[tuple[str, str], tuple[TracerProvider, BatchSpanProcessor]] = {}
_lock = threading.Lock()


def otlp_provider(endpoint: str, service_name: str) -> trace.TracerProvider:
    """The tracer provider for spans to the OTLP gRPC ``endpoint``, as ``service_name``.

    - An application that set a global tracer provider of its own keeps it: that provider is
      returned, and belugaflow's spans go where the application sends its own.
    - Otherwise one provider per endpoint and service name is made for the whole process (a
      batch span processor, the OTLP gRPC exporter), and the first one made is installed as
      the global provider (``opentelemetry.trace.set_tracer_provider`` works once per
      process), so spans the application's own code makes go along. At exit each provider
      delivers what it holds, waiting at most :data:`~._tracing.FLUSH_TIMEOUT` seconds.

    ``endpoint`` is ``host:port`` or ``http://host:port`` (plaintext), or ``https://host:port``
    (TLS). The exporter reads ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_EXPORTER_OTLP_TIMEOUT``
    and the other standard variables.
    """
    current = trace.get_tracer_provider()
    with _lock:
        ours = [provider for provider, _ in _providers.values()]
        if not isinstance(current, ProxyTracerProvider) and current not in ours:
            _log.info(
                "traces go to the application's tracer provider %r (set before belugaflow's),"
                " not to %s",
                current,
                endpoint,
            )
            return current
        found = _providers.get((endpoint, service_name))
        if found is not None:
            return found[0]
        provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), shutdown_on_exit=False
        )
        processor = BatchSpanProcessor(QuietExporter(endpoint))
        provider.add_span_processor(processor)
        if not _providers:
            atexit.register(_shutdown_all)
        _providers[endpoint, service_name] = (provider, processor)
        if isinstance(current, ProxyTracerProvider):
            trace.set_tracer_provider(provider)
        return provider


def _shutdown_all() -> None:
    """At exit: deliver what is batched, each provider within ``FLUSH_TIMEOUT`` seconds (the
    SDK's own exit handler would wait up to 30 s per provider for an endpoint that is down)."""
    for _, processor in list(_providers.values()):
        within(processor.shutdown, FLUSH_TIMEOUT)


# The OTLP exporter logs every failed export and every retry of one. While it exports for
# belugaflow its records are held back (the last one kept) and QuietExporter says it once.
_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.grpc.exporter"
_exporting = threading.local()


class _HoldBack(logging.Filter):
    """Drops the exporter's records made inside :meth:`QuietExporter.export`, in that thread,
    keeping the last warning's message; lets every other record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_exporting, "active", False):
            if record.levelno >= logging.WARNING:
                _exporting.last = record.getMessage()
            return False
        return True


_hold_back = _HoldBack()


class QuietExporter(SpanExporter):
    """The OTLP gRPC span exporter, saying once in the log that its endpoint cannot be reached
    (and once that it can again) instead of at every failed export and retry. The
    application never waits for it: the batch span processor exports from its own thread.

    Until a first export succeeds, and again after one failed, a batch goes out only if the
    endpoint accepts a TCP connection: one that refuses fails the batch at once, instead of
    after the exporter's retries (seconds of backoff), so a process that exits while the
    endpoint is down does not wait for it.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._inner = OTLPSpanExporter(endpoint=endpoint, insecure=not _is_tls(endpoint))
        self._address = _address(endpoint)
        self._down = False
        self._proven = False  # an export succeeded since the last failure
        logger = logging.getLogger(_EXPORTER_LOGGER)
        if _hold_back not in logger.filters:
            logger.addFilter(_hold_back)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _exporting.active, _exporting.last = True, None
        try:
            refused = None if self._proven else _refused(self._address)
            if refused is not None:
                _exporting.last = refused
                result = SpanExportResult.FAILURE
            else:
                result = self._inner.export(spans)
        except Exception as error:  # the exporter raised instead of logging
            _exporting.last = f"{type(error).__name__}: {error}"
            result = SpanExportResult.FAILURE
        finally:
            _exporting.active = False
        if result is SpanExportResult.SUCCESS:
            self._proven = True
            if self._down:
                self._down = False
                _log.info("traces to %s are delivered again", self.endpoint)
            return result
        self._proven = False
        if not self._down:
            self._down = True
            _log.warning(
                "traces to %s cannot be delivered (%s); the application keeps running, spans"
                " are dropped while the endpoint stays unreachable, and delivery is retried"
                " silently",
                self.endpoint,
                _exporting.last or "export failed",
            )
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _is_tls(endpoint: str) -> bool:
    return endpoint.startswith("https://")


def _address(endpoint: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``host:port`` or ``http(s)://host:port`` endpoint; None for what
    a TCP probe cannot check (``unix:`` sockets, gRPC name resolvers)."""
    try:
        parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        if parts.scheme not in ("", "http", "https") or not parts.hostname:
            return None
        return parts.hostname, parts.port or 4317
    except ValueError:
        return None


def _refused(address: tuple[str, int] | None) -> str | None:
    """Why ``address`` cannot take a connection now, or None if it can (or cannot be probed)."""
    if address is None:
        return None
    try:
        socket.create_connection(address, timeout=_PROBE_TIMEOUT).close()
    except OSError as error:
        return f"{address[0]}:{address[1]}: {error.strerror or error}"
    return None
