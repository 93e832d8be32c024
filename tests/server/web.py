"""A small HTTP client over ``urllib`` and ``http.client`` for the API tests (no httpx here)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Reply", "SseMessage", "call", "chunked", "read_events"]

_UNSET: Any = object()


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def problem(self) -> dict[str, Any]:
        """The body of an error, checked to be a problem."""
        assert self.content_type == "application/problem+json", (self.status, self.body)
        body: dict[str, Any] = self.json()
        assert {"type", "title", "status", "detail", "code"} <= set(body), body
        assert body["status"] == self.status and body["type"].endswith(body["code"])
        return body


def call(
    url: str,
    method: str = "GET",
    json_body: Any = _UNSET,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Reply:
    """One request; ``json_body`` is sent as JSON, ``data`` as it is."""
    sent = dict(headers or {})
    if json_body is not _UNSET:
        data = json.dumps(json_body).encode()
        sent.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.headers.get_content_type(), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers.get_content_type(), error.read())


def chunked(url: str, body: bytes, content_type: str = "application/json") -> Reply:
    """POST ``body`` with chunked transfer encoding: no Content-Length."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:

        def pieces() -> Iterator[bytes]:
            for start in range(0, len(body), 16384):
                yield body[start : start + 16384]

        connection.request(
            "POST",
            parts.path + (f"?{parts.query}" if parts.query else ""),
            body=pieces(),
            headers={"Content-Type": content_type},
            encode_chunked=True,
        )
        response = connection.getresponse()
        return Reply(response.status, response.headers.get_content_type(), response.read())
    finally:
        connection.close()


@dataclass(frozen=True)
class SseMessage:
    id: str | None
    event: str | None
    data: dict[str, Any]


def parse_events(text: str) -> list[SseMessage]:
    """The messages of an event stream's text (comments and ``retry:`` skipped)."""
    found = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if "data" in fields:
            found.append(
                SseMessage(fields.get("id"), fields.get("event"), json.loads(fields["data"]))
            )
    return found


def read_events(
    url: str, headers: Mapping[str, str] | None = None, timeout: float = 60.0
) -> tuple[str, list[SseMessage]]:
    """Read an event stream to its end: its content type and messages."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.headers.get_content_type(), parse_events(response.read().decode())
