"""The REST API: a thin HTTP adapter over an :class:`~belugaflow.Orchestrator`.

:func:`create_app` builds the FastAPI app — workflows and graphs under ``/api/v1``, a run's
events as Server-Sent Events, OpenAPI at ``/docs``, ``/healthz``, ``/readyz`` and ``/metrics``
— and :func:`serving` serves it on the running event loop. :class:`ApiKeys` are the keys it
accepts, each for a :class:`Tenant`. Every error is ``application/problem+json`` with a stable
``code`` (:class:`Problem`). See ``docs/api.md``.

Needs the extras: ``pip install 'belugaflow[server,temporal]'``.
"""

try:
    import fastapi as _fastapi  # noqa: F401  (checked here so the error says what to do)
except ImportError as _error:
    raise ImportError(
        "belugaflow.server needs FastAPI and uvicorn: pip install 'belugaflow[server]'"
    ) from _error

from belugaflow._public import show_public_paths as _show_public_paths

from .._apikeys import hash_key, new_key
from ._app import API_PREFIX, DEFAULT_MAX_BODY_BYTES, create_app
from ._auth import ApiKeys, Tenant
from ._graphs import GRAPH_DOCUMENT
from ._problems import Problem, ProblemBody
from ._serve import serving

__all__ = [  # noqa: RUF022  (plain string order, as tests/test_exports.py checks)
    "API_PREFIX",
    "ApiKeys",
    "DEFAULT_MAX_BODY_BYTES",
    "GRAPH_DOCUMENT",
    "Problem",
    "ProblemBody",
    "Tenant",
    "create_app",
    "hash_key",
    "new_key",
    "serving",
]

_show_public_paths(globals())
