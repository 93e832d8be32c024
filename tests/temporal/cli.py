"""The official ``temporal`` CLI as a test's client: what a user without Python types."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from belugaflow.temporal import DevServer, find_temporal_cli

__all__ = ["Cli"]

WAIT = 20.0


class Cli:
    """The official ``temporal`` CLI against the test server."""

    def __init__(self, server: DevServer) -> None:
        self.binary = str(find_temporal_cli())
        self.target = ["--address", server.address, "--namespace", server.namespace]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args, *self.target], capture_output=True, text=True, timeout=WAIT
        )

    def __call__(self, *args: str) -> str:
        """The command's output; it must succeed."""
        done = self.run(*args)
        assert done.returncode == 0, f"temporal {' '.join(args)}: {done.stderr}"
        return done.stdout

    def progress(self, workflow_id: str) -> dict[str, Any]:
        out = self("workflow", "query", "--workflow-id", workflow_id, "--name", "progress", "-o",
                   "json")  # fmt: skip
        return dict(json.loads(out)["queryResult"][0])

    def status(self, workflow_id: str) -> str:
        """The run's status as ``temporal workflow describe`` shows it, e.g. ``FAILED``."""
        out = self("workflow", "describe", "--workflow-id", workflow_id, "-o", "json")
        status = json.loads(out)["workflowExecutionInfo"]["status"]
        return str(status).removeprefix("WORKFLOW_EXECUTION_STATUS_")
