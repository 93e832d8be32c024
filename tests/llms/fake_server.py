"""A real HTTP server on 127.0.0.1 that answers from a script, for the provider fakes.

Each test queues the replies it wants (:meth:`FakeServer.script`); once the queue is empty the
server answers with its default. Every request is recorded, so tests count what the SDK sent.
A reply can be an error, a slow answer, a malformed body, or a server-sent-event stream that
is cut mid-way.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeServer", "Recorded", "Reply"]


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    events: tuple[bytes, ...] | None = None
    """Server-sent-event frames; the answer is then streamed, one chunk per frame."""
    cut: bool = False
    """Drop the connection after the events, without ending the stream properly."""
    delay: float = 0.0
    """Seconds to wait before answering (cut short when the server stops)."""

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        """A JSON answer."""
        return cls(status, json.dumps(data).encode(), headers or {})

    def slow(self, seconds: float) -> Reply:
        """This reply, after ``seconds``."""
        return Reply(self.status, self.body, self.headers, self.events, self.cut, seconds)


@dataclass(frozen=True)
class Recorded:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    """The decoded JSON body (None if it was not JSON)."""


class FakeServer:
    """Serve scripted replies on ``127.0.0.1`` (a free port) until :meth:`stop`.

    Args:
        default: Makes the reply once the script is used up, from the recorded request.
    """

    def __init__(self, default: Callable[[Recorded], Reply]) -> None:
        self.default = default
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        # A short poll interval: shutdown() waits for the current poll to end.
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order."""
        with self._lock:
            self._script.extend(replies)

    def bodies(self) -> list[Any]:
        """The JSON bodies of the requests received so far."""
        return [request.body for request in self.requests]

    def _next(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
        return self.default(request)


def _handler_for(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real APIs do

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = server._next(Recorded("POST", self.path, headers, body))
            if reply.delay and server._stopping.wait(reply.delay):
                return
            try:
                self._answer(reply)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (its timeout)

        def _answer(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.events is None:
                if "content-type" not in {name.lower() for name in reply.headers}:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                return
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for frame in reply.events:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                self.wfile.flush()
            if reply.cut:
                self.close_connection = True  # no final chunk: the body is incomplete
                return
            self.wfile.write(b"0\r\n\r\n")

    return Handler


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent-event frame."""
    text = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {text}\n\n".encode()


def running(server: FakeServer) -> Iterator[FakeServer]:
    """Start ``server``, yield it, stop it (for fixtures)."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
