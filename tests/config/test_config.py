"""Tests for belugaflow.config: models, loader, ${VAR} substitution, overrides and errors."""

from __future__ import annotations

import traceback
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from belugaflow._errors import ConfigError, MissingEnvVarError
from belugaflow.config import Config, Secret, load_config, load_config_text

EXAMPLE = (Path(__file__).parents[2] / "examples/order_processing/config.yaml").read_text()
"""The use case's config.yaml, exactly as the issue gives it (the example ships it)."""
LEAK = "sk-very-secret-123"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """Write the example config file and return its path."""
    path = tmp_path / "config.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    return path


def write(tmp_path: Path, text: str) -> Path:
    """Write ``text`` to a config file in ``tmp_path`` and return its path."""
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def load(text: str, **env: str) -> Config:
    """Load YAML text with exactly the given environment."""
    return load_config_text(text, env=env)


def error_of(text: str, **env: str) -> ConfigError:
    """Load YAML text that must fail and return the ConfigError."""
    with pytest.raises(ConfigError) as info:
        load(text, **env)
    return info.value


# --- The example file ------------------------------------------------------------------------


def test_example_loads_without_api_key(example: Path) -> None:
    """The example file loads with OPENAI_API_KEY unset and has the values it spells out."""
    cfg = load_config(example, env={})
    assert cfg.app.name == "workflow-orchestration" and cfg.app.version == "1.0.0"
    assert cfg.orchestration.chain.timeout == timedelta(seconds=300)
    assert cfg.orchestration.chain.max_retries == 3
    assert cfg.orchestration.graph.max_workers == 10
    assert cfg.orchestration.graph.parallel_execution is True
    assert cfg.orchestration.graph.timeout == timedelta(minutes=10)
    assert cfg.orchestration.workflow.task_queue == "beluga-workflows"
    assert cfg.orchestration.workflow.timeout == timedelta(hours=1)
    assert cfg.orchestration.workflow.max_retries == 5
    assert cfg.temporal.address == "localhost:7233" and cfg.temporal.namespace == "default"
    assert cfg.llm.provider == "openai" and cfg.llm.openai.model == "gpt-4o-mini"
    assert cfg.monitoring.otel.endpoint is None  # OTEL_EXPORTER_OTLP_ENDPOINT unset
    traced = load_config(example, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"})
    assert traced.monitoring.otel.endpoint == "localhost:4317"
    assert cfg.monitoring.metrics.enabled is True and cfg.monitoring.metrics.prefix == "workflow"


def test_unset_api_key_fails_when_used(example: Path) -> None:
    """Reading the unresolved api_key raises MissingEnvVarError naming var, key and file."""
    cfg = load_config(example, env={})
    api_key = cfg.llm.openai.api_key
    assert api_key is not None and not api_key.is_resolved
    with pytest.raises(MissingEnvVarError) as info:
        api_key.get_secret_value()
    assert info.value.var == "OPENAI_API_KEY"
    assert info.value.key == "llm.openai.api_key"
    assert info.value.file == str(example)
    assert "OPENAI_API_KEY" in str(info.value) and "llm.openai.api_key" in str(info.value)


def test_api_key_from_environment(example: Path) -> None:
    """With OPENAI_API_KEY set, the api_key secret returns its value."""
    cfg = load_config(example, env={"OPENAI_API_KEY": LEAK})
    assert cfg.llm.openai.api_key is not None
    assert cfg.llm.openai.api_key.get_secret_value() == LEAK


def test_load_config_reads_os_environ(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without env=, placeholders and overrides come from os.environ."""
    monkeypatch.setenv("OPENAI_API_KEY", LEAK)
    monkeypatch.setenv("BELUGAFLOW__TEMPORAL__NAMESPACE", "prod")
    cfg = load_config(example)
    assert cfg.llm.openai.api_key == Secret(LEAK)
    assert cfg.temporal.namespace == "prod"


def test_defaults() -> None:
    """With no file, every value has its documented default."""
    cfg = load_config(None, env={})
    assert cfg == load("")
    assert cfg.orchestration.graph.max_retries == 3
    assert cfg.orchestration.graph.max_steps == 1000
    assert cfg.llm.provider is None and cfg.llm.openai.api_key is None
    assert cfg.monitoring.otel.endpoint is None
    assert cfg.monitoring.otel.service_name == "belugaflow"
    # The example differs from the defaults only where it names an LLM and an OTel endpoint.
    example = load(EXAMPLE)
    assert example.orchestration == cfg.orchestration and example.temporal == cfg.temporal
    assert example.app == cfg.app and example.monitoring.metrics == cfg.monitoring.metrics


def test_max_attempts() -> None:
    """max_attempts is the first attempt plus max_retries retries."""
    cfg = load("orchestration: {chain: {max_retries: 0}, graph: {max_retries: 2}}")
    assert cfg.orchestration.chain.max_attempts == 1
    assert cfg.orchestration.graph.max_attempts == 3
    assert cfg.orchestration.workflow.max_attempts == 6


def test_config_is_frozen() -> None:
    """Assigning to a loaded config raises, so it can be shared safely."""
    cfg = load("")
    with pytest.raises(ValidationError):
        cfg.orchestration.graph.max_workers = 3


def test_from_yaml_string() -> None:
    """Config.from_yaml_string loads text and names the given source in errors."""
    assert Config.from_yaml_string("temporal: {namespace: x}", env={}).temporal.namespace == "x"
    with pytest.raises(ConfigError) as info:
        Config.from_yaml_string("nope: 1", env={}, source="inline.yaml")
    assert info.value.file == "inline.yaml"


def test_json_round_trip() -> None:
    """model_dump_json output (durations as "1h30m") loads back to an equal config."""
    cfg = load("orchestration: {graph: {timeout: 1h30m}, chain: {timeout: 1.5}}")
    assert '"timeout":"1h30m"' in cfg.model_dump_json()
    assert load(cfg.model_dump_json()) == cfg


# --- ${VAR} substitution ---------------------------------------------------------------------


def test_default_used_when_unset() -> None:
    """${VAR:-default} gives the default when VAR is unset or empty, else VAR."""
    text = "temporal: {namespace: '${NS:-dev}'}"
    assert load(text).temporal.namespace == "dev"
    assert load(text, NS="").temporal.namespace == "dev"
    assert load(text, NS="prod").temporal.namespace == "prod"


def test_placeholder_inside_string() -> None:
    """Placeholders are substituted inside larger strings, several per string."""
    text = "temporal: {address: 'http://${HOST:-localhost}:${PORT}'}"
    assert load(text, PORT="8080").temporal.address == "http://localhost:8080"
    assert load(text, HOST="h", PORT="1").temporal.address == "http://h:1"


def test_escape() -> None:
    """$${ is a literal ${ and is not substituted."""
    cfg = load("temporal: {namespace: 'a$${HOME}b', address: '$$x'}", HOME="/root")
    assert cfg.temporal.namespace == "a${HOME}b"
    assert cfg.temporal.address == "$$x"


def test_substituted_value_is_validated() -> None:
    """A substituted string is coerced and validated like a literal one."""
    cfg = load("orchestration: {graph: {max_workers: '${W}', timeout: '${T:-90s}'}}", W="4")
    assert cfg.orchestration.graph.max_workers == 4
    assert cfg.orchestration.graph.timeout == timedelta(seconds=90)


def test_unset_var_in_plain_field_fails_at_load(tmp_path: Path) -> None:
    """An unresolved placeholder outside a Secret field is an error at load time."""
    path = write(tmp_path, "temporal: {address: '${TEMPORAL_HOST}:7233'}")
    with pytest.raises(MissingEnvVarError) as info:
        load_config(path, env={})
    assert info.value.var == "TEMPORAL_HOST"
    assert info.value.key == "temporal.address"
    assert info.value.file == str(path)


def test_malformed_placeholder() -> None:
    """A ${ that is not a valid placeholder is an error naming the key."""
    for text in ["'${HOST'", "'${1X}'", "'${A:-${B}}'", "'${}'"]:
        error = error_of(f"temporal: {{address: {text}}}")
        assert "malformed placeholder" in str(error) and error.key == "temporal.address"


# --- Durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30", timedelta(seconds=30)),
        ("1.5", timedelta(seconds=1.5)),
        ("'30'", timedelta(seconds=30)),
        ("300s", timedelta(seconds=300)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        ("1h 30m", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
        ("2d", timedelta(days=2)),
        ("1.5s", timedelta(seconds=1.5)),
    ],
)
def test_duration_forms(raw: str, expected: timedelta) -> None:
    """Every timeout accepts seconds as numbers and unit strings."""
    cfg = load(f"orchestration: {{chain: {{timeout: {raw}}}}}\nllm: {{local: {{timeout: {raw}}}}}")
    assert cfg.orchestration.chain.timeout == expected
    assert cfg.llm.local.timeout == expected


@pytest.mark.parametrize("raw", ["-5s", "-1", "0", "0s", "5x", "1h1h", "true"])
def test_bad_timeout(raw: str) -> None:
    """Negative, zero, malformed and bool timeouts are rejected, naming key and value."""
    error = error_of(f"orchestration: {{graph: {{timeout: {raw}}}}}")
    assert error.key == "orchestration.graph.timeout"
    assert raw.lower() in str(error).lower()


def test_negative_duration_message() -> None:
    """A negative duration says that it must not be negative."""
    assert "must not be negative" in str(error_of("orchestration: {chain: {timeout: -5s}}"))


# --- Environment overrides -------------------------------------------------------------------


def test_override_max_workers(example: Path) -> None:
    """BELUGAFLOW__ORCHESTRATION__GRAPH__MAX_WORKERS=20 overrides the file's value."""
    env = {"BELUGAFLOW__ORCHESTRATION__GRAPH__MAX_WORKERS": "20"}
    assert load_config(example, env=env).orchestration.graph.max_workers == 20
    assert load_config(None, env=env).orchestration.graph.max_workers == 20


def test_override_is_case_insensitive_and_coerced() -> None:
    """Override names match case-insensitively and values are coerced to the field type."""
    cfg = load(
        "",
        belugaflow__Orchestration__graph__parallel_execution="false",
        BELUGAFLOW__ORCHESTRATION__CHAIN__TIMEOUT="1h30m",
        BELUGAFLOW__LLM__OPENAI__API_KEY=LEAK,
    )
    assert cfg.orchestration.graph.parallel_execution is False
    assert cfg.orchestration.chain.timeout == timedelta(minutes=90)
    assert cfg.llm.openai.api_key == Secret(LEAK)


def test_override_into_null_section() -> None:
    """An override applies even when the file leaves its section empty."""
    cfg = load("llm:\n  openai:\n", BELUGAFLOW__LLM__OPENAI__MODEL="gpt-4o")
    assert cfg.llm.openai.model == "gpt-4o"


def test_override_unknown_key() -> None:
    """An override naming an unknown key is an error naming the variable and the key."""
    error = error_of("", BELUGAFLOW__ORCHESTRATION__GRAPH__MAX_WORKER="1")
    assert "BELUGAFLOW__ORCHESTRATION__GRAPH__MAX_WORKER" in str(error)
    assert error.key == "orchestration.graph.max_worker"
    assert "did you mean 'max_workers'" in str(error)


@pytest.mark.parametrize(
    "name",
    ["BELUGAFLOW__ORCHESTRATION__GRAPH", "BELUGAFLOW__TEMPORAL__ADDRESS__X", "BELUGAFLOW__"],
)
def test_override_not_a_value(name: str) -> None:
    """An override naming a section, going below a value or naming nothing is an error."""
    assert name in str(error_of("", **{name: "1"}))


def test_override_bad_value_names_variable() -> None:
    """A bad override value is reported with the key, the value and the variable."""
    error = error_of("", BELUGAFLOW__ORCHESTRATION__GRAPH__MAX_WORKERS="ten")
    assert error.key == "orchestration.graph.max_workers"
    assert "'ten'" in str(error)
    assert "BELUGAFLOW__ORCHESTRATION__GRAPH__MAX_WORKERS" in str(error)


def test_two_overrides_for_one_key() -> None:
    """Two variables that differ only in case and set one key are an error."""
    error = error_of("", BELUGAFLOW__TEMPORAL__NAMESPACE="a", belugaflow__temporal__namespace="b")
    assert error.key == "temporal.namespace"


# --- Errors ----------------------------------------------------------------------------------


def test_unknown_key(tmp_path: Path) -> None:
    """An unknown key is an error naming the dotted key and the file."""
    path = write(tmp_path, "orchestration:\n  graph:\n    max_worker: 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == "orchestration.graph.max_worker"
    assert info.value.file == str(path)
    assert "orchestration.graph.max_worker" in str(info.value) and str(path) in str(info.value)
    assert "did you mean 'max_workers'" in str(info.value)


def test_wrong_type(tmp_path: Path) -> None:
    """A wrongly typed value is an error naming the key, the value and the file."""
    path = write(tmp_path, "orchestration: {graph: {max_workers: lots}}")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert "orchestration.graph.max_workers" in message
    assert "'lots'" in message and str(path) in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("orchestration: {graph: {max_workers: 0}}", "orchestration.graph.max_workers"),
        ("orchestration: {graph: {max_workers: true}}", "orchestration.graph.max_workers"),
        ("orchestration: {chain: {max_retries: -1}}", "orchestration.chain.max_retries"),
        ("orchestration: {graph: {max_steps: 1.5}}", "orchestration.graph.max_steps"),
        ("llm: {provider: gpt}", "llm.provider"),
        ("monitoring: {metrics: {prefix: my-app}}", "monitoring.metrics.prefix"),
        ("monitoring: {metrics: {prefix: 1abc}}", "monitoring.metrics.prefix"),
        ("app: {version: 1.0}", "app.version"),
        ("temporal: {address: ''}", "temporal.address"),
        ("orchestration: 5", "orchestration"),
    ],
)
def test_invalid_values(text: str, key: str) -> None:
    """Out-of-range and wrongly typed values are errors naming their key."""
    assert error_of(text).key == key


def test_problems_collected() -> None:
    """All problems are reported in one error, one line each."""
    error = error_of("orchestration: {graph: {max_workers: x, timeout: 5x}}\nfoo: 1")
    lines = str(error).splitlines()
    assert "3 problems" in lines[0]
    assert any(line.strip().startswith("- orchestration.graph.max_workers:") for line in lines)
    assert any(line.strip().startswith("- orchestration.graph.timeout:") for line in lines)
    assert any(line.strip().startswith("- foo: unknown key") for line in lines)
    assert error.file == "<string>"


def test_yaml_syntax_error(tmp_path: Path) -> None:
    """A YAML syntax error names the file and the line."""
    path = write(tmp_path, "app:\n  name: x\n  version: [1\ntemporal: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value) and "line 4" in str(info.value)


def test_duplicate_key() -> None:
    """A key given twice in one mapping is an error naming the key and the line."""
    error = error_of("temporal:\n  namespace: a\n  namespace: b\n")
    assert "duplicate key 'namespace'" in str(error) and "line 3" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is an error naming the path."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.file == str(path) and str(path) in str(info.value)


def test_top_level_not_mapping() -> None:
    """A top level that is not a mapping is an error; an empty document means defaults."""
    assert "must be a mapping" in str(error_of("- a\n- b\n"))
    assert "must be a mapping" in str(error_of("just text"))
    assert load("# nothing\n") == load_config(None, env={})


# --- Secrets ---------------------------------------------------------------------------------


def test_secret_masking() -> None:
    """A Secret shows only asterisks in repr and str, and compares by value."""
    secret = Secret(LEAK)
    assert repr(secret) == str(secret) == "Secret('**********')"
    assert secret == Secret(LEAK) and secret != Secret("other")
    assert hash(secret) == hash(Secret(LEAK))
    assert secret.get_secret_value() == LEAK


def test_secret_absent_from_config_output() -> None:
    """A secret value never appears in repr, str, model_dump_json or the JSON schema."""
    cfg = load("llm: {anthropic: {api_key: '${KEY}'}}", KEY=LEAK)
    for text in (repr(cfg), str(cfg), cfg.model_dump_json(), repr(cfg.model_dump())):
        assert LEAK not in text
    assert '"api_key":"**********"' in cfg.model_dump_json()


@pytest.mark.parametrize(
    ("text", "env"),
    [
        # A misspelt key holding a literal secret.
        (f"llm: {{openai: {{apikey: {LEAK}}}}}", {}),
        # A secret field of the wrong type.
        (f"llm: {{openai: {{api_key: [{LEAK}]}}}}", {}),
        ("llm: {openai: {api_key: 123456}}", {}),
        # A whole section of the wrong type holding a secret.
        (f"llm: {{openai: [{LEAK}]}}", {}),
        # A secret from the environment landing in a field where it fails validation.
        ("orchestration: {graph: {timeout: '${KEY}', max_workers: '${KEY}'}}", {"KEY": LEAK}),
        ("orchestration: {graph: {timeout: '${KEY}'}}", {"KEY": LEAK}),
        # Other problems next to a valid secret.
        (f"llm: {{openai: {{api_key: {LEAK}}}, provider: x}}", {}),
    ],
)
def test_secret_absent_from_errors(text: str, env: dict[str, str]) -> None:
    """Errors, including their chained causes and traceback, never contain a secret value."""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, env=env)
    rendered = "".join(traceback.format_exception(info.value))
    assert LEAK not in rendered and "123456" not in rendered


def test_unresolved_secret_error_has_no_cause(example: Path) -> None:
    """The MissingEnvVarError from an unresolved secret shows neither secret nor template."""
    cfg = load_config(example, env={})
    assert cfg.llm.openai.api_key is not None
    with pytest.raises(MissingEnvVarError) as info:
        cfg.llm.openai.api_key.get_secret_value()
    assert info.value.__cause__ is None and info.value.__context__ is None
