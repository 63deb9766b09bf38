"""No private name of a dependency anywhere in ``src/``: each would be a break waiting for a release.

An AST scan of every module under src/: imports of private modules or names of third-party
packages (``from spnego._ntlm_raw.crypto import ...``, ``from winrm import _x``), attribute chains
on an imported third-party module (``winrm.encryption._encrypt``), private attributes of any other
object that hvjob does not define itself (``encryption._encrypt_message``, ``response.raw._fp``),
the same through ``getattr``/``hasattr`` with a literal name, and ``__getattr__`` proxies.
The scanner is shown to catch each form on planted code.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator

import pytest

from conftest import ROOT

SRC = ROOT / "src"
#: Private names of the standard library that src/ uses knowingly (not a third-party dependency).
STDLIB_ALLOWED = frozenset({"_value2member_map_", "_exit", "_replace", "_asdict", "_fields", "_make"})
#: Third-party names that only look private: lxml's element class is ``_Element`` in its own API
#: reference and stubs (``etree.Element`` is a factory function), the type every annotation needs.
PUBLIC_DESPITE_UNDERSCORE = frozenset({("lxml.etree", "_Element")})


def _top(module: str) -> str:
    return module.partition(".")[0]


def _third_party(module: str) -> bool:
    top = _top(module)
    return bool(top) and top != "hvjob" and top not in sys.stdlib_module_names and top != "__future__"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_names(trees: list[ast.Module]) -> set[str]:
    """Every private name hvjob defines: functions, classes, attributes it assigns, parameters."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.rpartition(".")[2])
    return {name for name in names if _private(name)}


def violations(tree: ast.Module, own: set[str], where: str) -> Iterator[str]:
    modules: dict[str, str] = {}  # local name -> third-party module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _third_party(alias.name):
                    if any(_private(part) for part in alias.name.split(".")):
                        yield f"{where}:{node.lineno}: import {alias.name}"
                    bound = alias.name if alias.asname else _top(alias.name)  # what the local name refers to
                    modules[alias.asname or _top(alias.name)] = bound
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _third_party(node.module):
            if any(_private(part) for part in node.module.split(".")):
                yield f"{where}:{node.lineno}: from {node.module} import ..."
            for alias in node.names:
                if _private(alias.name):
                    yield f"{where}:{node.lineno}: from {node.module} import {alias.name}"
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            yield f"{where}:{node.lineno}: __getattr__ proxy"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                if (modules[base.id], node.attr) not in PUBLIC_DESPITE_UNDERSCORE:
                    yield f"{where}:{node.lineno}: {base.id}...{node.attr} on {modules[base.id]}"
            elif node.attr not in own and node.attr not in STDLIB_ALLOWED:
                yield f"{where}:{node.lineno}: .{node.attr} (not defined by hvjob)"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
            and node.args[1].value not in own
        ):
            yield f"{where}:{node.lineno}: {node.func.id}(..., {node.args[1].value!r})"


def _sources() -> dict[str, ast.Module]:
    return {str(path.relative_to(ROOT)): ast.parse(path.read_text(encoding="utf-8")) for path in SRC.rglob("*.py")}


def test_src_uses_no_private_name_of_a_dependency() -> None:
    sources = _sources()
    assert len(sources) > 20
    own = _own_names(list(sources.values()))
    found = [v for where, tree in sources.items() for v in violations(tree, own, where)]
    assert found == []


@pytest.mark.parametrize(
    "code",
    [
        "from spnego._ntlm_raw.crypto import ntowfv1",
        "import spnego._ntlm_raw.messages",
        "from winrm.encryption import _private_helper",
        "import winrm.encryption\nwinrm.encryption.Encryption._encrypt_message",
        "def f(encryption):\n    return encryption._encrypt_message(b'', 'h')",
        "def f(response):\n    return response.raw._fp.fp.raw._sock",
        "def f(ctx):\n    return getattr(ctx, '_context')",
        "class Proxy:\n    def __getattr__(self, name):\n        return name",
    ],
)
def test_the_scan_catches_each_form(code: str) -> None:
    tree = ast.parse(code)
    assert list(violations(tree, _own_names([tree]), "planted")) != []


def test_the_scan_lets_hvjobs_own_and_public_names_through() -> None:
    code = (
        "import spnego\nfrom hvjob.transport import boundary\n"
        "class A:\n    def __init__(self):\n        self._lock = 1\n    def _go(self):\n        return self._lock\n"
        "spnego.client\nboundary._chain\nA()._go()\n"
    )
    tree = ast.parse(code)
    own = _own_names([tree]) | {"_chain"}
    assert list(violations(tree, own, "planted")) == []


def test_the_library_imports_neither_pywinrm_nor_requests_ntlm() -> None:
    imported = set()
    for tree in _sources().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {_top(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(_top(node.module))
    assert imported.isdisjoint({"winrm", "requests_ntlm", "requests_credssp", "requests_kerberos", "kerberos"})
    assert {"spnego", "requests"} <= imported
