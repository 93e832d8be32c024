"""How commands report failure: one line on stderr, then a distinct exit code."""

from __future__ import annotations

from enum import IntEnum
from typing import NoReturn

import typer

__all__ = ["ExitCode", "fail"]


class ExitCode(IntEnum):
    """Process exit codes shared by every command."""

    OK = 0
    """Success."""
    INVALID = 1
    """The checked thing is bad: an invalid config, a graph that does not import or compile."""
    USAGE = 2
    """The command line itself is wrong (typer reports these on its own)."""


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with :attr:`ExitCode.INVALID`."""
    typer.echo(f"{typer.style('error:', fg='red', bold=True)} {message}", err=True)
    raise typer.Exit(ExitCode.INVALID)
