"""How commands report failure: one line on stderr, then a distinct exit code."""

from __future__ import annotations

from enum import IntEnum
from typing import NoReturn

import typer

__all__ = ["ExitCode", "fail"]


class ExitCode(IntEnum):
    """Process exit codes shared by every command (the table in ``docs/cli.md``)."""

    OK = 0
    """Success; for a command that waits for a run, the run completed."""
    INVALID = 1
    """The checked thing is bad (an invalid config, a graph that does not import or compile),
    or the API refused the request for a reason no other code names (a run that has ended,
    an id taken, a malformed cursor, an error of the server)."""
    USAGE = 2
    """The command line itself is wrong (typer reports these on its own), or a JSON argument
    does not parse."""
    FAILED = 3
    """The run failed."""
    CANCELLED = 4
    """The run was cancelled or terminated."""
    TIMED_OUT = 5
    """The run timed out."""
    INPUT_REFUSED = 6
    """The API refused the input or value as invalid (422): nothing was started or sent."""
    NOT_FOUND = 7
    """The API has no such workflow type, graph, run, signal or query (404); a memory scope
    holds nothing."""
    UNREACHABLE = 8
    """The API cannot be reached (nothing listens, a timeout, not an HTTP server)."""
    UNAVAILABLE = 9
    """The API answers, but Temporal or a worker does not (503); the memory store cannot be
    reached."""
    RUNNING = 10
    """The run is still running when the command stopped waiting for it."""
    UNAUTHORIZED = 11
    """The API refused the API key, or wants one (401, 403)."""
    NOT_REPLAYABLE = 12
    """A workflow history does not replay on the app's code, or cannot be read
    (``belugaflow replay``)."""
    INTERRUPTED = 130
    """Ctrl-C while watching a run (the run goes on)."""


def fail(message: str, code: ExitCode = ExitCode.INVALID) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"{typer.style('error:', fg='red', bold=True)} {message}", err=True)
    raise typer.Exit(code)
