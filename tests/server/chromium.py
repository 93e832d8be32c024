"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol, for the run
page's test.

The protocol runs over a pipe (``--remote-debugging-pipe``: JSON messages ending in a NUL
byte, commands on the browser's fd 3, answers and events on its fd 4), so no port is opened
and no websocket client is needed. Nothing is downloaded: the browser is the system's, and
its background networking is off.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["Browser", "BrowserError"]

# Puts the pipe's ends on fds 3 and 4, where Chromium looks for them, then becomes Chromium.
# (A child of its own: subprocess cannot choose fd numbers, and preexec_fn is unsafe with
# threads, which the tests run.)
_LAUNCHER = (
    "import fcntl, os, sys\n"
    "read, write = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])\n"
    "os.dup2(read, 3); os.dup2(write, 4); os.close(read); os.close(write)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
]


class BrowserError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class Browser:
    """One headless Chromium with one page (tab); use as a context manager."""

    def __init__(self, executable: str, profile: Path) -> None:
        self.executable = executable
        self.profile = profile
        self.events: list[dict[str, Any]] = []
        """Every protocol event received so far (``method``, ``params``)."""
        self._process: subprocess.Popen[bytes] | None = None
        self._to = self._from = -1
        self._buffer = b""
        self._next = 0
        self._session: str | None = None

    def __enter__(self) -> Browser:
        to_read, self._to = os.pipe()
        self._from, from_write = os.pipe()
        log = (self.profile / "chromium.log").open("wb")
        with log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _LAUNCHER,
                    str(to_read),
                    str(from_write),
                    self.executable,
                    *FLAGS,
                    f"--user-data-dir={self.profile}",
                    "--remote-debugging-pipe",
                    "about:blank",
                ],
                pass_fds=(to_read, from_write),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its helpers share its group: stopped together
            )
        os.close(to_read)
        os.close(from_write)
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(BrowserError, OSError):
            self._session = None
            self.send("Browser.close", timeout=5)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the group of the browser we started
            process.wait(10)
        for fd in (self._to, self._from):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the protocol ----------------------------------------------------------------------

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 15) -> Any:
        """Send a command (to the page, once one is attached) and return its result."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if self._session is not None:
            message["sessionId"] = self._session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        found: dict[str, Any] | None = None
        while found is None:
            for answer in self._read(deadline):  # every message read: events may follow it
                if answer.get("id") == self._next:
                    found = answer
                elif "method" in answer:
                    self.events.append(answer)
        if "error" in found:
            raise BrowserError(f"{method}: {found['error']}")
        result: Any = found.get("result", {})
        return result

    def _read(self, deadline: float) -> list[dict[str, Any]]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from], [], [], left)[0]:
                raise BrowserError(f"no answer from the browser in time; see {self.profile}")
            chunk = os.read(self._from, 1 << 16)
            if not chunk:
                raise BrowserError(f"the browser closed its pipe; see {self.profile}")
            self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(message) for message in messages]

    # -- the page --------------------------------------------------------------------------

    def on_new_document(self, script: str) -> None:
        """Run ``script`` in every document the page loads, before its own scripts."""
        self.send("Page.addScriptToEvaluateOnNewDocument", {"source": script})

    def goto(self, url: str) -> None:
        """Load ``url`` and wait until its ``load`` event."""
        loaded = len(self.events)
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"cannot load {url}: {answer['errorText']}")
        self.wait_for_event("Page.loadEventFired", since=loaded)

    def wait_for_event(self, method: str, since: int = 0, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not any(e["method"] == method for e in self.events[since:]):
            if time.monotonic() > deadline:
                raise BrowserError(f"no {method} in {timeout} s")
            self.evaluate("0")  # reads the events that came meanwhile

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        answer = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 20, what: str = "") -> Any:
        """Evaluate ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"never true in {timeout} s: {what or expression}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """Click the element ``selector`` finds with the mouse, as a person would: scrolled
        into view, pressed and released at its centre."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.x + r.width / 2, y: r.y + r.height / 2}; })()"
        )
        if box is None:
            raise BrowserError(f"nothing matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    def requested(self) -> list[str]:
        """The URLs the page requested so far."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def exceptions(self) -> list[str]:
        """Uncaught JavaScript exceptions so far, as text."""
        return [
            json.dumps(e["params"]["exceptionDetails"])[:500]
            for e in self.events
            if e["method"] == "Runtime.exceptionThrown"
        ]
