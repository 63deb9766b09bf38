"""Docs and code cannot drift: every ``python`` block in docs/ runs, or (marked as naming a real host)
has every call it makes checked against the real signatures; the API table names real parameters."""

from __future__ import annotations

import ast
import inspect
import re
import shlex
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

import hvjob
from conftest import ROOT
from hvjob.fanout import HostTarget, run
from hvjob.jobs import JobClient, JobFilter
from hvjob.transport import ConnectionOptions

#: Put on the line before a block that cannot run here because it names a real host.
ILLUSTRATIVE = "<!-- illustrative: names a real host -->"
#: Put on the line before a block that a test runs with names it provides (``run by tests/X.py``).
RUN_BY = re.compile(r"<!-- run by (tests/\w+\.py) -->")
BLOCK = re.compile(r"(<!--[^\n]*-->\n)?```python\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, int, str, str]]:
    """(doc, line, its marker comment or "", code) for every python block."""
    found = []
    for path in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        text = path.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start(2)) + 1
            found.append((path.relative_to(ROOT).as_posix(), line, (match.group(1) or "").strip(), match.group(2)))
    return found


BLOCKS = _blocks()
RUNNABLE = [b for b in BLOCKS if not b[2]]
ILLUSTRATIVE_BLOCKS = [b for b in BLOCKS if b[2] == ILLUSTRATIVE]
RUN_ELSEWHERE = [b for b in BLOCKS if RUN_BY.fullmatch(b[2])]


def test_every_marked_block_is_run_or_checked() -> None:
    assert {b[2] for b in BLOCKS} <= {"", ILLUSTRATIVE} | {b[2] for b in RUN_ELSEWHERE}
    for path, _, marker, _ in RUN_ELSEWHERE:
        match = RUN_BY.fullmatch(marker)
        assert match and path in (ROOT / match.group(1)).read_text(encoding="utf-8"), f"{match} does not run {path}"


def test_the_docs_have_runnable_python() -> None:
    assert any(path == "docs/api.md" for path, *_ in RUNNABLE)


@pytest.mark.parametrize(("path", "line", "marked", "code"), RUNNABLE, ids=[f"{b[0]}:{b[1]}" for b in RUNNABLE])
def test_python_block_runs(path: str, line: int, marked: str, code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, f"{path}:{line}", "exec"), {"__name__": "docs_example"})
    if path == "docs/api.md":
        assert "'status': 'ok'" in capsys.readouterr().out


# --- blocks that name a real host: every call they make must fit the real signatures ----------------

#: What the names in the illustrative blocks stand for.
KNOWN: dict[str, Callable[..., Any]] = {
    "hvjob.connect": hvjob.connect,
    "connect": hvjob.connect,
    "run": run,
    "HostTarget": HostTarget,
    "ConnectionOptions": ConnectionOptions,
    "JobFilter.of": JobFilter.of,
}
CLIENT_NAMES = ("client",)


def _callee(node: ast.Call) -> Callable[..., Any] | None:
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        if func.value.id in CLIENT_NAMES:
            method = getattr(JobClient, func.attr, None)
            assert method is not None, f"JobClient has no {func.attr}"
            return method  # type: ignore[no-any-return]
        return KNOWN.get(f"{func.value.id}.{func.attr}")
    if isinstance(func, ast.Name):
        return KNOWN.get(func.id)
    return None


@pytest.mark.parametrize(
    ("path", "line", "marked", "code"), ILLUSTRATIVE_BLOCKS, ids=[f"{b[0]}:{b[1]}" for b in ILLUSTRATIVE_BLOCKS]
)
def test_illustrative_block_calls_fit_the_code(path: str, line: int, marked: str, code: str) -> None:
    tree = ast.parse(code, f"{path}:{line}")
    checked = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = _callee(node)
        if callee is None:
            continue
        signature = inspect.signature(callee)
        positional = [None] * len(node.args)
        keywords = {k.arg: None for k in node.keywords if k.arg is not None}
        if next(iter(signature.parameters), None) == "self":
            positional = [None, *positional]
        signature.bind(*positional, **keywords)  # TypeError when a name or an arity is wrong
        checked += 1
    assert checked, f"{path}:{line} calls nothing hvjob knows: mark it as a plain text block instead"


def test_illustrative_blocks_exist_and_are_marked() -> None:
    assert ILLUSTRATIVE_BLOCKS, "docs/api.md opens with a block against a real host"


# --- the API table ------------------------------------------------------------------------------

ROW = re.compile(r"^\| `JobClient\.(\w+)\(([^`]*)\)`", re.M)


def test_the_api_table_names_real_parameters() -> None:
    rows = ROW.findall((ROOT / "docs" / "api.md").read_text(encoding="utf-8"))
    assert len(rows) >= 8
    for name, args in rows:
        params = set(inspect.signature(getattr(JobClient, name)).parameters) - {"self"}
        spec = ast.parse(f"def f({args}): pass").body[0]
        assert isinstance(spec, ast.FunctionDef)
        every = [*spec.args.args, *spec.args.kwonlyargs, *filter(None, [spec.args.vararg, spec.args.kwarg])]
        named = {a.arg for a in every}
        assert named <= params | {"stop_options"}, f"docs/api.md: JobClient.{name} has no {named - params}"


def test_every_python_block_is_found(tmp_path: Path) -> None:
    sample = "x\n" + ILLUSTRATIVE + "\n```python\nclient.stop('j')\n```\n```python\nprint(1)\n```\n"
    assert [(m.group(1) or "").strip() == ILLUSTRATIVE for m in BLOCK.finditer(sample)] == [True, False]


SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
SHELL_CUT = {"|", "||", "&&", ";", ">", ">>", "2>", "&", "<", "2>&1", ")"}


def _hvjob_command_lines() -> list[tuple[str, int, list[str]]]:
    """(doc, line, argv after ``hvjob``) for every ``hvjob`` command in a ``sh`` block of the docs."""
    found = []
    for path in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        text = path.read_text(encoding="utf-8")
        for match in SHELL_BLOCK.finditer(text):
            first = text.count("\n", 0, match.start(1)) + 1
            for offset, raw in enumerate(match.group(1).replace("\\\n", " ").splitlines()):
                line = re.sub(r"<(\w+)>", r"\1", raw)  # a placeholder: <InstanceID>
                lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
                lexer.whitespace_split = True
                lexer.commenters = "#"
                words = list(lexer)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value hvjob ...
                    words.pop(0)
                if words[:1] != ["hvjob"]:
                    continue
                argv = words[1:]
                for index, word in enumerate(argv):
                    if word in SHELL_CUT:
                        argv = argv[:index]
                        break
                found.append((path.relative_to(ROOT).as_posix(), first + offset, argv))
    return found


COMMAND_LINES = _hvjob_command_lines()


def test_the_docs_show_hvjob_commands() -> None:
    assert any(path == "README.md" for path, *_ in COMMAND_LINES)


@pytest.mark.parametrize(
    ("path", "line", "argv"), COMMAND_LINES, ids=[f"{path}:{line}" for path, line, _ in COMMAND_LINES]
)
def test_documented_command_line_parses(path: str, line: int, argv: list[str]) -> None:
    """Each documented command parses as typed (a global option after the command, a misspelt option
    or a bad value fails here), without running it."""
    from hvjob.cli.commands import main

    def unparsed(context: click.Context) -> list[str]:
        with warnings.catch_warnings():  # click 9 puts them all in args
            warnings.simplefilter("ignore", DeprecationWarning)
            return [*context.protected_args, *context.args]

    context = main.make_context("hvjob", list(argv))
    command: click.Command = main
    words = unparsed(context)
    while isinstance(command, click.Group) and words:
        name, *words = words
        sub = command.get_command(context, name)
        assert sub is not None, f"{path}:{line}: no command {name!r}"
        context = sub.make_context(name, words, parent=context)
        command, words = sub, unparsed(context)
    assert not words, f"{path}:{line}: left over: {words}"
