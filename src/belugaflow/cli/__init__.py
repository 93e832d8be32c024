"""The ``belugaflow`` command line: a thin typer adapter over the library.

Commands (``belugaflow --help`` lists them; see ``docs/cli.md``):

- ``belugaflow config check FILE [--show]`` validates a ``config.yaml``;
- ``belugaflow graph show MODULE:OBJECT [--format mermaid|json]`` draws or dumps a graph;
- ``belugaflow --version``.

Exit codes: 0 success, 1 the checked thing is bad (invalid config, graph that does not import
or compile), 2 usage error (unknown command or option, malformed argument).
"""

from belugaflow.cli._app import app, main

__all__ = ["app", "main"]
