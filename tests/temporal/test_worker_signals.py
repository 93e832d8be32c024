"""``run_worker`` leaves an embedding program's signal handlers as it found them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from belugaflow.temporal import DevServer

ROOT = Path(__file__).resolve().parents[2]


def test_the_programs_own_handlers_survive_the_worker(temporal_server: DevServer) -> None:
    """A program with its own SIGTERM (asyncio) and SIGINT (signal.signal) handlers runs a worker
    with ``stop=`` and then without: afterwards both signals still reach the program's handlers
    (before, SIGTERM killed it and SIGINT raised KeyboardInterrupt)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.temporal.worker_signals", temporal_server.address,
         temporal_server.namespace],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["program SIGTERM handler", "program SIGINT handler"]
