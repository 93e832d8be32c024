"""Run the documentation: code in ``README.md`` and ``docs/**/*.md`` must work as written.

- Every fenced ``python`` (or ``py``) block runs, one test per block (id ``file:line``), in a
  fresh module namespace, in this process, with the repository root as working directory.
  Blocks are independent: nothing one block defines is visible to the next. Top-level
  ``await`` is allowed (the block then runs under ``asyncio.run``). Tracebacks point at the
  Markdown file and line. Fence a block ``python no-run`` to show it without running it, or
  ``python needs=llama_cpp`` to run it only where that optional module is installed.
- Every ``belugaflow ...`` (or ``.venv/bin/belugaflow ...``) line of a ``bash`` (or ``sh``,
  ``shell``, ``console``) block must name a real CLI command, whose ``--help`` works, with
  arguments the command accepts. The command is parsed, never run.

Other fences (``yaml``, ``text``, ...) are not checked. New Markdown files are picked up
automatically.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from belugaflow.cli import app

ROOT = Path(__file__).resolve().parents[1]
PYTHON = frozenset({"python", "py", "python3"})
SHELL = frozenset({"bash", "sh", "shell", "console"})
NO_RUN = "no-run"
NEEDS = "needs="

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>.*)$")
_COMMAND = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*(?:\S*/)?belugaflow(?:\s|$)")
_OPERATORS = frozenset("();<>|&")


@dataclass(frozen=True)
class Block:
    """A fenced code block of a Markdown file."""

    file: str
    """Path relative to the repository root, with ``/``."""
    line: int
    """1-based line of the opening fence; the code starts on the next line."""
    lang: str
    """First word of the info string, lower-cased (``""`` when there is none)."""
    flags: frozenset[str]
    """The other words of the info string, e.g. ``no-run``."""
    code: str


@dataclass(frozen=True)
class CommandLine:
    """One ``belugaflow ...`` command from a shell block (continuation lines joined)."""

    file: str
    line: int
    text: str


def fenced_blocks(text: str, file: str) -> list[Block]:
    """The fenced code blocks of a Markdown document, as CommonMark reads them.

    Raises:
        ValueError: A fence is never closed (CommonMark would swallow the rest of the file).
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        start, body = i, []
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            line = lines[i]
            # Content lines lose up to the fence's own indentation, as in CommonMark.
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            i += 1
        if i == len(lines):
            raise ValueError(f"{file}:{start + 1}: the {fence} fence is never closed")
        words = opening["info"].split()
        lang = words[0].lower() if words else ""
        blocks.append(Block(file, start + 1, lang, frozenset(words[1:]), "\n".join(body)))
        i += 1
    return blocks


def command_lines(block: Block) -> list[CommandLine]:
    """The lines of a shell block that run ``belugaflow`` (``$`` prompts and ``\\`` handled)."""
    found: list[CommandLine] = []
    pending, first = "", 0
    for offset, raw in enumerate(block.code.splitlines(), start=1):
        if not pending:
            first = block.line + offset
        line = raw.strip()
        line = line[2:] if line.startswith("$ ") else line
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line, pending = pending + line, ""
        if _COMMAND.match(line):
            found.append(CommandLine(block.file, first, line))
    return found


def shell_words(line: str) -> list[str]:
    """The words of one simple shell command: up to the first pipe, redirection or ``;``."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    for token in lexer:
        if set(token) <= _OPERATORS:
            if token[0] in "<>" and words and words[-1].isdigit():
                words.pop()  # the "2" of "2>&1"
            break
        words.append(token)
    return words


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/, in a stable order."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [path for path in files if path.is_file()]


def all_blocks() -> list[Block]:
    """Every fenced block of the documentation."""
    blocks: list[Block] = []
    for path in markdown_files():
        file = path.relative_to(ROOT).as_posix()
        blocks += fenced_blocks(path.read_text(encoding="utf-8"), file)
    return blocks


BLOCKS = all_blocks()
PYTHON_BLOCKS = [block for block in BLOCKS if block.lang in PYTHON]
COMMAND_LINES = [line for block in BLOCKS if block.lang in SHELL for line in command_lines(block)]


def _python_param(block: Block) -> Any:
    marks = []
    if NO_RUN in block.flags:
        marks.append(pytest.mark.skip(reason=f"fenced as python {NO_RUN}"))
    for flag in block.flags:
        needed = flag.removeprefix(NEEDS)
        if needed != flag and importlib.util.find_spec(needed) is None:
            marks.append(pytest.mark.skip(reason=f"{needed} is not installed"))
    return pytest.param(block, id=f"{block.file}:{block.line}", marks=marks)


# --- Python blocks -------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [_python_param(block) for block in PYTHON_BLOCKS])
def test_python_block_runs(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block runs without error (or warning) in a fresh namespace from the repo root."""
    name = "docs_block_" + re.sub(r"\W", "_", f"{block.file}_{block.line}")
    module = ModuleType(name)
    module.__file__ = str(ROOT / block.file)
    # Leading newlines make line numbers in tracebacks those of the Markdown file.
    source = "\n" * block.line + block.code + "\n"
    code = compile(source, str(ROOT / block.file), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    monkeypatch.chdir(ROOT)
    # A real module, so dataclasses, pydantic, pickling and registry keys work in blocks.
    monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(sys, "path", list(sys.path))
    environ = dict(os.environ)
    try:
        if code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(code, module.__dict__))
        else:
            exec(code, module.__dict__)
    finally:
        os.environ.clear()
        os.environ.update(environ)


# --- Shell blocks --------------------------------------------------------------------------------


def command_problem(text: str) -> str | None:
    """Why a ``belugaflow ...`` shell line is not a valid command line, or None if it is."""
    words = shell_words(text)
    first = next(i for i, word in enumerate(words) if word.rpartition("/")[2] == "belugaflow")
    args = words[first + 1 :]
    command: Any = get_command(app)
    path: list[str] = []
    while args and args[0] in getattr(command, "commands", {}):
        path.append(args[0])
        command = command.commands[args.pop(0)]
    name = " ".join(["belugaflow", *path])
    if hasattr(command, "commands"):  # stopped at a group: the rest must not be a command name
        unknown = [arg for arg in args if not arg.startswith("-")]
        if unknown:
            return f"`{name}` has no command {unknown[0]!r}"
    result = CliRunner().invoke(app, [*path, "--help"])
    if result.exit_code != 0:
        return f"`{name} --help` failed:\n{result.output}"
    try:
        # Parse (and validate) the arguments as the command would, without running it.
        command.make_context(name, list(args))
    except Exception as error:
        if getattr(error, "exit_code", 1) != 0:  # --help and --version stop with exit code 0
            format_message = getattr(error, "format_message", None)
            message = format_message() if callable(format_message) else str(error)
            return f"`{name}` rejects its arguments: {message}"
    return None


@pytest.mark.parametrize(
    "line", [pytest.param(line, id=f"{line.file}:{line.line}") for line in COMMAND_LINES]
)
def test_shell_line_names_a_real_command(line: CommandLine) -> None:
    """The ``belugaflow`` line names an existing command and passes it valid arguments."""
    problem = command_problem(line.text)
    assert problem is None, f"{line.file}:{line.line}: `{line.text}`: {problem}"


# --- The harness itself --------------------------------------------------------------------------


def test_harness_finds_the_documentation() -> None:
    """The docs contain Python blocks and CLI examples, so an empty collection is a bug."""
    files = {block.file for block in PYTHON_BLOCKS}
    assert "docs/config.md" in files
    assert any(line.file == "docs/cli.md" for line in COMMAND_LINES)


def test_fence_parser_reads_commonmark_fences() -> None:
    """Info strings, flags, tildes, indentation and nested fences are read as CommonMark does."""
    text = "\n".join(
        [
            "# Title",
            "```python",
            "x = 1",
            "```",
            "````markdown",
            "```python",
            "not = code",
            "```",
            "````",
            "  ~~~py no-run",
            "  y = 2",
            "    z = 3",
            "  ~~~",
            "```bash",
            "$ belugaflow config check \\",
            "    config.yaml --show",
            "echo done",
            "```",
        ]
    )
    blocks = fenced_blocks(text, "doc.md")
    assert [(b.lang, b.line, b.flags, b.code) for b in blocks] == [
        ("python", 2, frozenset(), "x = 1"),
        ("markdown", 5, frozenset(), "```python\nnot = code\n```"),
        ("py", 10, frozenset({"no-run"}), "y = 2\n  z = 3"),
        (
            "bash",
            14,
            frozenset(),
            "$ belugaflow config check \\\n    config.yaml --show\necho done",
        ),
    ]
    (command,) = command_lines(blocks[-1])
    assert (command.line, command.text) == (15, "belugaflow config check config.yaml --show")


def test_blocks_run_only_where_they_can() -> None:
    """``no-run`` never runs; ``needs=module`` runs only where that module is installed."""

    def skipped(*flags: str) -> bool:
        block = Block("doc.md", 1, "python", frozenset(flags), "pass")
        return any(mark.name == "skip" for mark in _python_param(block).marks)

    assert skipped(NO_RUN)
    assert skipped("needs=surely_no_such_module")
    assert not skipped("needs=json")
    assert not skipped()


def test_fence_parser_rejects_an_unclosed_fence() -> None:
    """An unclosed fence is an error naming the file and line, not a silently swallowed page."""
    with pytest.raises(ValueError, match=r"doc\.md:2: "):
        fenced_blocks("text\n```python\nx = 1\n", "doc.md")


def test_shell_words_stop_at_redirections_and_pipes() -> None:
    """Only the belugaflow command itself is parsed, not what its output is piped into."""
    assert shell_words("X=1 belugaflow graph show a:b -f json > g.json 2>&1 # note") == [
        "X=1",
        "belugaflow",
        "graph",
        "show",
        "a:b",
        "-f",
        "json",
    ]
    assert shell_words("belugaflow --version | head -1") == ["belugaflow", "--version"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("belugaflow confg check config.yaml", "`belugaflow` has no command 'confg'"),
        ("belugaflow graph draw flows:graph", "`belugaflow graph` has no command 'draw'"),
        ("belugaflow graph show flows:graph --fromat json", "No such option: --fromat"),
        ("belugaflow graph show flows:graph -f png", "'png' is not one of"),
        ("belugaflow worker --app m:orch --metrics-port 70000", "less than or equal to 65535"),
        ("belugaflow config check", "Missing argument"),
    ],
)
def test_command_check_rejects_bad_command_lines(text: str, problem: str) -> None:
    """Misspelt commands, unknown options and bad arguments in the docs are caught."""
    found = command_problem(text)
    assert found is not None and problem in found, found


@pytest.mark.parametrize(
    "text",
    [
        "belugaflow --version",
        "belugaflow graph show --help",
        "belugaflow config check config.yaml --show > out.yaml",
        "X=1 belugaflow graph show pkg.flows:factory.graph -f json | jq .name",
    ],
)
def test_command_check_accepts_good_command_lines(text: str) -> None:
    """Valid command lines, including ``--help``, ``--version`` and pipes, pass the check."""
    assert command_problem(text) is None
