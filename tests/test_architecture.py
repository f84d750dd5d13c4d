"""Imports run one way: read from the source with `ast`, no Django, no database.

Every import counts, also one inside a function (it is still a dependency, only a later
one); imports under `if TYPE_CHECKING:` do not (they never run). `from pkg import mod` is a
dependency on the module `pkg.mod` when that file exists. Migrations are left out;
management commands belong to their app.

The layers, each importing only from those below it (and from itself):

    web            anything
    transcription  translation, pool, accounts, jptranscribe, worker_client
    translation    accounts, jptranscribe, worker_client
    pool           accounts, jptranscribe, worker_client
    accounts       jptranscribe
    jptranscribe   no app: settings, URLs, framework-level helpers
    worker_client  nothing of the server, and not Django: it runs on volunteers' machines
"""
import ast
import sys
from collections import deque
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("jptranscribe", "accounts", "pool", "transcription", "translation", "web", "worker_client")
APPS = ("accounts", "pool", "transcription", "translation", "web")
MAY_IMPORT = {
    "web": set(PACKAGES),
    "transcription": {"translation", "pool", "accounts", "jptranscribe", "worker_client"},
    "translation": {"accounts", "jptranscribe", "worker_client"},
    "pool": {"accounts", "jptranscribe", "worker_client"},
    "accounts": {"jptranscribe"},
    "jptranscribe": set(),
    "worker_client": set(),
}
DJANGO = ("django", "rest_framework", "drf_spectacular")  # and django_* packages


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module: ours resolved to its file's module, others as written
    file: str
    line: int
    statement: str
    in_function: bool

    @property
    def package(self):
        return self.target.split(".")[0]

    def __str__(self):
        where = " (inside a function)" if self.in_function else ""
        return f"{self.file}:{self.line} `{self.statement}`{where}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.relative_to(ROOT).parts:
                found[module_name(path)] = path
    return found


def resolve(name: str) -> str:
    """Ours: the longest prefix of `name` that is one of our modules. Others: as written."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules():
            return ".".join(parts[:end])
    return name


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, path: Path) -> list[Import]:
    source = path.read_text()
    tree = ast.parse(source, filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    file = str(path.relative_to(ROOT))
    found = []

    def targets(node):
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:  # relative: from . import x, from ..y import z
            anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        # `from pkg import mod` depends on pkg.mod when it is a module, else on pkg itself
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules() else base for alias in node.names]

    def visit(node, in_function):
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            statement = ast.get_source_segment(source, node) or ast.unparse(node)
            for target in dict.fromkeys(targets(node)):
                found.append(Import(module, resolve(target), file, node.lineno, " ".join(statement.split()),
                                    in_function))
            return
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(i for module, path in modules().items() for i in imports_of(module, path))


def package_of(module: str) -> str:
    return module.split(".")[0]


def upward(package: str) -> list[Import]:
    allowed = MAY_IMPORT[package] | {package}
    return [i for i in all_imports()
            if package_of(i.module) == package and i.package in PACKAGES and i.package not in allowed]


def fail_if(found, rule: str):
    """Fails naming the rule and each import that breaks it (file:line, the statement)."""
    if found:
        pytest.fail(f"{rule}:\n" + "\n".join(f"  {i}  imports {i.target}" for i in found), pytrace=False)


def test_every_server_package_is_read():
    assert {package_of(m) for m in modules()} == set(PACKAGES)
    assert all_imports(), "no imports found: the parser reads nothing"


def test_jptranscribe_imports_no_app():
    fail_if(upward("jptranscribe"), "jptranscribe (settings, URLs, framework helpers) imports no app; move "
            "what needs an app into that app (mount it by name, or register it with a hook jptranscribe owns)")


def test_accounts_imports_only_jptranscribe():
    fail_if(upward("accounts"), "accounts imports only jptranscribe, nothing from pool, transcription, "
            "translation, web or worker_client; what needs both belongs to a layer that may know both")


def test_worker_client_imports_nothing_of_the_server_nor_django():
    found = upward("worker_client") + [
        i for i in all_imports() if package_of(i.module) == "worker_client"
        and (i.package in DJANGO or i.package.startswith("django_"))]
    fail_if(found, "worker_client runs on volunteers' machines: nothing of the server's code, and not Django")


@pytest.mark.parametrize("app", ["transcription", "translation", "pool"])
def test_apps_import_only_the_layers_below(app):
    fail_if(upward(app), f"{app} may import only {', '.join(sorted(MAY_IMPORT[app]))} (the layers below it)")


def graph() -> dict[str, dict[str, Import]]:
    edges: dict[str, dict[str, Import]] = {module: {} for module in modules()}
    for i in all_imports():
        if i.target in modules() and i.target != i.module:
            edges[i.module].setdefault(i.target, i)  # the first import of a module names the edge
    return edges


def strongly_connected(edges) -> list[list[str]]:
    """Tarjan's components with more than one module: each holds at least one cycle."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return sorted(components)


def shortest_cycle(edges, start, within) -> list[str]:
    """start -> ... -> start, fewest imports, staying inside its component."""
    came_from = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(edges[node]):
            if nxt == start:
                path = [node]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return list(reversed(path)) + [start]
            if nxt in within and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is in a component but on no cycle")


def test_no_import_cycles():
    edges = graph()
    lines = []
    for component in strongly_connected(edges):
        lines.append(f"cycle among {', '.join(component)}:")
        seen = set()
        for start in component:
            cycle = shortest_cycle(edges, start, set(component))
            key = frozenset(pairwise(cycle))
            if key in seen:
                continue
            seen.add(key)
            lines.append("  " + " -> ".join(cycle))
            lines.extend(f"      {edges[a][b]}" for a, b in pairwise(cycle))
    if lines:
        pytest.fail("imports run in a circle (a function-level import counts too):\n" + "\n".join(lines),
                    pytrace=False)


def test_the_parser_sees_what_the_rules_need(tmp_path, monkeypatch):
    """The reading itself: relative and function-level imports count, TYPE_CHECKING ones do not,
    and `from pkg import mod` names the module."""
    for name in ("app/__init__.py", "app/models.py", "app/sub/__init__.py", "app/sub/views.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "app/sub/views.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from .. import models\n"
        "from app import sub\n"
        "if TYPE_CHECKING:\n    import app.typing_only\n"
        "else:\n    import json\n"
        "def later():\n    from app.models import Thing\n")
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "ROOT", tmp_path)
    monkeypatch.setattr(here, "PACKAGES", ("app",))
    modules.cache_clear()
    try:
        found = imports_of("app.sub.views", tmp_path / "app/sub/views.py")
    finally:
        modules.cache_clear()
    assert [(i.target, i.in_function) for i in found] == [
        ("typing", False), ("app.models", False), ("app.sub", False), ("json", False), ("app.models", True)]
