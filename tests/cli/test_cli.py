"""Tests for the ``belugaflow`` command line (belugaflow.cli)."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

import belugaflow
from belugaflow import GraphSpec
from belugaflow.cli import app

USE_CASE_CONFIG = (Path(__file__).parents[2] / "examples/order_processing/config.yaml").read_text()
"""The use case's config.yaml, exactly as the issue gives it (the example ships it)."""

FLOWS = """\
from types import SimpleNamespace

from belugaflow import Graph


def validate(state):
    return {"valid": True}


def fulfil(state):
    return {"done": True}


def make_graph():
    graph = Graph("orders")
    graph.add_node("validate", validate).add_node("fulfil", fulfil)
    graph.add_edge("validate", "fulfil")
    return graph.set_entry_point("validate").set_finish_point("fulfil")


graph = make_graph()
compiled = make_graph().compile()
spec = compiled.spec
factory = SimpleNamespace(graph=make_graph())

broken = Graph("broken").add_node("a", validate).add_edge("a", "nowhere")
broken.set_entry_point("a").set_finish_point("a")
number = 42


def needs_input(name):
    return make_graph()


def explodes():
    raise RuntimeError("no database")
"""

CANARY = "sk-canary-5f3a9e"

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory holding ``flows.py`` and the package ``pkg/flows.py``.

    Afterwards sys.path is restored and the modules imported from it are forgotten, so the
    next test can use the same module names.
    """
    (tmp_path / "flows.py").write_text(FLOWS, encoding="utf-8")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "pkg" / "flows.py").write_text(FLOWS, encoding="utf-8")
    (tmp_path / "raises_on_import.py").write_text("import no_such_dependency\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path
    for name, mod in list(sys.modules.items()):
        if Path(getattr(mod, "__file__", None) or "/").is_relative_to(tmp_path):
            del sys.modules[name]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset OPENAI_API_KEY and every BELUGAFLOW__ override the developer may have set."""
    for name in list(os.environ):
        if name == "OPENAI_API_KEY" or name.upper().startswith("BELUGAFLOW__"):
            monkeypatch.delenv(name)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The use-case config.yaml, written to a temporary directory."""
    path = tmp_path / "config.yaml"
    path.write_text(USE_CASE_CONFIG, encoding="utf-8")
    return path


def write(tmp_path: Path, text: str) -> Path:
    """Write ``text`` to ``tmp_path/config.yaml`` and return the path."""
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def summary(lines: list[str]) -> dict[str, str]:
    """Parse the indented ``key  value`` lines of ``config check`` into a dict."""
    pairs = (re.fullmatch(r"  (\S.*?)  +(\S.*)", line) for line in lines)
    return {match[1]: match[2] for match in pairs if match is not None}


def invoke(*args: str, **env: str) -> Any:
    """Run the CLI in process with extra environment variables; return typer's Result."""
    return runner.invoke(app, list(args), env=env)


def console_script() -> str:
    """Path of the installed ``belugaflow`` console script."""
    found = shutil.which("belugaflow") or str(Path(sys.executable).parent / "belugaflow")
    assert Path(found).exists(), "the belugaflow console script is not installed"
    return found


def run_script(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real console script as a subprocess."""
    return subprocess.run(
        [console_script(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def command_paths() -> list[list[str]]:
    """Every command and group of the app, as argument lists (the root is ``[]``)."""
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(get_command(app), [])
    return paths


# --- The console script ------------------------------------------------------------------------


def test_console_script_prints_version(tmp_path: Path) -> None:
    """The installed ``belugaflow --version`` prints the package version and exits 0."""
    result = run_script("--version", cwd=tmp_path, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"belugaflow {belugaflow.__version__}"


def test_console_script_checks_the_use_case_config(config_file: Path) -> None:
    """The installed script accepts the use-case config while its API key variable is unset."""
    result = run_script(
        "config", "check", "config.yaml", cwd=config_file.parent, env=dict(os.environ)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config.yaml: ok\n")
    assert "waiting for OPENAI_API_KEY" in result.stdout


def test_console_script_imports_graphs_from_the_working_directory(project: Path) -> None:
    """The installed script finds ``flows.py`` in its working directory, like uvicorn."""
    result = run_script("graph", "show", "flows:graph", cwd=project, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("flowchart TD\n")


def test_console_script_reports_a_bad_import_path_with_exit_code_1(project: Path) -> None:
    """The installed script exits 1 with one error line naming a missing module."""
    result = run_script("graph", "show", "missing_mod:graph", cwd=project, env=dict(os.environ))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: missing_mod:graph: no module named 'missing_mod'"
        " (looked in the current directory and sys.path)"
    ]


# --- Global behaviour ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(["belugaflow", *p]))
def test_every_command_has_help(path: list[str]) -> None:
    """``--help`` works on the root, every group and every command."""
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: belugaflow" in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    """A mistyped command exits 2 and suggests the right one."""
    result = invoke("config", "chek", "config.yaml")
    assert result.exit_code == 2
    assert "check" in result.stderr


# --- config check --------------------------------------------------------------------------------


def test_config_check_accepts_the_use_case_config_without_the_api_key(config_file: Path) -> None:
    """The summary names app, queue, workers and provider, and the variable the key waits for."""
    result = invoke("config", "check", str(config_file))
    assert result.exit_code == 0, result.output
    first, *rest = result.stdout.splitlines()
    assert first == f"{config_file}: ok"
    assert summary(rest) == {
        "app": "workflow-orchestration 1.0.0",
        "task queue": "beluga-workflows",
        "graph max_workers": "10",
        "llm provider": "openai",
        "temporal.api_key": "not configured",
        "llm.openai.api_key": "waiting for OPENAI_API_KEY",
        "llm.anthropic.api_key": "not configured",
    }


def test_config_check_applies_environment_overrides(config_file: Path) -> None:
    """``BELUGAFLOW__...`` variables show up in the summary, as the library would load them."""
    result = invoke(
        "config", "check", str(config_file), BELUGAFLOW__ORCHESTRATION__GRAPH__MAX_WORKERS="3"
    )
    assert result.exit_code == 0, result.output
    assert summary(result.stdout.splitlines())["graph max_workers"] == "3"


@pytest.mark.parametrize("show", [False, True], ids=["summary", "show"])
def test_config_check_never_prints_a_secret_value(config_file: Path, show: bool) -> None:
    """A set secret is reported as ``set`` and its value appears in no output."""
    args = ["config", "check", str(config_file), *(["--show"] if show else [])]
    result = invoke(*args, OPENAI_API_KEY=CANARY, BELUGAFLOW__LLM__ANTHROPIC__API_KEY=CANARY)
    assert result.exit_code == 0, result.output
    assert CANARY not in result.output
    if not show:
        lines = summary(result.stdout.splitlines())
        assert lines["llm.openai.api_key"] == lines["llm.anthropic.api_key"] == "set"


def test_config_check_show_prints_the_effective_config_as_yaml(config_file: Path) -> None:
    """``--show`` writes pure YAML (overrides applied, secrets masked) and the verdict to stderr."""
    result = invoke(
        "config",
        "check",
        str(config_file),
        "--show",
        OPENAI_API_KEY=CANARY,
        BELUGAFLOW__ORCHESTRATION__CHAIN__TIMEOUT="90s",
    )
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.stdout)
    openai = data["llm"]["openai"]
    assert (openai["api_key"], openai["model"], openai["timeout"]) == (
        "**********",
        "gpt-4o-mini",
        "8s",
    )
    assert data["orchestration"]["chain"]["timeout"] == "1m30s"
    assert data["app"] == {"name": "workflow-orchestration", "version": "1.0.0"}
    assert result.stderr == f"{config_file}: ok\n"


def test_config_check_show_masks_an_unresolved_secret(config_file: Path) -> None:
    """An unset secret's variable does not make ``--show`` fail; the key is still masked."""
    result = invoke("config", "check", str(config_file), "--show")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["llm"]["openai"]["api_key"] == "**********"


def test_config_check_rejects_an_unknown_key(tmp_path: Path) -> None:
    """An invalid config exits 1 with the library's message naming the key and the file."""
    path = write(tmp_path, "orchestration:\n  graph: {max_worker: 3}\n")
    result = invoke("config", "check", str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "orchestration.graph.max_worker" in result.stderr
    assert str(path) in result.stderr
    assert "did you mean 'max_workers'" in result.stderr


def test_config_check_reports_every_problem(tmp_path: Path) -> None:
    """Several bad values are all listed, each with its key."""
    path = write(tmp_path, "orchestration:\n  graph: {max_workers: 0, timeout: -5s}\n")
    result = invoke("config", "check", str(path))
    assert result.exit_code == 1
    assert "orchestration.graph.max_workers" in result.stderr
    assert "orchestration.graph.timeout" in result.stderr


def test_config_check_rejects_an_unset_variable_outside_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-secret ``${VAR}`` without default fails when VAR is unset, naming VAR and the key."""
    monkeypatch.delenv("TEMPORAL_HOST", raising=False)
    path = write(tmp_path, "temporal: {address: '${TEMPORAL_HOST}:7233'}\n")
    result = invoke("config", "check", str(path))
    assert result.exit_code == 1
    assert "TEMPORAL_HOST" in result.stderr and "temporal.address" in result.stderr


def test_config_check_rejects_a_bad_override(config_file: Path) -> None:
    """A ``BELUGAFLOW__`` variable naming an unknown key exits 1 and names the variable."""
    result = invoke("config", "check", str(config_file), BELUGAFLOW__APP__NAEM="x")
    assert result.exit_code == 1
    assert "BELUGAFLOW__APP__NAEM" in result.stderr


def test_config_check_reports_a_missing_file(tmp_path: Path) -> None:
    """A missing file exits 1 with a message naming it, not a traceback."""
    missing = tmp_path / "nope.yaml"
    result = invoke("config", "check", str(missing))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: config file not found (file {missing})"


def test_config_check_needs_a_file_argument() -> None:
    """Calling ``config check`` without FILE is a usage error."""
    assert invoke("config", "check").exit_code == 2


# --- graph show ----------------------------------------------------------------------------------


def flows_module() -> ModuleType:
    """The ``flows`` module the CLI imported (the CLI put the working directory on sys.path)."""
    return importlib.import_module("flows")


@pytest.mark.parametrize(
    "target",
    ["flows:graph", "flows:compiled", "flows:spec", "flows:make_graph", "pkg.flows:factory.graph"],
)
def test_graph_show_prints_mermaid(project: Path, target: str) -> None:
    """Every accepted kind of object (builder, compiled, spec, factory, dotted path) draws."""
    result = invoke("graph", "show", target)
    assert result.exit_code == 0, result.output
    assert result.stdout == flows_module().compiled.to_mermaid()
    assert result.stdout.startswith("flowchart TD\n")
    assert '["validate"]' in result.stdout and '["fulfil"]' in result.stdout


def test_graph_show_prints_the_spec_as_sorted_indented_json(project: Path) -> None:
    """``--format json`` prints the spec pretty and sorted, and it reads back as the same spec."""
    result = invoke("graph", "show", "flows:graph", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert result.stdout == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert GraphSpec.from_json(result.stdout) == flows_module().spec
    assert data["name"] == "orders"
    assert [node["name"] for node in data["nodes"]] == ["validate", "fulfil"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("missing_mod:graph", "no module named 'missing_mod'"),
        ("pkg.missing:graph", "no module named 'pkg.missing'"),
        ("raises_on_import:graph", "ModuleNotFoundError: No module named 'no_such_dependency'"),
        ("flows:nothing", "'flows' has no attribute 'nothing'"),
        ("pkg.flows:factory.nothing", "'pkg.flows.factory' has no attribute 'nothing'"),
        ("flows:number", "expected a Graph, CompiledGraph or GraphSpec"),
        ("flows:needs_input", "the callable needs arguments (name)"),
        ("flows:explodes", "calling it failed: RuntimeError: no database"),
        ("flows:broken", "graph 'broken' is invalid"),
    ],
)
def test_graph_show_reports_a_bad_target(project: Path, target: str, reason: str) -> None:
    """Import, lookup, type and compile failures exit 1 with an error naming the import path."""
    result = invoke("graph", "show", target)
    assert result.exit_code == 1
    assert result.stdout == ""
    first_line = result.stderr.splitlines()[0]
    assert first_line.startswith(f"error: {target}: ")
    assert reason in first_line


def test_graph_show_lists_every_spec_problem(project: Path) -> None:
    """A graph that does not compile shows the library's list of problems under the headline."""
    result = invoke("graph", "show", "flows:broken")
    assert result.exit_code == 1
    assert "'nowhere'" in result.stderr


@pytest.mark.parametrize("target", ["flows", "flows:", ":graph", "flows:graph.", "flows:1x"])
def test_graph_show_rejects_a_malformed_import_path(project: Path, target: str) -> None:
    """A target that is not ``MODULE:OBJECT`` is a usage error (exit 2)."""
    result = invoke("graph", "show", target)
    assert result.exit_code == 2
    assert "MODULE:OBJECT" in result.stderr


def test_graph_show_rejects_an_unknown_format(project: Path) -> None:
    """Only mermaid and json are accepted formats."""
    assert invoke("graph", "show", "flows:graph", "--format", "png").exit_code == 2


# --- graph list, workflows schema ---------------------------------------------------------------

APP = """\
from belugaflow import Orchestrator

orch = Orchestrator()
for version in (1, 2):
    graph = orch.create_graph("approval", version=version, input_schema={
        "type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]
    })
    graph.add_wait("await_ok", signal="ok", timeout=60)
    graph.set_entry_point("await_ok").set_finish_point("await_ok")
"""


@pytest.fixture
def app_module(project: Path) -> str:
    (project / "approvals.py").write_text(APP, encoding="utf-8")
    return "approvals:orch"


def test_graph_list_names_what_a_worker_serves(app_module: str) -> None:
    result = invoke("graph", "list", "--app", app_module)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["WORKFLOW", "TYPE", "VERSIONS", "NODES", "WAITS", "FOR"]
    assert lines[1].split() == ["approval", "1,2", "1", "ok"]
    as_json = invoke("graph", "list", "--app", app_module, "--json")
    assert json.loads(as_json.stdout) == {
        "workflow_type": "approval",
        "versions": [1, 2],
        "nodes": 1,
        "waits_for": ["ok"],
    }


def test_workflows_schema_prints_a_graphs_schemas(app_module: str) -> None:
    result = invoke("workflows", "schema", "approval", "--app", app_module)
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert schema["workflow_type"] == "approval" and schema["version"] == 2
    assert schema["input"]["required"] == ["amount"]
    assert schema["input"]["additionalProperties"] is False
    assert set(schema["signals"]) == {"ok", "resolve"}
    assert set(schema["queries"]) == {"progress"}


def test_workflows_schema_names_the_types_an_app_serves(app_module: str) -> None:
    result = invoke("workflows", "schema", "aproval", "--app", app_module)
    assert result.exit_code == 1
    assert "serves no workflow type 'aproval' (it serves: approval)" in result.output
