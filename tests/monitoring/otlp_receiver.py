"""A real OTLP gRPC trace receiver on 127.0.0.1, for the tracing tests.

It implements the collector's ``TraceService`` from ``opentelemetry-proto`` on a gRPC server
with its own threads (independent of any test's event loop) and keeps every span it receives,
flattened into :class:`Received`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["OtlpReceiver", "Received"]


@dataclass(frozen=True)
class Received:
    """One span as the receiver got it."""

    service: str
    """``service.name`` of the process that sent it."""
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    """The parent span's id, ``""`` for a root span."""
    kind: int
    """OTLP's span kind: 1 internal, 2 server, 3 client."""
    start: int
    end: int
    attributes: dict[str, Any]
    status: int
    """OTLP's status code: 0 unset, 1 ok, 2 error."""


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    if field == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, field) if field else None


class _Service(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    def Export(  # the gRPC method's name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        Received(
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            start=span.start_time_unix_nano,
                            end=span.end_time_unix_nano,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            status=span.status.code,
                        )
                    )
        with self.receiver.lock:
            self.receiver.spans.extend(found)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """Receives OTLP spans on ``127.0.0.1`` (``port``, default a free one) until :meth:`stop`."""

    def __init__(self, port: int = 0) -> None:
        self.spans: list[Received] = []
        self.lock = threading.Lock()
        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Service(self), self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>``, as ``monitoring.otel.endpoint`` takes it."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None)

    def wait_for(
        self, done: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        """The spans received, once ``done(spans)`` holds; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                spans = list(self.spans)
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted(f"{s.service}: {s.name}" for s in spans)
                raise AssertionError(f"the receiver got only {names}")
            time.sleep(0.05)


def running() -> Iterator[OtlpReceiver]:
    """A receiver for a fixture: yields it, stops it."""
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()
