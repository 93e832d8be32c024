"""W12 ``api_start_rate``: workflows started per second through the REST API
(``POST /api/v1/workflows``) against starting them directly with the Temporal client, same
server, same run; then the API process's memory for 200 open event streams.

A fresh embedded ``DevServer`` (a SQLite file, as W5), a ``belugaflow worker`` process and a
``belugaflow serve`` process of :func:`build`, each in its own process group. The graph is one
wait node: a started run takes one workflow task and then waits on a signal, holding no worker,
so the worker costs little per start and the runs are still running when the event streams
open. (A graph that completed at once would double the workflow tasks per start and charge
both sides for the worker's work, not the start path.) The API runs as deployed: every request
carries a tenant's API key, and both sides start their runs in the tenant's namespace.

The load generator runs in this process: 50 clients, each a keep-alive HTTP/1.1 connection on
asyncio streams, N starts each with unique ids, the latency of each timed; then the same number
of starts with ``Client.start_workflow`` from 50 tasks, with the options the API sends. The
side that goes first alternates over the rounds. Rates are per round (starts / wall time);
``ratio`` is the median of the per-round ratios; p50/p99 pool every round's latencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import yaml

from belugaflow import Orchestrator
from belugaflow.config import Config
from belugaflow.server import hash_key, new_key

__all__ = ["build", "w12"]

GRAPH = "bench-hold"
CLIENTS = 50
TARGET = 0.8
"""The API's start rate as a fraction of the direct client's, at least."""
STREAMS = 200
SSE_TARGET_MIB = 50.0
ROOT = Path(__file__).resolve().parent.parent


TENANT = "bench"
"""The tenant whose key the API clients send: its runs live in namespace ``bench``."""


def build() -> Orchestrator:
    """The app both processes serve: one graph whose only node waits for signal
    ``release``; its config (``server.auth``) comes from ``BELUGAFLOW__...`` variables."""
    orch = Orchestrator.from_config(Config.from_yaml_string("{}"))
    graph = orch.create_graph(GRAPH)
    graph.add_wait("hold", signal="release")
    graph.set_entry_point("hold").set_finish_point("hold").compile()
    return orch


def _command() -> list[str]:
    script = Path(sys.executable).with_name("belugaflow")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from belugaflow.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextlib.contextmanager
def _process(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``belugaflow ARGS`` with ``env`` added, in its own process group, from the repository
    root; SIGTERM to the group on exit, SIGKILL after 30 s."""
    out: IO[bytes]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*_command(), *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        for signum, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(wait)


class _Http:
    """One keep-alive HTTP/1.1 connection on asyncio streams."""

    key = ""
    """Sent as ``Authorization: Bearer KEY`` when set."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Http:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, method: str, path: str, body: bytes = b"") -> None:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        if self.key:
            head += f"Authorization: Bearer {self.key}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()

    async def head(self) -> tuple[int, dict[str, str]]:
        lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        await self.send(method, path, body)
        status, headers = await self.head()
        return status, await self.reader.readexactly(int(headers.get("content-length", "0")))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class _Side:
    def __init__(self) -> None:
        self.rates: list[float] = []
        self.latencies: list[float] = []

    def summary(self, prefix: str) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            f"{prefix}_starts_per_s": round(statistics.median(self.rates), 1),
            f"{prefix}_rounds": [round(rate, 1) for rate in self.rates],
            f"{prefix}_p50_ms": round(ordered[len(ordered) // 2] * 1e3, 2),
            f"{prefix}_p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1e3, 2),
        }


async def _load(
    side: _Side, clients: list[Any], per_client: int, start: Callable[..., Any]
) -> None:
    """``per_client`` starts from each client at once; one rate and every latency."""

    async def client(index: int, connection: Any) -> None:
        for number in range(per_client):
            began = time.perf_counter()
            await start(connection, f"{index}-{number}-{uuid.uuid4().hex[:12]}")
            side.latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client(i, c) for i, c in enumerate(clients)))
    side.rates.append(len(clients) * per_client / (time.perf_counter() - began))


async def _w12(per_client: int, rounds: int) -> dict[str, Any]:
    from belugaflow.temporal import DevServer

    orch = build()
    task_queue = f"bench-api-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        async with contextlib.AsyncExitStack() as stack:
            data = Path(folder)
            server = await stack.enter_async_context(DevServer(data / "temporal.db"))
            result = await _measure(stack, server, data, orch, task_queue, per_client, rounds)
    return result


async def _measure(
    stack: contextlib.AsyncExitStack,
    server: Any,
    data: Path,
    orch: Orchestrator,
    task_queue: str,
    per_client: int,
    rounds: int,
) -> dict[str, Any]:
    from temporalio.client import Client

    spec = orch.graph(GRAPH).spec
    timeout = spec.timeout or orch.workflow_timeout
    common = ["--app", "benchmarks.api:build", "--address", server.address]
    common += ["--namespace", server.namespace, "--task-queue", task_queue]
    # The API as deployed: a tenant's key on every request, its runs in its namespace, where
    # the direct client starts its runs too.
    _Http.key = new_key()
    keys = data / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"tenant": TENANT, "hash": hash_key(_Http.key)}]}))
    env = {
        "BELUGAFLOW__SERVER__AUTH__TENANTS": TENANT,
        "BELUGAFLOW__SERVER__AUTH__KEYS_FILE": str(keys),
    }
    worker = ["worker", *common, "--metrics-port", "0"]
    stack.enter_context(_process(worker, data / "w.log", env))
    port = _free_port()
    serve = ["serve", *common, "--port", str(port)]
    api = stack.enter_context(_process(serve, data / "a.log", env))
    client = await Client.connect(server.address, namespace=TENANT)
    await _ready(port, api, data / "a.log")

    async def via_api(connection: _Http, id: str) -> None:
        body = json.dumps({"type": GRAPH, "input": {}, "id": f"api-{id}"}).encode()
        status, reply = await connection.request("POST", "/api/v1/workflows", body)
        if status != 201:
            raise RuntimeError(f"POST /workflows: {status} {reply[:300]!r}")

    options: dict[str, Any] = {
        "task_queue": task_queue,
        "execution_timeout": timedelta(seconds=timeout) if timeout else None,
        "memo": {"graph": spec.name, "version": spec.version},
        "request_eager_start": True,
    }

    async def direct(_: Any, id: str) -> None:
        await client.start_workflow(spec.name, {}, id=f"direct-{id}", **options)

    connections: list[Any] = []
    no_connections: list[Any] = [None] * CLIENTS

    async def reconnect() -> None:
        """Fresh keep-alive connections, untimed: uvicorn closes one idle for 5 s, as while
        the direct side ran."""
        for connection in connections:
            await connection.close()
        connections[:] = [await _Http.open(port) for _ in range(CLIENTS)]

    async def nothing() -> None:
        return None

    Plan = tuple[_Side, list[Any], Callable[..., Awaitable[None]], Callable[[], Awaitable[None]]]
    try:
        api_side, direct_side = _Side(), _Side()
        sides: list[Plan] = [
            (api_side, connections, via_api, reconnect),
            (direct_side, no_connections, direct, nothing),
        ]
        for _, clients, start, prepare in sides:  # warm-up: imports, caches, pools
            await prepare()
            await _load(_Side(), clients, 2, start)
        for index in range(rounds):
            for side, clients, start, prepare in sides if index % 2 == 0 else reversed(sides):
                await prepare()
                await _load(side, clients, per_client, start)
    finally:
        for connection in connections:
            await connection.close()
    ratios = [a / d for a, d in zip(api_side.rates, direct_side.rates, strict=True)]
    sse = await _sse(client, port, api.pid, options)
    ratio = statistics.median(ratios)
    return {
        **api_side.summary("api"),
        **direct_side.summary("direct"),
        "ratio": round(ratio, 3),
        "ratio_rounds": [round(r, 3) for r in ratios],
        **sse,
        "ratio_ok": ratio >= TARGET,
        "meets_target": ratio >= TARGET and sse["sse_200_mib"] <= SSE_TARGET_MIB,
    }


async def _ready(port: int, api: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise RuntimeError(f"the API exited:\n{_tail(log)}")
        with contextlib.suppress(OSError):
            connection = await _Http.open(port)
            status, _ = await connection.request("GET", "/readyz")
            await connection.close()
            if status == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the API never became ready:\n{_tail(log)}")


async def _sse(client: Any, port: int, pid: int, options: dict[str, Any]) -> dict[str, Any]:
    """Open :data:`STREAMS` event streams on as many waiting runs; the API's RSS growth."""
    ids = [f"sse-{i}-{uuid.uuid4().hex[:8]}" for i in range(STREAMS)]
    await asyncio.gather(*(client.start_workflow(GRAPH, {}, id=id, **options) for id in ids))
    await asyncio.sleep(1.0)
    before = _rss_mib(pid)
    received = [0] * STREAMS
    opened = [asyncio.Event() for _ in range(STREAMS)]

    async def stream(index: int) -> None:
        connection = await _Http.open(port)
        try:
            await connection.send("GET", f"/api/v1/workflows/{ids[index]}/events")
            status, _ = await connection.head()
            if status != 200:
                raise RuntimeError(f"GET events: {status}")
            while chunk := await connection.reader.read(65536):
                received[index] += len(chunk)
                opened[index].set()
        finally:
            await connection.close()

    tasks = [asyncio.create_task(stream(i)) for i in range(STREAMS)]
    try:
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in opened)), 60)
        await asyncio.sleep(3.0)  # every stream's history read settles
        after = _rss_mib(pid)
        alive = sum(not task.done() for task in tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "sse_streams": alive,
        "sse_rss_before_mib": round(before, 1),
        "sse_rss_after_mib": round(after, 1),
        "sse_200_mib": round(after - before, 1),
        "sse_target_mib": SSE_TARGET_MIB,
        "sse_bytes_per_stream": round(statistics.median(received)),
    }


def w12(quick: bool) -> list[dict[str, Any]]:
    """Run W12: 4 rounds of 50 clients × 20 starts a side (2 rounds × 4 with ``quick``): each
    side goes first equally often, as the server slows while its database fills."""
    per_client, rounds = (4, 2) if quick else (20, 4)
    result = asyncio.run(_w12(per_client, rounds))
    return [
        {
            "workload": "W12",
            "name": "api_start_rate",
            "unit": "starts/s",
            "clients": CLIENTS,
            "starts_per_side_round": CLIENTS * per_client,
            "rounds": rounds,
            "target": TARGET,
            **result,
        }
    ]
