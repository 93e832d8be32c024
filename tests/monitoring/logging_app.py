"""An app for ``belugaflow worker --app tests.monitoring.logging_app:orch`` in the logging
tests: its config asks for JSON logs and holds a secret (``$LOGGING_APP_KEY``), which its node
logs, as careless code might."""

from __future__ import annotations

import logging
from typing import Any

from belugaflow import Orchestrator
from belugaflow.config import load_config_text

CONFIG = """\
monitoring:
  logging: {format: json, level: INFO, levels: {temporalio: WARNING}}
llm:
  anthropic: {api_key: "${LOGGING_APP_KEY}"}
"""

log = logging.getLogger("logging_app")


def pack(state: dict[str, Any]) -> dict[str, Any]:
    """Log the order, and the configured key (which must come out masked)."""
    config = orch.config
    assert config is not None and config.llm.anthropic.api_key is not None
    key = config.llm.anthropic.api_key
    log.info("packing order %s (key %s)", state["order"], key.get_secret_value())
    return {"packed": True}


config = load_config_text(CONFIG, source="logging_app")
orch = Orchestrator.from_config(config)
graph = orch.create_graph("logged").add_node("pack", pack)
graph.set_entry_point("pack").set_finish_point("pack")
