"""Configuration: the ``config.yaml`` models and their loader.

Load a file with :func:`load_config`; every section is optional and has defaults. String values
may use ``${VAR}`` and ``${VAR:-default}``; ``BELUGAFLOW__SECTION__KEY`` environment variables
override single keys. See ``docs/config.md``. ``ConfigError`` and ``MissingEnvVarError`` are
re-exported from :mod:`belugaflow._errors` for convenience.
"""

from belugaflow._errors import ConfigError, MissingEnvVarError
from belugaflow._public import show_public_paths as _show_public_paths
from belugaflow.config._loader import load_config, load_config_text
from belugaflow.config._models import (
    ApiKeyConfig,
    AppConfig,
    AuthConfig,
    BreakerConfig,
    ChainConfig,
    Config,
    Duration,
    EmbedderConfig,
    GraphConfig,
    LLMConfig,
    LocalConfig,
    LoggingConfig,
    MemoryConfig,
    MemoryStoreConfig,
    MetricsConfig,
    MonitoringConfig,
    OpenAIConfig,
    OrchestrationConfig,
    OtelConfig,
    PositiveDuration,
    ProviderConfig,
    RateLimitConfig,
    RetentionConfig,
    RuleConfig,
    RulesConfig,
    Secret,
    ServerConfig,
    TemporalConfig,
    TemporalTLSConfig,
    TemporalWorkerConfig,
    TenantConfig,
    WorkflowConfig,
)

__all__ = [
    "ApiKeyConfig",
    "AppConfig",
    "AuthConfig",
    "BreakerConfig",
    "ChainConfig",
    "Config",
    "ConfigError",
    "Duration",
    "EmbedderConfig",
    "GraphConfig",
    "LLMConfig",
    "LocalConfig",
    "LoggingConfig",
    "MemoryConfig",
    "MemoryStoreConfig",
    "MetricsConfig",
    "MissingEnvVarError",
    "MonitoringConfig",
    "OpenAIConfig",
    "OrchestrationConfig",
    "OtelConfig",
    "PositiveDuration",
    "ProviderConfig",
    "RateLimitConfig",
    "RetentionConfig",
    "RuleConfig",
    "RulesConfig",
    "Secret",
    "ServerConfig",
    "TemporalConfig",
    "TemporalTLSConfig",
    "TemporalWorkerConfig",
    "TenantConfig",
    "WorkflowConfig",
    "load_config",
    "load_config_text",
]

_show_public_paths(globals())
