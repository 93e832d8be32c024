"""Connecting to a secured Temporal frontend, for real, on 127.0.0.1 only.

* TLS and mutual TLS: Debian's ``stunnel4`` terminates TLS in front of the session's dev
  server, with certificates of a test CA made here by the ``openssl`` CLI. stunnel (5.68)
  negotiates no ALPN, and the SDK's transport (tonic) refuses a TLS connection whose server did
  not choose ``h2`` (``H2NotNegotiated``), as gRPC requires; so stunnel runs with a 20-line
  ``LD_PRELOAD`` shim (compiled here by ``cc``) that makes its OpenSSL contexts select ``h2``.
  Everything else (handshake, chain and name checks, client-certificate checks, expiry) is
  stunnel's and OpenSSL's own. The mutual-TLS proxy runs twice, capped at TLS 1.3 (where the
  client may see the server's alert or only a closed connection: both must give the same
  advice) and at TLS 1.2 (where the alert comes in the handshake).
* The API key: a small gRPC proxy (``grpcio``, over TLS with the test CA's certificate) in
  front of the dev server records the metadata of every call and answers ``UNAUTHENTICATED``
  unless it carries ``authorization: Bearer <the key>``; the rest it forwards as raw bytes.

Each failure (wrong CA, wrong server name, expired, foreign or mismatched client certificate,
no certificate, plain to TLS, TLS to plain, a refused key, nothing listening) is provoked and
must give a :class:`TemporalConnectionError` naming the address and what to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from belugaflow import Orchestrator
from belugaflow.config import Config, load_config_text
from belugaflow.temporal import DevServer, TemporalConnectionError
from belugaflow.temporal._worker import run_worker

SERVER_NAME = "temporal.test"
KEY = "bf-test-key-9c1e"
ROOT = Path(__file__).resolve().parents[2]

# --- the test CA ----------------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _new_key_and_csr(directory: Path, name: str) -> tuple[Path, Path]:
    key, csr = directory / f"{name}.key", directory / f"{name}.csr"
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
    )  # fmt: skip
    return key, csr


@dataclass(frozen=True)
class Pair:
    """A PEM certificate and its private key."""

    cert: Path
    key: Path


def make_ca(directory: Path, name: str) -> Pair:
    """A self-signed CA, valid for two days."""
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(pair.key), "-out", str(pair.cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return pair


def issue(directory: Path, ca: Pair, name: str, *, dns: str | None = None, days: int = 2) -> Pair:
    """A certificate signed by ``ca``: a server's for ``dns``, else a client's. ``days=-1``
    makes one that expired (its notAfter lies before its notBefore, a day ago)."""
    key, csr = _new_key_and_csr(directory, name)
    extensions = directory / f"{name}.ext"
    lines = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature",
        f"extendedKeyUsage={'serverAuth' if dns else 'clientAuth'}",
    ]
    if dns:
        lines.append(f"subjectAltName=DNS:{dns}")
    extensions.write_text("\n".join(lines) + "\n")
    cert = directory / f"{name}.pem"
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", str(days), "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    return Pair(cert, key)


@dataclass(frozen=True)
class Pki:
    ca: Pair
    other_ca: Pair
    server: Pair
    client: Pair
    expired_client: Pair
    foreign_client: Pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA, another CA, and the certificates the tests present."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    directory = tmp_path_factory.mktemp("pki")
    ca, other = make_ca(directory, "test-ca"), make_ca(directory, "other-ca")
    return Pki(
        ca=ca,
        other_ca=other,
        server=issue(directory, ca, "server", dns=SERVER_NAME),
        client=issue(directory, ca, "client"),
        expired_client=issue(directory, ca, "expired-client", days=-1),
        foreign_client=issue(directory, other, "foreign-client"),
    )


# --- stunnel --------------------------------------------------------------------------------

# stunnel offers no ALPN; gRPC clients need the server to choose "h2". This wraps the one
# OpenSSL call stunnel makes contexts with and installs an ALPN callback choosing "h2".
ALPN_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_method_st SSL_METHOD;
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;
typedef int (*select_cb)(SSL *, const unsigned char **, unsigned char *,
                         const unsigned char *, unsigned int, void *);
extern void SSL_CTX_set_alpn_select_cb(SSL_CTX *, select_cb, void *);
extern int SSL_select_next_proto(unsigned char **, unsigned char *, const unsigned char *,
                                 unsigned int, const unsigned char *, unsigned int);
static const unsigned char h2[] = "\x02h2";
static int choose(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                  const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, h2, 3, in, inlen) != 1)
        return 3; /* SSL_TLSEXT_ERR_NOACK */
    return 0;     /* SSL_TLSEXT_ERR_OK */
}
SSL_CTX *SSL_CTX_new_ex(OSSL_LIB_CTX *lib, const char *props, const SSL_METHOD *method) {
    static SSL_CTX *(*real)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *);
    if (!real)
        real = (SSL_CTX *(*)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *))
            dlsym(RTLD_NEXT, "SSL_CTX_new_ex");
    SSL_CTX *ctx = real(lib, props, method);
    if (ctx) SSL_CTX_set_alpn_select_cb(ctx, choose, 0);
    return ctx;
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"stunnel exited with {process.returncode}: {log.read_text()}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"stunnel did not listen on {port}")


@dataclass
class Stunnel:
    address: str
    log: Path

    def accepted(self) -> int:
        """Connections stunnel accepted (from its log)."""
        return self.log.read_text(errors="replace").count("accepted connection from")


@pytest.fixture(scope="module")
def alpn_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim, compiled; skips when stunnel4 or a C compiler is missing."""
    if shutil.which("stunnel4") is None:
        pytest.skip("stunnel4 is not installed (make tools installs it, as root)")
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) for stunnel's ALPN shim")
    directory = tmp_path_factory.mktemp("alpn")
    (directory / "alpn.c").write_text(ALPN_SHIM)
    shim = directory / "alpn.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(shim), str(directory / "alpn.c")],
        check=True,
        capture_output=True,
    )
    return shim


@contextlib.contextmanager
def stunnel(
    directory: Path,
    shim: Path,
    target: str,
    server: Pair,
    client_ca: Path | None,
    max_version: str | None = None,
) -> Iterator[Stunnel]:
    """stunnel on 127.0.0.1 terminating TLS (mutual TLS with ``client_ca``) for ``target``."""
    port = free_port()
    log = directory / f"stunnel-{port}.log"
    lines = [
        "foreground = yes",
        "pid =",
        "debug = 5",
        f"output = {log}",
        "[temporal]",
        f"accept = 127.0.0.1:{port}",
        f"connect = {target}",
        f"cert = {server.cert}",
        f"key = {server.key}",
    ]
    if client_ca is not None:
        lines += [f"CAfile = {client_ca}", "verifyChain = yes", "requireCert = yes"]
    if max_version is not None:
        lines.append(f"sslVersionMax = {max_version}")
    conf = directory / f"stunnel-{port}.conf"
    conf.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        ["stunnel4", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LD_PRELOAD": str(shim)},
    )
    try:
        _wait_listening(port, process, log)
        yield Stunnel(f"127.0.0.1:{port}", log)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def tls_proxy(
    temporal_server: DevServer, pki: Pki, alpn_shim: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stunnel]:
    """TLS only: the server shows the test CA's certificate for ``temporal.test``."""
    with stunnel(
        tmp_path_factory.mktemp("tls"), alpn_shim, temporal_server.address, pki.server, None
    ) as proxy:
        yield proxy


@pytest.fixture(scope="module", params=["TLSv1.3", "TLSv1.2"])
def mtls_proxy(
    request: pytest.FixtureRequest,
    temporal_server: DevServer,
    pki: Pki,
    alpn_shim: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stunnel]:
    """Mutual TLS: stunnel also requires a client certificate the test CA signed. Up to TLS 1.3
    (the server checks the client's certificate after the client's handshake is done, so the
    client sees its alert or just a closed connection), and up to TLS 1.2 (the client sees the
    alert in the handshake)."""
    with stunnel(
        tmp_path_factory.mktemp("mtls"),
        alpn_shim,
        temporal_server.address,
        pki.server,
        pki.ca.cert,
        max_version=request.param,
    ) as proxy:
        yield proxy


# --- the recording gRPC proxy (API keys) ----------------------------------------------------


@dataclass
class KeyProxy:
    address: str
    calls: list[tuple[str, str | None]] = field(default_factory=list)
    """(method, the authorization header) of every call, in order."""


_HOP_HEADERS = ("user-agent", "te", "content-type", "grpc-accept-encoding", "grpc-encoding")


@contextlib.asynccontextmanager
async def key_proxy(target: str, server: Pair | None, key: str) -> AsyncIterator[KeyProxy]:
    """A gRPC server on 127.0.0.1 (TLS with ``server``'s certificate; plain without) that
    records each call's metadata, refuses calls without ``authorization: Bearer <key>`` and
    forwards the rest to ``target`` unchanged (bytes in, bytes out)."""
    grpc: Any = pytest.importorskip("grpc")  # untyped: no stubs
    aio: Any = grpc.aio

    upstream = aio.insecure_channel(target)
    port = free_port()
    proxy = KeyProxy(f"127.0.0.1:{port}")

    def handler(method: str) -> Any:
        forward = upstream.unary_unary(method)

        async def call(request: bytes, context: Any) -> bytes:
            metadata = tuple(context.invocation_metadata() or ())
            authorization = next((str(v) for k, v in metadata if k == "authorization"), None)
            proxy.calls.append((method, authorization))
            if authorization != f"Bearer {key}":
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "API key refused")
            passed = [
                (k, v) for k, v in metadata if k not in _HOP_HEADERS and not k.startswith(":")
            ]
            remaining = context.time_remaining()
            try:
                answer: bytes = await forward(request, metadata=passed, timeout=remaining)
            except aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")
            return answer

        return grpc.unary_unary_rpc_method_handler(call)

    class Forward(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, details: Any) -> Any:
            return handler(details.method)

    listener = aio.server(handlers=[Forward()])
    if server is None:
        listener.add_insecure_port(proxy.address)
    else:
        pem = [(server.key.read_bytes(), server.cert.read_bytes())]
        listener.add_secure_port(proxy.address, grpc.ssl_server_credentials(pem))
    await listener.start()
    try:
        yield proxy
    finally:
        await listener.stop(0)
        await upstream.close()


# --- helpers --------------------------------------------------------------------------------


def config(yaml: str, **env: str) -> Config:
    return load_config_text(yaml, env=env)


async def run_graph(orch: Orchestrator) -> Any:
    """A one-node graph run durably through ``orch``'s own client and a worker on it."""
    orch.workflow_task_queue = f"tls-{uuid.uuid4().hex[:8]}"
    graph = orch.create_graph("tls_hello", timeout=timedelta(seconds=30))
    graph.add_node("hello", lambda s: {"text": f"hello {s['name']}"})
    graph.set_entry_point("hello").set_finish_point("hello")
    graph.compile()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(orch, stop=stop))
    try:
        return await asyncio.wait_for(orch.run(graph, {"name": "ada"}, engine="temporal"), 60)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)


async def refusal(yaml: str, **env: str) -> TemporalConnectionError:
    """The error connecting with this config gives."""
    orch = Orchestrator.from_config(config(yaml, **env))
    with pytest.raises(TemporalConnectionError) as caught:
        await asyncio.wait_for(orch.client(), 30)
    return caught.value


# --- TLS ------------------------------------------------------------------------------------


async def test_tls_runs_a_graph_through_stunnel(tls_proxy: Stunnel, pki: Pki) -> None:
    """The CA file from ``${VAR}``, the server name from a BELUGAFLOW__ override: a graph runs
    to completion through stunnel, which accepted the connection."""
    before = tls_proxy.accepted()
    orch = Orchestrator.from_config(
        config(
            f"temporal:\n  address: {tls_proxy.address}\n"
            "  tls:\n    server_ca_file: ${TEMPORAL_CA}\n",
            TEMPORAL_CA=str(pki.ca.cert),
            BELUGAFLOW__TEMPORAL__TLS__SERVER_NAME=SERVER_NAME,
        )
    )
    assert await run_graph(orch) == {"name": "ada", "text": "hello ada"}
    assert tls_proxy.accepted() > before


async def test_mutual_tls_runs_a_graph(mtls_proxy: Stunnel, pki: Pki) -> None:
    """With the client certificate and key, stunnel (verifyChain) lets the client in."""
    before = mtls_proxy.accepted()
    orch = Orchestrator.from_config(
        config(
            f"temporal:\n  address: {mtls_proxy.address}\n  tls:\n"
            f"    server_ca_file: {pki.ca.cert}\n    server_name: {SERVER_NAME}\n"
            f"    client_cert_file: {pki.client.cert}\n    client_key_file: {pki.client.key}\n"
        )
    )
    assert await run_graph(orch) == {"name": "ada", "text": "hello ada"}
    assert mtls_proxy.accepted() > before


def _tls_yaml(address: str, ca: Path, name: str = SERVER_NAME, client: Pair | None = None) -> str:
    text = (
        f"temporal:\n  address: {address}\n  tls:\n    server_ca_file: {ca}\n"
        f"    server_name: {name}\n"
    )
    if client is not None:
        text += f"    client_cert_file: {client.cert}\n    client_key_file: {client.key}\n"
    return text


async def test_wrong_ca(tls_proxy: Stunnel, pki: Pki) -> None:
    error = await refusal(_tls_yaml(tls_proxy.address, pki.other_ca.cert))
    assert error.reason == "server_certificate" and not error.retryable
    assert tls_proxy.address in str(error)
    assert f"temporal.tls.server_ca_file ({pki.other_ca.cert})" in str(error)
    assert "tonic" not in str(error)


async def test_wrong_server_name(tls_proxy: Stunnel, pki: Pki) -> None:
    error = await refusal(_tls_yaml(tls_proxy.address, pki.ca.cert, name="wrong.test"))
    assert error.reason == "server_name"
    assert "not valid for 'wrong.test' (it names 'temporal.test')" in str(error)
    assert "temporal.tls.server_name" in str(error)


async def test_server_name_defaults_to_the_address_host(tls_proxy: Stunnel, pki: Pki) -> None:
    """Without server_name the client checks the address's host, 127.0.0.1, which the
    certificate does not carry: the message says to set temporal.tls.server_name."""
    error = await refusal(
        f"temporal:\n  address: {tls_proxy.address}\n  tls:\n    server_ca_file: {pki.ca.cert}\n"
    )
    assert error.reason == "server_name"
    assert "'127.0.0.1'" in str(error) and "temporal.tls.server_name" in str(error)


async def test_plain_client_at_a_tls_port(tls_proxy: Stunnel) -> None:
    error = await refusal(f"temporal:\n  address: {tls_proxy.address}\n")
    assert error.reason == "tls_required"
    assert "temporal.tls.enabled: true" in str(error) and tls_proxy.address in str(error)


async def test_tls_client_at_a_plain_port(temporal_server: DevServer, pki: Pki) -> None:
    error = await refusal(_tls_yaml(temporal_server.address, pki.ca.cert))
    assert error.reason == "not_tls"
    assert "temporal.tls.enabled: false" in str(error)


# --- mutual TLS -----------------------------------------------------------------------------


async def test_no_client_certificate(mtls_proxy: Stunnel, pki: Pki) -> None:
    error = await refusal(_tls_yaml(mtls_proxy.address, pki.ca.cert))
    assert error.reason == "client_certificate", error.detail
    assert "requires a client certificate" in str(error) and mtls_proxy.address in str(error)
    assert "temporal.tls.client_cert_file" in str(error)


async def test_expired_client_certificate(mtls_proxy: Stunnel, pki: Pki) -> None:
    error = await refusal(_tls_yaml(mtls_proxy.address, pki.ca.cert, client=pki.expired_client))
    assert error.reason == "client_certificate", error.detail
    assert "expired" in str(error) and str(pki.expired_client.cert) in str(error)


async def test_client_certificate_of_another_ca(mtls_proxy: Stunnel, pki: Pki) -> None:
    error = await refusal(_tls_yaml(mtls_proxy.address, pki.ca.cert, client=pki.foreign_client))
    assert error.reason == "client_certificate", error.detail
    assert "not signed by a CA it trusts" in str(error) and mtls_proxy.address in str(error)


async def test_client_key_of_another_certificate(mtls_proxy: Stunnel, pki: Pki) -> None:
    mismatched = Pair(pki.client.cert, pki.foreign_client.key)
    error = await refusal(_tls_yaml(mtls_proxy.address, pki.ca.cert, client=mismatched))
    assert error.reason == "client_certificate"
    assert f"temporal.tls.client_key_file ({pki.foreign_client.key}) is not the private key" in str(
        error
    )


# --- API key --------------------------------------------------------------------------------


async def test_api_key_sent_as_bearer_and_never_shown(temporal_server: DevServer, pki: Pki) -> None:
    """The key from ``${TEMPORAL_API_KEY}`` reaches the proxy on every call as
    ``authorization: Bearer KEY`` (TLS on by itself: the key turns it on); a graph runs; the
    key shows nowhere in the config's repr or JSON, nor in the orchestrator's."""
    async with key_proxy(temporal_server.address, pki.server, KEY) as proxy:
        loaded = config(
            f"temporal:\n  address: {proxy.address}\n  api_key: ${{TEMPORAL_API_KEY}}\n"
            f"  tls:\n    server_ca_file: {pki.ca.cert}\n    server_name: {SERVER_NAME}\n",
            TEMPORAL_API_KEY=KEY,
        )
        for shown in (repr(loaded), loaded.model_dump_json(), str(loaded.temporal)):
            assert KEY not in shown and "**********" in shown
        orch = Orchestrator.from_config(loaded)
        assert KEY not in repr(vars(orch))
        assert await run_graph(orch) == {"name": "ada", "text": "hello ada"}
    methods = {method.rsplit("/", 1)[-1] for method, _ in proxy.calls}
    assert {"GetSystemInfo", "StartWorkflowExecution", "PollWorkflowTaskQueue"} <= methods
    assert {authorization for _, authorization in proxy.calls} == {f"Bearer {KEY}"}


async def test_api_key_over_plain_tcp_when_tls_is_off(temporal_server: DevServer) -> None:
    """``tls.enabled: false`` keeps the key's connection plain (a local sidecar adds TLS)."""
    async with key_proxy(temporal_server.address, None, KEY) as proxy:
        orch = Orchestrator.from_config(
            config(
                f"temporal:\n  address: {proxy.address}\n  api_key: {KEY}\n"
                "  tls: {enabled: false}\n"
            )
        )
        await asyncio.wait_for(orch.client(), 30)
    assert proxy.calls == [
        ("/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo", f"Bearer {KEY}")
    ]


async def test_refused_api_key(temporal_server: DevServer, pki: Pki) -> None:
    async with key_proxy(temporal_server.address, pki.server, KEY) as proxy:
        error = await refusal(
            f"temporal:\n  address: {proxy.address}\n  tls:\n"
            f"    server_ca_file: {pki.ca.cert}\n    server_name: {SERVER_NAME}\n",
            BELUGAFLOW__TEMPORAL__API_KEY="revoked-key",
        )
    assert proxy.calls == [("/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo",
                            "Bearer revoked-key")]  # fmt: skip
    assert error.reason == "api_key"
    assert f"the server at {proxy.address} refused the API key (API key refused)" in str(error)
    assert "temporal.api_key" in str(error) and "revoked-key" not in str(error)


async def test_missing_api_key(temporal_server: DevServer, pki: Pki) -> None:
    async with key_proxy(temporal_server.address, pki.server, KEY) as proxy:
        error = await refusal(_tls_yaml(proxy.address, pki.ca.cert))
    assert error.reason == "credentials"
    assert "requires credentials" in str(error) and "set temporal.api_key" in str(error)


# --- nothing there --------------------------------------------------------------------------


async def test_unreachable_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    error = await refusal(f"temporal:\n  address: {address}\n")
    assert error.reason == "unreachable" and error.retryable
    assert str(error).startswith(f"cannot connect to Temporal at {address}: nothing accepts")
    assert "check temporal.address" in str(error)


async def test_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    from belugaflow.config import ConfigError

    missing = tmp_path / "nope.pem"
    orch = Orchestrator.from_config(
        config(f"temporal:\n  address: 127.0.0.1:1\n  tls:\n    server_ca_file: {missing}\n")
    )
    with pytest.raises(ConfigError, match=r"temporal\.tls\.server_ca_file") as caught:
        await orch.client()
    assert str(missing) in str(caught.value)


def test_client_cert_without_key_is_invalid() -> None:
    from belugaflow.config import ConfigError

    with pytest.raises(ConfigError, match="client_cert_file and client_key_file go together"):
        config("temporal:\n  tls:\n    client_cert_file: a.pem\n")


# --- the CLI --------------------------------------------------------------------------------


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BELUGAFLOW")}
    return subprocess.run(
        [sys.executable, "-m", "belugaflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


def test_workflows_show_through_mutual_tls(mtls_proxy: Stunnel, pki: Pki) -> None:
    """``belugaflow workflows show`` without --app takes the connection from BELUGAFLOW__
    variables: through mutual TLS it reaches the server (which has no such run); without the
    client certificate it says what to set."""
    secured = {
        "BELUGAFLOW__TEMPORAL__ADDRESS": mtls_proxy.address,
        "BELUGAFLOW__TEMPORAL__TLS__SERVER_CA_FILE": str(pki.ca.cert),
        "BELUGAFLOW__TEMPORAL__TLS__SERVER_NAME": SERVER_NAME,
    }
    client = {
        "BELUGAFLOW__TEMPORAL__TLS__CLIENT_CERT_FILE": str(pki.client.cert),
        "BELUGAFLOW__TEMPORAL__TLS__CLIENT_KEY_FILE": str(pki.client.key),
    }
    done = _cli("workflows", "show", "no-such-run", **secured, **client)
    assert done.returncode == 1
    assert f"no workflow 'no-such-run' in namespace 'default' at {mtls_proxy.address}" in (
        done.stderr
    )
    refused = _cli("workflows", "show", "no-such-run", **secured)
    assert refused.returncode == 1
    assert f"cannot connect to Temporal at {mtls_proxy.address}" in refused.stderr
    assert "requires a client certificate" in refused.stderr and "tonic" not in refused.stderr


# --- the REST API ---------------------------------------------------------------------------


def test_rest_api_says_what_to_check(mtls_proxy: Stunnel, pki: Pki, tmp_path: Path) -> None:
    """The REST API's client connects with the orchestrator's TLS settings; refused for want
    of a client certificate, its 503 problem carries the same advice."""
    from tests.server.app import build
    from tests.server.conftest import BackgroundApi
    from tests.server.web import call

    from belugaflow.config import TemporalTLSConfig

    orch = build(tmp_path / "shop.db")
    orch.temporal_address = mtls_proxy.address
    orch.temporal_tls = TemporalTLSConfig(server_ca_file=str(pki.ca.cert), server_name=SERVER_NAME)
    with BackgroundApi(orch) as api:
        reply = call(f"{api.url}/api/v1/workflows")
    assert reply.status == 503 and reply.problem["code"] == "temporal_unavailable"
    detail = reply.problem["detail"]
    assert detail.startswith(f"cannot connect to Temporal at {mtls_proxy.address}: ")
    assert "client certificate" in detail and "temporal.tls.client_cert_file" in detail


async def test_embedded_server_uses_a_tls_server_that_answers(
    tls_proxy: Stunnel, pki: Pki, temporal_server: DevServer
) -> None:
    """``embedded_server`` (the one-process demo's) probes the configured address with the
    configured TLS: the server behind stunnel answers, so none is started."""
    from belugaflow.config import TemporalTLSConfig
    from belugaflow.temporal import embedded_server

    tls = TemporalTLSConfig(server_ca_file=str(pki.ca.cert), server_name=SERVER_NAME)
    async with embedded_server(
        tls_proxy.address, namespace=temporal_server.namespace, tls=tls
    ) as server:
        assert server is None


# --- the done-when: the order example against a secured cluster, by config alone -------------


async def test_the_order_example_runs_on_a_tls_and_key_protected_cluster(
    temporal_server: DevServer, pki: Pki, alpn_shim: Path, tmp_path: Path
) -> None:
    """A cluster that requires mutual TLS (stunnel) and an API key (the recording proxy behind
    it): ``python -m examples.order_processing`` completes its orders there with the
    ``temporal`` section set by ``BELUGAFLOW__`` variables alone, every call carrying the key."""
    async with key_proxy(temporal_server.address, None, KEY) as keys:
        with stunnel(tmp_path, alpn_shim, keys.address, pki.server, pki.ca.cert) as cluster:
            settings = {
                "ADDRESS": cluster.address,
                "NAMESPACE": temporal_server.namespace,
                "API_KEY": KEY,
                "TLS__SERVER_CA_FILE": str(pki.ca.cert),
                "TLS__SERVER_NAME": SERVER_NAME,
                "TLS__CLIENT_CERT_FILE": str(pki.client.cert),
                "TLS__CLIENT_KEY_FILE": str(pki.client.key),
            }
            env = {f"BELUGAFLOW__TEMPORAL__{key}": value for key, value in settings.items()}
            env["BELUGAFLOW__ORCHESTRATION__WORKFLOW__TASK_QUEUE"] = f"tls-{uuid.uuid4().hex}"
            env["BELUGAFLOW_ORDERS_DB"] = str(tmp_path / "orders.db")
            demo = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "examples.order_processing",
                cwd=ROOT, env={**os.environ, **env},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(demo.communicate(), 120)
    text = out.decode(errors="replace")
    assert demo.returncode == 0, text
    assert f"Temporal at {cluster.address}: running server" in text
    assert text.count("completed") >= 2 and "out of stock" in text, text
    methods = {method.rsplit("/", 1)[-1] for method, _ in keys.calls}
    assert {
        "StartWorkflowExecution",
        "RespondActivityTaskCompleted",
        "SignalWorkflowExecution",
    } <= methods
    assert {authorization for _, authorization in keys.calls} == {f"Bearer {KEY}"}
    assert KEY not in text
