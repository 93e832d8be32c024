"""``python -m belugaflow.cli``: the ``belugaflow`` command, run by this interpreter (``belugaflow
up`` starts its worker and API this way, so they use the same environment)."""

from belugaflow.cli._app import app

app(prog_name="belugaflow")
