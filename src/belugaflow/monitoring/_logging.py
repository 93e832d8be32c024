"""Structured logs: every record names its graph, node and run, and its trace and span, and no
record shows a secret.

* :class:`LogContextFilter` adds ``graph``, ``node``, ``run_id``, ``trace_id`` and ``span_id``
  to each record it sees, from the node attempt running in the caller's context
  (:mod:`belugaflow._context`), the Temporal activity or workflow it runs in, and the current
  OpenTelemetry span. Creating one turns on the attempt loop's bookkeeping (about 0.1 µs per
  node attempt), which costs nothing until then.
* :class:`JsonFormatter` writes one JSON object per line; :class:`TextFormatter` one readable
  line. Both mask secrets in what they write: the values they are given, the value of an
  ``Authorization``, ``api-key`` or ``x-api-key`` header or parameter, and anything shaped like
  an OpenAI or Anthropic key (``sk-...``).
* :func:`configure_logging` puts the three on one handler of the root logger;
  :func:`configure_logging_from_config` does it from ``monitoring.logging``, with every secret
  of the configuration masked.

Only the standard library is used: a formatter is about forty lines, and a dependency such as
python-json-logger would not know our fields or our secrets.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TextIO

from pydantic import BaseModel

from .. import _context
from ..config import Secret

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "JsonFormatter",
    "LogContextFilter",
    "TextFormatter",
    "configure_logging",
    "configure_logging_from_config",
]

MASK = "**********"
"""What a masked secret is written as (the same as a :class:`~belugaflow.config.Secret`)."""

FIELDS = ("graph", "node", "run_id", "trace_id", "span_id")
"""The attributes :class:`LogContextFilter` adds to records, in output order."""

_ENV_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
"""Variables the SDK providers read their key from when the config names none."""

_MIN_SECRET = 4
"""Shorter values are not masked: masking ``"ab"`` everywhere would garble every line."""

# The attributes every LogRecord has; the others came from ``extra=`` (or from filters).
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)

# A header or parameter that carries a credential, in any of the forms it is logged in:
# ``Authorization: Bearer x``, ``'api-key': 'x'``, ``"x-api-key": "x"``, ``?api_key=x``, and
# the same inside a JSON string (quotes escaped).
_CREDENTIAL = re.compile(
    r"(?i)(?P<name>(?:proxy-)?authorization|x-api-key|api[-_]?key)"
    r"(?P<sep>\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"(?P<scheme>(?:bearer|basic|token)\s+)?"
    r"(?P<value>[^\s\"'\\,;&)\]}]+)"
)
# OpenAI (sk-..., sk-proj-...) and Anthropic (sk-ant-...) keys, wherever they appear.
_KEY_SHAPED = re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")


def _mask_credential(match: re.Match[str]) -> str:
    return f"{match['name']}{match['sep']}{match['scheme'] or ''}{MASK}"


class _Redactor:
    """Masks known secret values, credential headers and key-shaped strings in a text."""

    __slots__ = ("_known",)

    def __init__(self, secrets: Iterable[str | Secret | None]) -> None:
        values: set[str] = set()
        for secret in secrets:
            value = _value_of(secret)
            if value is None or len(value) < _MIN_SECRET:
                continue
            # As written in a message, in a repr, and inside a JSON string.
            values |= {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
        ordered = sorted(values, key=len, reverse=True)  # the longest form wins
        self._known = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._known is not None:
            text = self._known.sub(MASK, text)
        text = _CREDENTIAL.sub(_mask_credential, text)
        return _KEY_SHAPED.sub(MASK, text)


def _value_of(secret: str | Secret | None) -> str | None:
    if isinstance(secret, Secret):
        return secret.get_secret_value() if secret.is_resolved else None
    return secret


def _span_ids() -> Callable[[], tuple[str, str] | None] | None:
    """A function giving the current OpenTelemetry span's ids (hex, as OpenTelemetry writes
    them), or None when OpenTelemetry is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None

    def current() -> tuple[str, str] | None:
        span = trace.get_current_span().get_span_context()
        if not span.is_valid:
            return None
        return trace.format_trace_id(span.trace_id), trace.format_span_id(span.span_id)

    return current


_Scope = tuple[str | None, str | None, str | None]
"""``(graph, node, run_id)``, any of them unknown."""


def _temporal_scope(scope: _Scope | None) -> _Scope | None:
    """Fill in what the Temporal activity or workflow running here knows: its workflow id is
    the run id; outside a node, the workflow type and activity type name graph and node."""
    # Looked up, not imported: a process that never loaded the SDK runs no activity.
    activity: Any = sys.modules.get("temporalio.activity")
    if activity is not None and activity.in_activity():
        info = activity.info()
        if scope is None:
            return info.workflow_type, info.activity_type, info.workflow_id
        return scope[0], scope[1], info.workflow_id
    workflow: Any = sys.modules.get("temporalio.workflow")
    if workflow is not None and workflow.in_workflow():
        info = workflow.info()
        if scope is None:
            return info.workflow_type, None, info.workflow_id
        return scope[0], scope[1], info.workflow_id
    return scope


class LogContextFilter(logging.Filter):
    """Adds ``graph``, ``node``, ``run_id``, ``trace_id`` and ``span_id`` to every record it
    sees; an attribute is left out when unknown, and a value given with ``extra=`` is kept.

    * ``graph``, ``node``: the graph (or chain) and node (or step) whose attempt is running in
      the caller's context, also in threads a node starts with ``asyncio.to_thread``. In a
      Temporal activity that is not a graph node, the workflow type and activity type; in
      workflow code, the workflow type.
    * ``run_id``: the run's event id (:attr:`belugaflow.Event.run_id`) when the run has event
      hooks; always on Temporal (the workflow id). An in-process run with no hook has none.
    * ``trace_id``, ``span_id``: of the current OpenTelemetry span, as 32 and 16 hex digits,
      when ``opentelemetry`` is installed and a span is recording.

    Attach it to a handler (``handler.addFilter(LogContextFilter())``), so that it sees the
    records of every logger. Creating one makes the attempt loop name the running node, for
    the rest of the process.
    """

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        _context.enable()
        self._span_ids = _span_ids()

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        scope: _Scope | None = _context.node_scope.get()
        if scope is None or scope[2] is None:
            scope = _temporal_scope(scope)
        if scope is not None:
            for key, value in zip(FIELDS, scope, strict=False):
                if value is not None:
                    fields.setdefault(key, value)
        if self._span_ids is not None:
            ids = self._span_ids()
            if ids is not None:
                fields.setdefault("trace_id", ids[0])
                fields.setdefault("span_id", ids[1])
        return True


def _timestamp(record: logging.LogRecord) -> str:
    """ISO 8601, UTC, milliseconds: ``2026-05-09T07:35:25.123Z``."""
    when = datetime.fromtimestamp(record.created, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Formatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str | Secret | None] = ()) -> None:
        super().__init__()
        self._redact = _Redactor(secrets)

    def _exception(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)  # cached, as logging does
        return record.exc_text or None

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(self._format(record))

    def _format(self, record: logging.LogRecord) -> str:
        raise NotImplementedError


class JsonFormatter(_Formatter):
    """One JSON object per record, on one line: ``timestamp`` (ISO 8601, UTC), ``level``,
    ``logger``, ``message``, the fields of :class:`LogContextFilter` that are known,
    ``exception`` (the traceback) and ``stack`` when present, then every ``extra=`` field
    (values JSON cannot hold are written as ``str(value)``). Secrets are masked.

    Args:
        secrets: Values to mask, besides credential headers and key-shaped strings.
    """

    def _format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = record.__dict__
        for key in FIELDS:
            if fields.get(key) is not None:
                entry[key] = fields[key]
        exception = self._exception(record)
        if exception is not None:
            entry["exception"] = exception
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in fields.items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(_Formatter):
    """One readable line per record, the traceback after it:
    ``2026-05-09T07:35:25.123Z INFO     belugaflow.llms: message graph=orders node=pay
    run_id=...``, with the fields of :class:`LogContextFilter` that are known. Secrets are
    masked.

    Args:
        secrets: Values to mask, besides credential headers and key-shaped strings.
    """

    def _format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<8} {record.name}: {record.getMessage()}"
        fields = record.__dict__
        known = [f"{key}={_quoted(fields[key])}" for key in FIELDS if fields.get(key) is not None]
        if known:
            line += " " + " ".join(known)
        exception = self._exception(record)
        if exception is not None:
            line += "\n" + exception
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _quoted(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


_installed: list[tuple[logging.Handler, list[str]]] = []
"""The handler :func:`configure_logging` installed last, and the loggers it gave levels to."""


def _level(value: str | int, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        level = logging.getLevelNamesMapping().get(value.upper())
        if level is not None:
            return level
    raise ValueError(
        f"{what}: invalid log level {value!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )


def configure_logging(
    level: str | int = "INFO",
    *,
    format: Literal["text", "json"] = "text",
    levels: Mapping[str, str | int] | None = None,
    secrets: Iterable[str | Secret | None] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record of the process to ``stream``, as JSON lines or text, each naming
    its graph, node, run, trace and span (:class:`LogContextFilter`), secrets masked.

    Installs one handler on the root logger; a second call replaces the handler (and the
    per-logger levels) of the first and leaves any other handler alone.

    Args:
        level: Level of the root logger, a name (case-insensitive) or a number. Default INFO.
        format: ``"json"`` writes one JSON object per line (:class:`JsonFormatter`); ``"text"``
            one readable line (:class:`TextFormatter`). Default text.
        levels: Levels of single loggers, e.g. ``{"temporalio": "WARNING"}``.
        secrets: Values never to write, besides the values of ``OPENAI_API_KEY`` and
            ``ANTHROPIC_API_KEY`` in the environment, credential headers and key-shaped
            strings, which are always masked.
        stream: Where to write. Default ``sys.stderr``.

    Returns:
        The handler installed.

    Raises:
        ValueError: A level or the format is not valid; the message names it.
    """
    if format not in ("text", "json"):
        raise ValueError(f"format: expected 'text' or 'json', got {format!r}")
    root_level = _level(level, "level")
    logger_levels = {
        name: _level(value, f"levels[{name!r}]") for name, value in (levels or {}).items()
    }
    known = [*secrets, *(os.environ.get(name) for name in _ENV_KEYS)]
    formatter = JsonFormatter(known) if format == "json" else TextFormatter(known)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(LogContextFilter())
    root = logging.getLogger()
    for previous, names in _installed:
        root.removeHandler(previous)
        for name in names:
            logging.getLogger(name).setLevel(logging.NOTSET)
    _installed[:] = [(handler, list(logger_levels))]
    root.addHandler(handler)
    root.setLevel(root_level)
    for name, value in logger_levels.items():
        logging.getLogger(name).setLevel(value)
    return handler


def configure_logging_from_config(
    config: Config, *, stream: TextIO | None = None
) -> logging.Handler:
    """:func:`configure_logging` with the ``monitoring.logging`` section of ``config``, every
    secret of ``config`` (each resolved ``Secret`` field, such as ``llm.openai.api_key``)
    masked.

    Args:
        config: A loaded configuration.
        stream: Where to write. Default ``sys.stderr``.

    Returns:
        The handler installed.
    """
    section = config.monitoring.logging
    return configure_logging(
        section.level,
        format=section.format,
        levels=section.levels,
        secrets=_secrets(config),
        stream=stream,
    )


def _secrets(model: object) -> Iterator[Secret]:
    """Every ``Secret`` in a configuration, however deep."""
    if isinstance(model, Secret):
        yield model
    elif isinstance(model, list | tuple):
        for item in model:
            yield from _secrets(item)
    elif isinstance(model, BaseModel):
        for name in type(model).model_fields:
            yield from _secrets(getattr(model, name))
