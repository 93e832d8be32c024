"""The package as a user gets it: built, installed outside the repository, and run.

The slow packaging test (marked ``packaging``; ``pytest -m "not packaging"`` leaves it out).
``python -m build`` makes the sdist and, from the unpacked sdist, the wheel — so a file the wheel
needs but the sdist lacks fails the build. The wheel's file list is checked against
``src/belugaflow``. A new virtual environment under ``tmp_path`` gets the wheel with every extra
but ``local`` (which compiles llama.cpp for minutes); the others install from pip's cache in
about 30 s. Then, from a directory outside the repository (so neither ``src/`` nor the repo's
venv is importable), the installed ``belugaflow`` runs: ``--version``, ``server start-dev`` on a
free port, ``worker --app myapp:orch`` of the app module of ``docs/deploy.md``, and the doc's
``start.py``, which runs the app's graph to completion on that server.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.test_docs import fenced_blocks

import belugaflow

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "belugaflow"
VERSION = belugaflow.__version__
EXTRAS = "temporal,server,llm,otel,memory"
DATA_FILES = {"py.typed", "server/run_page.html", "memory/data/all-MiniLM-L6-v2-tokenizer.json"}


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Installed:
    """A virtual environment holding the wheel, and a working directory outside the repo."""

    venv: Path
    workdir: Path
    env: dict[str, str]

    @property
    def belugaflow(self) -> str:
        return str(self.venv / "bin" / "belugaflow")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def _run(
    command: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run ``command``; its stdout, or a failure showing everything it printed."""
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        env=env,
        cwd=cwd,
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def _package_files() -> set[str]:
    """What the wheel must hold of the package: every module and the data files."""
    modules = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    return modules | DATA_FILES


def _doc_block(first_line: str) -> str:
    """The Python block of docs/deploy.md that starts with ``first_line``."""
    doc = ROOT / "docs" / "deploy.md"
    blocks = fenced_blocks(doc.read_text(encoding="utf-8"), "docs/deploy.md")
    (block,) = [b for b in blocks if b.lang == "python" and b.code.startswith(first_line)]
    return block.code + "\n"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build``: the sdist, and the wheel built from it."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], timeout=300)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(wheel, sdist)


@pytest.fixture(scope="module")
def installed(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh venv outside the repository with the wheel and its extras (but ``local``)."""
    base = tmp_path_factory.mktemp("installed")
    assert ROOT not in base.parents
    venv, workdir = base / "venv", base / "work"
    workdir.mkdir()
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    # Nothing of this process's environment that would let the repo's code in.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, f"{dist.wheel}[{EXTRAS}]"], timeout=600, env=env, cwd=workdir)
    return Installed(venv, workdir, env)


def test_version_is_written_once() -> None:
    """``belugaflow.__version__`` is the version; pyproject.toml reads it, writes none."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "belugaflow.__version__"}
    written = [
        path
        for path in PACKAGE.rglob("*.py")
        if re.search(r"^__version__\s*=", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert written == [PACKAGE / "__init__.py"]


def test_wheel_holds_the_package_and_its_data(dist: Dist) -> None:
    """Every module and data file of ``src/belugaflow``, the console script, the version; no
    tests, no examples."""
    assert dist.wheel.name == f"belugaflow-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        info = f"belugaflow-{VERSION}.dist-info"
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    package = {name.removeprefix("belugaflow/") for name in names if name.startswith("belugaflow/")}
    assert package == _package_files()
    assert {name.split("/")[0] for name in names} == {"belugaflow", info}
    assert f"\nVersion: {VERSION}\n" in metadata
    for extra in EXTRAS.split(","):
        assert f"Provides-Extra: {extra}\n" in metadata
    assert "belugaflow = belugaflow.cli:main" in entry_points


def test_sdist_holds_the_sources(dist: Dist) -> None:
    """What the wheel is built from: pyproject, README (the long description), the package."""
    assert dist.sdist.name == f"belugaflow-{VERSION}.tar.gz"
    top = f"belugaflow-{VERSION}"
    with tarfile.open(dist.sdist) as sdist:
        names = set(sdist.getnames())
    assert {f"{top}/pyproject.toml", f"{top}/README.md", f"{top}/PKG-INFO"} <= names
    sources = {name.removeprefix(f"{top}/src/belugaflow/") for name in names}
    assert _package_files() <= sources


def test_installed_version_and_data(installed: Installed) -> None:
    """``belugaflow --version`` is the one version; the package (and its data files) come from
    the venv, not the repository."""
    out = _run(
        [installed.belugaflow, "--version"], timeout=60, env=installed.env, cwd=installed.workdir
    )
    assert out.strip() == f"belugaflow {VERSION}"
    data = sorted(DATA_FILES)
    probe = "\n".join(
        [
            "import belugaflow, importlib.metadata as m, importlib.resources as r",
            "print(belugaflow.__file__)",
            "print(m.version('belugaflow'))",
            f"print([r.files('belugaflow').joinpath(name).is_file() for name in {data!r}])",
        ]
    )
    lines = _run(
        [installed.python, "-c", probe], timeout=60, env=installed.env, cwd=installed.workdir
    ).splitlines()
    assert Path(lines[0]).is_relative_to(installed.venv), lines[0]
    assert lines[1:] == [VERSION, str([True] * len(data))]


class _Process:
    """A ``belugaflow`` command in the background, its output in a log file."""

    def __init__(self, command: list[str], installed: Installed, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command,
                cwd=installed.workdir,
                env=installed.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(pattern, self.output()):
                return found
            assert self.process.poll() is None, f"exited early:\n{self.output()}"
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in {timeout} s:\n{self.output()}")

    def terminate(self, timeout: float = 45.0) -> int:
        """SIGTERM to the process (it stops what it started), then its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@contextlib.contextmanager
def _background(command: list[str], installed: Installed, log: Path) -> Iterator[_Process]:
    process = _Process(command, installed, log)
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.kill()


def test_server_worker_and_a_workflow(installed: Installed) -> None:
    """The doc's app, outside the repository: its own dev server, a worker, one run to its end;
    then SIGTERM stops the worker (drained, exit 0) and the server (exit 0)."""
    work, bf = installed.workdir, installed.belugaflow
    (work / "myapp.py").write_text(_doc_block("# myapp.py"))
    (work / "start.py").write_text(_doc_block("# start.py"))
    server_command = [bf, "server", "start-dev", "--port", "0", "--no-ui", "--fast"]
    server_command += ["--db-file", str(work / "temporal.db")]
    with _background(server_command, installed, work / "server.log") as server:
        address = server.wait_for(r"ready at (\S+) \(namespace default\)")[1]
        worker_command = [bf, "worker", "--app", "myapp:orch", "--address", address]
        worker_command += ["--metrics-port", "-1"]
        with _background(worker_command, installed, work / "worker.log") as worker:
            worker.wait_for(r"polling task queue 'greetings'")
            env = {**installed.env, "TEMPORAL_ADDRESS": address}
            out = _run([installed.python, "start.py"], timeout=120, env=env, cwd=work)
            assert out.strip() == "{'name': 'ada', 'text': 'hello ada'}"
            assert worker.terminate() == 0, worker.output()
            assert "worker drained and stopped" in worker.output()
        assert server.terminate() == 0, server.output()
        assert "Temporal dev server stopped." in server.output()
