"""The ``belugaflow`` command line: a thin typer adapter over the library and the REST API.

``belugaflow --help`` lists the commands and ``docs/cli.md`` describes them: ``up`` (the whole
system), ``serve`` (the REST API), ``worker``, ``run`` and ``workflows ...`` / ``graph ...``
(through the API, or locally with ``--app``), ``config check``, ``memory ...`` (show, list,
delete and prune memory), ``server start-dev``.
Exit codes are :class:`~belugaflow.cli._output.ExitCode`, documented in ``docs/cli.md``.
"""

from belugaflow.cli._app import app, main

__all__ = ["app", "main"]
