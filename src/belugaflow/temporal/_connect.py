"""Connecting to a Temporal frontend: the ``temporal`` config section turned into
``Client.connect`` arguments (:func:`connect_options`), and the SDK's connection failures turned
into a :class:`TemporalConnectionError` that names the address and what to check
(:func:`connection_error`). Everything in belugaflow that connects goes through
:func:`connect`.

The SDK (1.35) raises a bare ``RuntimeError("Failed client connect: ...")`` for every failure
below, its text the Rust transport's (tonic, rustls) debug output; the table in
:func:`connection_error` was made by provoking each case against the dev server behind stunnel
(``tests/temporal/test_tls.py`` provokes them again).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from belugaflow._errors import BelugaflowError, ConfigError
from belugaflow.config._models import Secret, TemporalTLSConfig

if TYPE_CHECKING:
    from temporalio.client import Client

__all__ = ["TemporalConnectionError", "connect", "connect_options", "connection_error"]


class TemporalConnectionError(BelugaflowError):
    """The Temporal frontend could not be reached or refused this client.

    The message names the address, what went wrong (refused, unresolvable, the server's
    certificate, this client's certificate, the API key) and the config key to check.

    Attributes:
        address: The ``host:port`` connected to.
        reason: One word for what went wrong: ``unreachable``, ``unresolvable``,
            ``server_certificate``, ``server_name``, ``not_tls``, ``tls_required``,
            ``client_certificate``, ``credentials``, ``api_key`` or ``other``.
        detail: The SDK's own message, for a bug report.
    """

    code = "temporal_unavailable"

    def __init__(self, message: str, *, address: str, reason: str, detail: str) -> None:
        super().__init__(message)
        self.retryable = reason in _RETRYABLE
        self.address = address
        self.reason = reason
        self.detail = detail


_RETRYABLE = {"unreachable", "unresolvable", "other"}


def connect_options(
    tls: TemporalTLSConfig | None = None, api_key: Secret | str | None = None
) -> dict[str, Any]:
    """The ``tls`` and ``api_key`` keyword arguments of ``Client.connect`` for these settings.

    TLS is on when ``tls.enabled`` says so, else when an API key or any TLS setting is given;
    with TLS on and no CA file, the system's trusted roots verify the server.

    Raises:
        ConfigError: A certificate or key file cannot be read or holds no PEM block.
        MissingEnvVarError: The API key came from a ``${VAR}`` that is unset.
    """
    from temporalio.service import TLSConfig

    settings = tls or TemporalTLSConfig()
    key = api_key.get_secret_value() if isinstance(api_key, Secret) else api_key
    enabled = settings.enabled
    if enabled is None:
        enabled = settings.active or key is not None
    options: dict[str, Any] = {"api_key": key or None, "tls": False}
    if enabled:
        options["tls"] = TLSConfig(
            server_root_ca_cert=_pem(settings.server_ca_file, "server_ca_file"),
            domain=settings.server_name,
            client_cert=_pem(settings.client_cert_file, "client_cert_file"),
            client_private_key=_pem(settings.client_key_file, "client_key_file"),
        )
    return options


def _pem(path: str | None, name: str) -> bytes | None:
    if path is None:
        return None
    key = f"temporal.tls.{name}"
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read {path!r}: {error.strerror or error}", key=key) from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{path!r} is not a PEM file (no -----BEGIN line)", key=key)
    return data


async def connect(
    address: str,
    *,
    namespace: str,
    tls: TemporalTLSConfig | None = None,
    api_key: Secret | str | None = None,
    **options: Any,
) -> Client:
    """``Client.connect`` with these connection settings; other ``options`` pass through.

    Raises:
        TemporalConnectionError: The server cannot be reached or refused the connection.
        ConfigError: A certificate or key file cannot be read.
    """
    from temporalio.client import Client

    arguments = connect_options(tls, api_key)
    try:
        return await Client.connect(address, namespace=namespace, **arguments, **options)
    except RuntimeError as error:
        raise connection_error(
            address, error, tls=tls, api_key=arguments["api_key"] is not None
        ) from error


# What the transport says → (reason, what to tell). Checked in order; the first match wins.
_CASES: tuple[tuple[str, str], ...] = (
    (r"dns error", "unresolvable"),
    (r"tcp connect error|Connection refused|ConnectionRefused", "unreachable"),
    (r"InvalidCertificate\(NotValidForName", "server_name"),
    (r"InvalidCertificate\(Expired", "server_expired"),
    (r"InvalidCertificate\(", "server_certificate"),
    (r"InvalidContentType|H2NotNegotiated|CorruptMessage|InvalidMessage", "not_tls"),
    (r"InconsistentKeys|KeyMismatch", "key_mismatch"),
    (r"NoCertificatesPresented|no certificates? (found|present)", "no_client_certificate"),
    # The server's TLS alert: "received fatal alert: X" after a TLS 1.3 handshake, during a
    # TLS 1.2 one "AlertReceived(X)".
    (r"(fatal alert: |AlertReceived\()CertificateRequired", "certificate_required"),
    (r"(fatal alert: |AlertReceived\()CertificateExpired", "client_expired"),
    (
        r"(fatal alert: |AlertReceived\()"
        r"(UnknownCA|BadCertificate|CertificateUnknown|DecryptError)",
        "client_rejected",
    ),
    (r"(fatal alert: |AlertReceived\()HandshakeFailure", "handshake_failure"),
    (r"code: Unauthenticated|code: PermissionDenied", "credentials"),
    (r"ConnectionReset|BrokenPipe|UnexpectedEof|connection closed", "closed"),
)


def connection_error(
    address: str,
    error: BaseException,
    *,
    tls: TemporalTLSConfig | None = None,
    api_key: bool = False,
) -> TemporalConnectionError:
    """The :class:`TemporalConnectionError` for the SDK's ``error`` connecting to ``address``,
    with what to check given the connection's settings (``api_key``: whether one was sent)."""
    detail = str(error)
    settings = tls or TemporalTLSConfig()
    tls_on = settings.enabled if settings.enabled is not None else (settings.active or api_key)
    case = next((name for pattern, name in _CASES if re.search(pattern, detail)), "other")
    ca = (
        f"temporal.tls.server_ca_file ({settings.server_ca_file})"
        if settings.server_ca_file
        else "temporal.tls.server_ca_file (unset: the system's trusted roots are used)"
    )
    cert = f"temporal.tls.client_cert_file ({settings.client_cert_file})"
    texts: Mapping[str, tuple[str, str]] = {
        "unresolvable": (
            "unresolvable",
            f"the host of {address} does not resolve: check temporal.address",
        ),
        "unreachable": (
            "unreachable",
            f"nothing accepts connections at {address}: check temporal.address, that the"
            " server runs, and that no firewall is in the way",
        ),
        "server_name": (
            "server_name",
            f"the certificate of the server at {address} is not valid for"
            f" {_expected(detail, address)}{_presented(detail)}: set temporal.tls.server_name"
            " to a name the certificate carries, or connect by such a name",
        ),
        "server_expired": (
            "server_certificate",
            f"the certificate of the server at {address} has expired (or is not valid yet):"
            " renew it on the server, and check this machine's clock",
        ),
        "server_certificate": (
            "server_certificate",
            f"the certificate of the server at {address} is not signed by a CA this client"
            f" trusts: check {ca}",
        ),
        "not_tls": (
            "not_tls",
            f"{address} does not answer TLS with HTTP/2 (gRPC): if it is a plain server, set"
            " temporal.tls.enabled: false; else check temporal.address (the TLS port)",
        ),
        "key_mismatch": (
            "client_certificate",
            f"temporal.tls.client_key_file ({settings.client_key_file}) is not the private key"
            f" of {cert}",
        ),
        "no_client_certificate": (
            "client_certificate",
            f"{cert} holds no certificate this client can use",
        ),
        "certificate_required": (
            "client_certificate",
            f"the server at {address} requires a client certificate (mutual TLS): set"
            " temporal.tls.client_cert_file and temporal.tls.client_key_file",
        ),
        "client_expired": (
            "client_certificate",
            f"the server at {address} refused this client's certificate as expired: renew {cert}",
        ),
        "client_rejected": (
            "client_certificate",
            f"the server at {address} refused this client's certificate (not signed by a CA"
            f" it trusts for clients): check {cert}",
        ),
        "handshake_failure": (
            "client_certificate",
            f"the server at {address} ended the TLS handshake (handshake_failure): it probably"
            " requires a client certificate (mutual TLS): set temporal.tls.client_cert_file and"
            " temporal.tls.client_key_file (else it shares no TLS version or cipher with this"
            " client)"
            if settings.client_cert_file is None
            else f"the server at {address} ended the TLS handshake (handshake_failure): check"
            f" that it accepts {cert}, and that it shares a TLS version and cipher with this"
            " client",
        ),
        "credentials": (
            "api_key" if api_key else "credentials",
            f"the server at {address} refused the API key{_server_message(detail)}: check"
            " temporal.api_key (expired, revoked, or not allowed in this namespace)"
            if api_key
            else f"the server at {address} requires credentials{_server_message(detail)}:"
            " set temporal.api_key, or a client certificate (temporal.tls.client_cert_file)",
        ),
        "closed": (
            "client_certificate" if tls_on else "tls_required",
            _closed_after_handshake(address, settings, cert)
            if tls_on
            else f"{address} closed the connection at once: if the server requires TLS, set"
            " temporal.tls.enabled: true (and temporal.tls.server_ca_file for a private CA)",
        ),
    }
    reason, text = texts.get(
        case, ("other", f"cannot connect to Temporal at {address}: {_short(detail)}")
    )
    return TemporalConnectionError(
        f"cannot connect to Temporal at {address}: {text}"
        if not text.startswith("cannot connect")
        else text,
        address=address,
        reason=reason,
        detail=detail,
    )


def _closed_after_handshake(address: str, settings: TemporalTLSConfig, cert: str) -> str:
    # With TLS 1.3 the server checks the client's certificate after the client has finished
    # its handshake; its alert (CertificateRequired, CertificateExpired, UnknownCA) reaches the
    # client only sometimes, before the connection closes. A TLS connection closed on the first
    # call is then, nearly always, a client certificate refused or missing.
    if settings.client_cert_file is None:
        return (
            f"the server at {address} closed the TLS connection on the first call: it probably"
            " requires a client certificate (mutual TLS): set temporal.tls.client_cert_file and"
            " temporal.tls.client_key_file"
        )
    return (
        f"the server at {address} closed the TLS connection on the first call: it probably"
        f" refused this client's certificate (expired, or not signed by a CA it trusts for"
        f" clients): check {cert}"
    )


def _expected(detail: str, address: str) -> str:
    match = re.search(r'expected: DnsName\("([^"]+)"\)', detail)
    if match:
        return repr(match.group(1))
    host = address.rpartition(":")[0] or address
    return repr(host)


def _presented(detail: str) -> str:
    names = re.findall(r'DnsName\(\\?"([^"\\]+)\\?"\)', detail.partition("presented:")[2])
    return f" (it names {', '.join(map(repr, names))})" if names else ""


def _server_message(detail: str) -> str:
    match = re.search(r'message: "([^"]*)"', detail)
    return f" ({match.group(1)})" if match and match.group(1) else ""


def _short(detail: str) -> str:
    return detail.removeprefix("Failed client connect: ")
