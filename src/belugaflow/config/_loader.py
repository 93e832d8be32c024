"""Load ``config.yaml``: parse YAML, substitute ``${VAR}``, apply env overrides, validate.

Errors never show a secret: values of unknown keys, of ``Secret`` fields and of mappings or
lists are not quoted, and a value that came from ``${VAR}`` is shown as its placeholder.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from belugaflow._errors import ConfigError, MissingEnvVarError
from belugaflow.config._models import Config, Secret

__all__ = ["ENV_PREFIX", "load_config", "load_config_text"]

ENV_PREFIX = "BELUGAFLOW__"
"""Prefix of environment variables that override config keys, e.g.
``BELUGAFLOW__ORCHESTRATION__GRAPH__MAX_WORKERS``."""

# "$${" is a literal "${"; "${NAME}" and "${NAME:-default}" are placeholders (the default may
# not contain "}" or "${"); any other "${" is malformed.
_PLACEHOLDER = re.compile(
    r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>(?:(?!\$\{)[^}])*))?\}|\$\{"
)
_MAX_SHOWN = 80

Loc = tuple[str | int, ...]


@dataclass
class _Origins:
    """Where values that did not come literally from the file came from."""

    substituted: dict[Loc, tuple[str, str]] = field(default_factory=dict)
    """Location -> (template, resolved value) for strings with a resolved ``${VAR}``."""
    overrides: dict[Loc, str] = field(default_factory=dict)
    """Location -> name of the environment variable that set it."""


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Config:
    """Load and validate a configuration file.

    Steps: parse the YAML, substitute ``${VAR}`` / ``${VAR:-default}`` placeholders in string
    values, apply ``BELUGAFLOW__SECTION__KEY`` environment overrides, validate. A ``Secret``
    field whose variable is unset stays unresolved and raises ``MissingEnvVarError`` when used.

    Args:
        path: The YAML file; None means defaults plus environment overrides only.
        env: Environment for placeholders and overrides; default ``os.environ``.

    Returns:
        The validated, immutable configuration.

    Raises:
        ConfigError: The file is missing or unreadable, is not valid YAML, or the configuration
            is invalid; the message names the file, the dotted key and every problem.
        MissingEnvVarError: A non-secret value needs an unset variable that has no default.
    """
    if path is None:
        return _build({}, env=os.environ if env is None else env, source=None)
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", file=file) from None
    except IsADirectoryError:
        raise ConfigError("config path is a directory, not a file", file=file) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file is not UTF-8 (byte {exc.start})", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", file=file) from None
    return load_config_text(text, env=env, source=file)


def load_config_text(
    text: str, *, env: Mapping[str, str] | None = None, source: str | None = "<string>"
) -> Config:
    """Load and validate a configuration from YAML text, as :func:`load_config` does.

    Args:
        text: The YAML document.
        env: Environment for placeholders and overrides; default ``os.environ``.
        source: Name used as the file in error messages.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: The text is not valid YAML or not a valid configuration.
    """
    data = _parse_yaml(text, source)
    return _build(data, env=os.environ if env is None else env, source=source)


def _build(data: dict[str, Any], *, env: Mapping[str, str], source: str | None) -> Config:
    origins = _Origins()
    data = _substitute(data, (), env, source, origins)
    _apply_overrides(data, env, source, origins)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    # Raised outside the except block so the pydantic error, which quotes inputs, is not chained.
    raise _to_config_error([_describe(error, origins) for error in errors], source)


# --- YAML -----------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate keys instead of silently keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            identity = (key_node.tag, key_node.value)
            if identity in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(identity)
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str, source: str | None) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # Only the problem text: yaml's own str() quotes the surrounding line, maybe a secret.
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"invalid YAML{where}: {problem}", file=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {type(exc).__name__}", file=source) from None
    if data is None:  # an empty file means all defaults
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of sections ({', '.join(Config.model_fields)}),"
            f" not {_kind(data)}",
            file=source,
        )
    return data


# --- ${VAR} substitution --------------------------------------------------------------------


def _substitute(
    value: Any, loc: Loc, env: Mapping[str, str], source: str | None, origins: _Origins
) -> Any:
    """Return a copy of ``value`` with placeholders in every string substituted."""
    if isinstance(value, dict):
        return {k: _substitute(v, (*loc, k), env, source, origins) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*loc, i), env, source, origins) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return _interpolate(value, loc, env, source, origins)
    return value


def _interpolate(
    template: str, loc: Loc, env: Mapping[str, str], source: str | None, origins: _Origins
) -> str | Secret:
    missing: list[str] = []
    used_env = False

    def replace(match: re.Match[str]) -> str:
        nonlocal used_env
        name, default = match.group("name"), match.group("default")
        if match.group(0) == "$${":
            return "${"
        if name is None:
            raise ConfigError(
                "malformed placeholder: write ${NAME} or ${NAME:-default}, or $${ for a literal ${",
                key=_dotted(loc),
                file=source,
            )
        used_env = True
        value = env.get(name)
        if value is None or (value == "" and default is not None):  # shell ":-" semantics
            if default is None:
                missing.append(name)
                return ""
            return default
        return value

    resolved = _PLACEHOLDER.sub(replace, template)
    if missing:
        # Validation decides: a Secret field keeps it (and fails when used), others fail now.
        return Secret.unresolved(template, var=missing[0], key=_dotted(loc), file=source)
    if used_env:
        origins.substituted[loc] = (template, resolved)
    return resolved


# --- BELUGAFLOW__ overrides -----------------------------------------------------------------


def _apply_overrides(
    data: dict[str, Any], env: Mapping[str, str], source: str | None, origins: _Origins
) -> None:
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        loc = _override_loc(name)
        if loc in origins.overrides:
            raise ConfigError(
                f"environment variables {origins.overrides[loc]} and {name} set the same key",
                key=_dotted(loc),
            )
        origins.overrides[loc] = name
        node = data
        for depth, part in enumerate(loc[:-1], start=1):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"cannot apply environment variable {name}: this key is {_kind(child)}"
                    " in the file, not a mapping",
                    key=_dotted(loc[:depth]),
                    file=source,
                )
            node = child
        node[loc[-1]] = env[name]


def _override_loc(name: str) -> tuple[str, ...]:
    """Map ``BELUGAFLOW__A__B`` to the key ``("a", "b")``, checking it against the models."""
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    model: type[BaseModel] = Config
    for depth, part in enumerate(parts, start=1):
        dotted = ".".join(parts[:depth])
        if part not in model.model_fields:
            raise ConfigError(
                f"environment variable {name} names unknown key {dotted!r}"
                f"{_did_you_mean(part, model)}",
                key=dotted,
            )
        section = _section_type(model, part)
        if section is None and depth < len(parts):
            raise ConfigError(
                f"environment variable {name}: key {dotted!r} is a value, not a section",
                key=dotted,
            )
        if section is not None and depth == len(parts):
            raise ConfigError(
                f"environment variable {name} names the section {dotted!r}; set one of its"
                f" keys instead ({', '.join(section.model_fields)})",
                key=dotted,
            )
        model = section or model
    return tuple(parts)


# --- Errors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    key: str
    text: str
    missing_var: str | None = None


def _describe(error: ErrorDetails, origins: _Origins) -> _Problem:
    loc, value, kind = tuple(error["loc"]), error["input"], error["type"]
    key = _dotted(loc)
    if kind == "extra_forbidden":  # never quote it: a misspelt "api_key" holds a secret
        parent = _model_at(loc[:-1])
        return _Problem(key, f"unknown key{_did_you_mean(loc[-1], parent)}")
    if isinstance(value, Secret) and not value.is_resolved and value.var is not None:
        return _Problem(
            key, f"environment variable {value.var} is not set and has no default", value.var
        )
    ctx = error.get("ctx", {})
    message = str(ctx["error"]) if kind == "value_error" and "error" in ctx else error["msg"]
    if kind == "secret_type":
        return _Problem(key, f"{message} (the value is not shown: it is a secret)")
    shown, origin = _shown(value), ""
    if loc in origins.substituted:
        template, resolved = origins.substituted[loc]
        # Show the placeholder, not what it resolved to: that could be a secret.
        message = message.replace(repr(resolved), repr(template))
        shown, origin = _shown(template), "after ${...} substitution"
    elif loc in origins.overrides:
        origin = f"from {origins.overrides[loc]}"
    # Our own validators (value_error) quote the value already.
    got = "" if kind == "value_error" and shown in message else f"got {shown}"
    detail = " ".join(part for part in (got, origin) if part)
    return _Problem(key, f"{message} ({detail})" if detail else message)


def _to_config_error(problems: list[_Problem], source: str | None) -> ConfigError:
    if len(problems) == 1:
        (problem,) = problems
        if problem.missing_var is not None:
            return MissingEnvVarError(problem.missing_var, key=problem.key, file=source)
        return ConfigError(problem.text, key=problem.key, file=source)
    where = f" in {source}" if source else ""
    lines = "\n".join(f"  - {p.key}: {p.text}" for p in problems)
    error = ConfigError(f"invalid configuration{where} ({len(problems)} problems):\n{lines}")
    error.file = source  # set afterwards: the constructor would append it after the last line
    return error


def _shown(value: object) -> str:
    if isinstance(value, dict | list):  # containers are not quoted: they may hold secrets
        return _kind(value)
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[: _MAX_SHOWN - 3]}..."


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _section_type(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    annotation = model.model_fields[name].annotation
    # An optional section (``memory: MemoryConfig | None``) is a section all the same.
    for candidate in get_args(annotation) if get_origin(annotation) is UnionType else ():
        if candidate is not type(None):
            annotation = candidate
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Config
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return None
        model = _section_type(model, part)
    return model


def _did_you_mean(name: str | int, model: type[BaseModel] | None) -> str:
    if model is None:
        return ""
    close = difflib.get_close_matches(str(name), list(model.model_fields), n=1)
    known = ", ".join(model.model_fields)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {known})"
