"""The REST API as the command line uses it: one small HTTP client over ``urllib``.

Commands that drive runs (``run``, ``workflows list|result|signal|query|cancel|terminate``,
``graph run``, and ``workflows show`` / ``graph list|show`` in their API mode) are clients of
``/api/v1``. :class:`Api` sends JSON, reads JSON, and turns every failure into an
:class:`ApiError`: one line naming the problem (the API's ``detail``, its fields, its status and
``code``) and the exit code a script can branch on (:func:`exit_code`). :meth:`Api.events`
follows a run's Server-Sent Events and reconnects with ``Last-Event-ID`` when the connection
drops.

The standard library is enough here: the CLI needs neither the ``server`` extra nor httpx to
talk to a server somewhere else.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from belugaflow.cli._output import ExitCode

__all__ = [
    "API_ENV",
    "API_KEY_ENV",
    "DEFAULT_API",
    "Api",
    "ApiError",
    "ApiKeyOption",
    "ApiModeOption",
    "ApiOption",
    "JsonOption",
    "Reply",
    "SseMessage",
    "connect",
    "describe",
    "exit_code",
    "parse_json_argument",
    "quote",
    "through_api",
]

API_ENV = "BELUGAFLOW_API"
"""The variable that names the API's URL when ``--api`` is not given."""
API_KEY_ENV = "BELUGAFLOW_API_KEY"
"""The variable that holds the API key when ``--api-key`` is not given."""
DEFAULT_API = "http://127.0.0.1:8000"
"""Where ``belugaflow up`` and ``belugaflow serve`` listen by default."""
PREFIX = "/api/v1"

REQUEST_TIMEOUT = 30.0
"""Seconds a request may take beyond the long poll it asks for."""
STREAM_READ_TIMEOUT = 60.0
"""Seconds without a byte on an event stream (the API sends a comment every 15 s while idle)
before the connection counts as dropped."""
RECONNECT_FOR = 30.0
"""Seconds an event stream keeps trying to reconnect without getting a message through."""

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        metavar="URL",
        help=f"The REST API's base URL [default: ${API_ENV}, else {DEFAULT_API}].",
        show_default=False,
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        metavar="KEY",
        help=f"Sent as 'Authorization: Bearer KEY' [default: ${API_KEY_ENV}, else none].",
        show_default=False,
    ),
]
ApiModeOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        metavar="URL",
        help=f"Ask the REST API at URL instead [default: ${API_ENV} when no local option is"
        " given; see 'Local or through the API' in docs/cli.md].",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON answer (for scripts).")
]

_ENDS = ("completed", "failed", "cancelled", "terminated", "timed_out", "continued_as_new")
_RUN_ENDS = frozenset(f"belugaflow.run.{status}" for status in _ENDS)
_TIMED_OUT_CODES = frozenset({"run_timeout", "wait_timeout"})
_CANCELLED_CODES = frozenset({"run_cancelled", "run_terminated"})


class ApiError(Exception):
    """A request that did not succeed: ``str()`` is one line naming the problem, ``code`` the
    exit code, ``problem`` the API's problem body (None when the API did not answer with one).
    """

    def __init__(
        self, message: str, code: ExitCode, *, status: int | None = None, problem: Any = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer: its status and its JSON."""

    status: int
    body: Any


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One message of an event stream."""

    id: str | None
    event: str
    data: dict[str, Any]


def exit_code(status: int, problem: Any) -> ExitCode:
    """The exit code for an error answer of the API (``problem`` is its body)."""
    body = problem if isinstance(problem, Mapping) else {}
    code = body.get("code")
    if status in (401, 403):
        return ExitCode.UNAUTHORIZED
    if status == 404:
        return ExitCode.NOT_FOUND
    if status == 422:
        return ExitCode.INPUT_REFUSED
    if status == 503:
        return ExitCode.UNAVAILABLE
    ended = body.get("workflow_status")
    if status == 409 and code != "workflow_closed" and isinstance(ended, str):
        # The result of a run that did not complete: the run's error, as a problem.
        if code in _TIMED_OUT_CODES or ended == "timed_out":
            return ExitCode.TIMED_OUT
        if code in _CANCELLED_CODES or ended in ("canceled", "terminated"):
            return ExitCode.CANCELLED
        return ExitCode.FAILED
    return ExitCode.INVALID


def describe(status: int, problem: Any, url: str) -> str:
    """One line for an error answer: the problem's ``detail`` and each field it names, then
    ``[status code]``; for an answer that is no problem, the status and the start of the
    body."""
    if isinstance(problem, Mapping) and isinstance(problem.get("detail"), str):
        detail: str = problem["detail"]
        for error in problem.get("errors") or ():
            if not isinstance(error, Mapping):
                continue
            loc = [str(part) for part in error.get("loc", ())]
            loc = loc[1:] if loc[:1] == ["body"] else loc
            msg = str(error.get("msg", ""))
            where = ".".join(loc)
            text = f"{where}: {msg}" if where else msg
            if text not in detail:
                detail += f"; {text}"
        return f"{detail} [{status} {problem.get('code', '?')}]"
    text = problem if isinstance(problem, str) else json.dumps(problem)
    text = " ".join(text.split())[:200]
    said = f": {text}" if text else ""
    return f"HTTP {status} from {url}{said} (is it a belugaflow API?)"


@dataclass
class Api:
    """The REST API at ``url`` (``http://host:port``), with an API key or none."""

    url: str
    key: str | None = field(default=None, repr=False)
    on_reconnect: Callable[[str], None] | None = None
    """Told, in a sentence, each time an event stream reconnects."""

    # -- plain requests -------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        send: bool = False,
        query: Mapping[str, object | None] | None = None,
        wait: float = 0.0,
    ) -> Reply:
        """Send one request to ``/api/v1{path}``: ``body`` as JSON when ``send`` (or when it is
        not None); ``query`` without its None values; ``wait``: seconds of long poll the
        request asks for, added to its timeout.

        Raises:
            ApiError: The API answered with an error, or could not be reached.
        """
        url = self.endpoint(path, query)
        data = json.dumps(body).encode() if send or body is not None else None
        headers = {"Accept": "application/json", **self._auth()}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        with self._open(request, REQUEST_TIMEOUT + wait) as response:
            raw = self._read(response, url)
            media = response.headers.get_content_type()
        if raw and media != "application/json":
            raise ApiError(
                f"{url} answered {response.status} with {media}, not JSON: is {self.url} a"
                " belugaflow API?",
                ExitCode.INVALID,
                status=response.status,
            )
        return Reply(response.status, _decode(raw))

    def endpoint(self, path: str, query: Mapping[str, object | None] | None = None) -> str:
        """The URL of ``/api/v1{path}``."""
        url = f"{self.url}{PREFIX}{path}"
        pairs = {key: str(value) for key, value in (query or {}).items() if value is not None}
        return f"{url}?{urllib.parse.urlencode(pairs)}" if pairs else url

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def _open(self, request: urllib.request.Request, timeout: float) -> http.client.HTTPResponse:
        url = request.full_url
        try:
            response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            with error:
                try:
                    problem = _decode(error.read())
                except (OSError, http.client.HTTPException):
                    problem = None
            raise ApiError(
                describe(error.code, problem, url),
                exit_code(error.code, problem),
                status=error.code,
                problem=problem,
            ) from None
        except urllib.error.URLError as error:
            raise self._unreachable(url, error.reason) from None
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise self._unreachable(url, error) from None
        return response

    def _read(self, response: http.client.HTTPResponse, url: str) -> bytes:
        try:
            return response.read()
        except (OSError, http.client.HTTPException) as error:
            raise self._unreachable(url, error) from None

    def _unreachable(self, url: str, reason: object) -> ApiError:
        if isinstance(reason, socket.timeout | TimeoutError):
            reason = "timed out"
        return ApiError(
            f"cannot reach the API at {self.url} ({url}): {reason or type(reason).__name__};"
            f" is `belugaflow serve` or `belugaflow up` running there? (--api, ${API_ENV})",
            ExitCode.UNREACHABLE,
        )

    # -- the event stream ------------------------------------------------------------------------

    def events(self, workflow_id: str, *, after: str | None = None) -> Iterator[SseMessage]:
        """The events of run ``workflow_id`` (``GET /workflows/{id}/events``) from its start,
        or after message ``after``, until the run's end event.

        A connection that drops, times out or ends early is opened again with
        ``Last-Event-ID`` (the last message seen), after the delay the server asked for
        (``retry:``), for up to :data:`RECONNECT_FOR` seconds without a message.

        Raises:
            ApiError: The API answered with an error (no such run: ``NOT_FOUND``), or the
                stream could not be (re)opened in time (``UNREACHABLE``).
        """
        url = self.endpoint(f"/workflows/{quote(workflow_id)}/events")
        last, delay = after, 2.0
        healthy_since = time.monotonic()
        while True:
            headers = {"Accept": "text/event-stream", **self._auth()}
            if last is not None:
                headers["Last-Event-ID"] = last
            request = urllib.request.Request(url, headers=headers)
            why = "the stream ended before the run did"
            try:
                with self._open(request, STREAM_READ_TIMEOUT) as response:
                    for message in _parse(response):
                        if isinstance(message, float):  # retry: the server's delay
                            delay = message
                            continue
                        healthy_since = time.monotonic()
                        if message.event == "belugaflow.stream.error":
                            why = f"the API lost the run's history: {message.data.get('error')}"
                            break
                        if message.id is not None:
                            last = message.id
                        yield message
                        if message.event in _RUN_ENDS:
                            return
            except ApiError as error:
                if error.code not in (ExitCode.UNREACHABLE, ExitCode.UNAVAILABLE):
                    raise
                why = str(error)
            except (OSError, http.client.HTTPException) as error:
                why = f"the connection dropped ({error or type(error).__name__})"
            if time.monotonic() - healthy_since > RECONNECT_FOR:
                raise ApiError(
                    f"the event stream of {workflow_id!r} did not come back within"
                    f" {RECONNECT_FOR:.0f} s: {why}",
                    ExitCode.UNREACHABLE,
                )
            if self.on_reconnect is not None:
                where = f"after event {last}" if last is not None else "from the start"
                self.on_reconnect(f"{why}; reconnecting in {delay:g} s, {where}")
            time.sleep(delay)


def _parse(response: http.client.HTTPResponse) -> Iterator[SseMessage | float]:
    """The messages of an event stream as they arrive, and each ``retry:`` (in seconds).
    Comment lines are skipped; a message without ``data`` is dropped, as browsers do."""
    fields: dict[str, str] = {}
    data: list[str] = []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                try:
                    parsed = json.loads("\n".join(data))
                except ValueError:
                    parsed = {"data": "\n".join(data)}
                if not isinstance(parsed, dict):
                    parsed = {"data": parsed}
                event = fields.get("event") or str(parsed.get("event", "message"))
                yield SseMessage(fields.get("id"), event, parsed)
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "retry" and value.isdigit():
            yield int(value) / 1000
        elif name in ("id", "event"):
            fields[name] = value


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def quote(part: str) -> str:
    """A path segment: a workflow id, a graph, signal or query name."""
    return urllib.parse.quote(part, safe="")


def connect(api: str | None, api_key: str | None) -> Api:
    """The API of ``--api`` (else ``$BELUGAFLOW_API``, else :data:`DEFAULT_API`), with the
    key of ``--api-key`` (else ``$BELUGAFLOW_API_KEY``).

    A URL without a scheme is ``http://``; a trailing ``/api/v1`` is dropped.

    Raises:
        typer.BadParameter: The URL is not an http(s) URL.
    """
    url = (api or os.environ.get(API_ENV) or DEFAULT_API).strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    url = url.removesuffix(PREFIX).rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(
            f"{url!r} is not an http(s) URL, e.g. http://127.0.0.1:8000",
            param_hint="'--api'" if api else f"${API_ENV}",
        )
    key = api_key or os.environ.get(API_KEY_ENV) or None
    return Api(url, key)


def parse_json_argument(text: str | None, option: str) -> Any:
    """The JSON value of ``--input`` / ``--value``: inline JSON, ``@FILE`` (a file's JSON) or
    ``@-`` (standard input); None when the option is not given.

    Raises:
        typer.BadParameter: The file cannot be read, or the text is not JSON.
    """
    if text is None:
        return None
    source = "the value"
    if text.startswith("@"):
        name = text[1:]
        try:
            if name == "-":
                source, text = "standard input", typer.get_text_stream("stdin").read()
            else:
                source, text = name, Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise typer.BadParameter(f"cannot read {name}: {error}", param_hint=option) from None
    try:
        return json.loads(text)
    except ValueError as error:
        hint = "" if source != "the value" else " (quote it for the shell, or use @FILE)"
        raise typer.BadParameter(
            f"{source} is not JSON: {error}{hint}", param_hint=option
        ) from None


def through_api(api: str | None, local: Sequence[str]) -> bool:
    """Whether a command that can read locally or through the API uses the API: when
    ``--api`` is given, or when ``$BELUGAFLOW_API`` is set and none of the local options
    ``local`` (their names, e.g. ``["--app"]``) is given.

    Raises:
        typer.BadParameter: ``--api`` and a local option together.
    """
    if api is not None:
        if local:
            raise typer.BadParameter(
                f"--api reads through the REST API, {' and '.join(local)} locally: give one or"
                " the other",
                param_hint="'--api'",
            )
        return True
    return not local and bool(os.environ.get(API_ENV))
