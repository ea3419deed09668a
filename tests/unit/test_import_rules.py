"""The layering rules of DESIGN.md, checked on the source with `ast`.

- `storage` never imports `bot`.
- Only the `bot/agent/` package imports `agents` at run time (imports under
  `if TYPE_CHECKING:` are for type checkers and do not count).
- No import cycles between our modules, not even through `if TYPE_CHECKING:` imports.
- No import-time side effects: no module builds settings, engines, clients or apps at module
  level (class bodies, decorators and default values run at import time too).
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "storage")
AGENT_PACKAGE = "bot/agent/"
FORBIDDEN_AT_IMPORT = {
    "Settings",
    "create_async_engine",
    "create_engine",
    "AsyncApp",
    "App",
    "build_app",
    "Database",
    "AsyncWebClient",
    "WebClient",
    "AsyncOpenAI",
    "build_slack_client",
    "build_web_app",
}


def _source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def _imported_modules(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool
) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        return [node.module or ""]
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    if node.module:
        return [".".join([*base, node.module])]
    return [".".join([*base, alias.name]) for alias in node.names]


def imports(source: str, path: str, *, runtime_only: bool) -> list[str]:
    """Every module `source` imports; with runtime_only, skip `if TYPE_CHECKING:` bodies."""
    module = _module_name(path)
    is_package = path.endswith("__init__.py")
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and runtime_only and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.extend(_imported_modules(node, module, is_package))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source, filename=path))
    return found


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _import_time_nodes(tree: ast.Module) -> Iterator[ast.AST]:
    """Nodes evaluated when the module is imported: not function bodies, not `__main__` code."""

    def walk(node: ast.AST) -> Iterator[ast.AST]:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            children: list[ast.AST] = [*node.decorator_list]
            children += [d for d in (*node.args.defaults, *node.args.kw_defaults) if d]
            if node.returns is not None:
                children.append(node.returns)
        elif isinstance(node, ast.Lambda):
            children = [d for d in (*node.args.defaults, *node.args.kw_defaults) if d]
        elif isinstance(node, ast.If) and (
            _is_main_guard(node.test) or _is_type_checking(node.test)
        ):
            children = list(node.orelse)
        else:
            children = list(ast.iter_child_nodes(node))
        for child in children:
            yield from walk(child)

    yield from walk(tree)


def import_time_calls(source: str, path: str) -> list[str]:
    """Forbidden calls that run at import, as 'name (line n)'."""
    return [
        f"{_call_name(node)} (line {node.lineno})"
        for node in _import_time_nodes(ast.parse(source, filename=path))
        if isinstance(node, ast.Call) and _call_name(node) in FORBIDDEN_AT_IMPORT
    ]


def _is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# The checker itself


def test_checker_finds_plain_relative_and_nested_imports() -> None:
    source = (
        "import os, agents.items\n"
        "from bot import config\n"
        "from . import sibling\n"
        "from .models import Approval\n"
        "def later() -> None:\n"
        "    import agents\n"
    )

    found = imports(source, "storage/repositories.py", runtime_only=True)

    assert found == ["os", "agents.items", "bot", "storage.sibling", "storage.models", "agents"]


def test_checker_ignores_type_checking_imports_only_when_asked() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import typing\n"
        "if TYPE_CHECKING:\n"
        "    from agents import Model\n"
        "if typing.TYPE_CHECKING:\n"
        "    import agents.run\n"
        "else:\n"
        "    import json\n"
    )

    assert imports(source, "bot/app.py", runtime_only=True) == ["typing", "typing", "json"]
    assert "agents" in imports(source, "bot/app.py", runtime_only=False)


def test_checker_flags_calls_that_run_at_import() -> None:
    source = (
        "from bot.settings import Settings\n"
        "settings = Settings()\n"
        "class Holder:\n"
        "    engine = sqlalchemy.ext.asyncio.create_async_engine('sqlite+aiosqlite://')\n"
        "@register(AsyncApp())\n"
        "def handler(app=build_app(settings)) -> None:\n"
        "    Database('x')\n"
        "def factory() -> None:\n"
        "    Settings()\n"
        "if __name__ == '__main__':\n"
        "    build_app(Settings())\n"
    )

    found = import_time_calls(source, "bot/example.py")

    assert found == [
        "Settings (line 2)",
        "create_async_engine (line 4)",
        "AsyncApp (line 5)",
        "build_app (line 6)",
    ]


# The rules, on the real code


def test_the_checker_sees_the_packages() -> None:
    files = {_relative(p) for p in _source_files()}

    assert any(f.startswith(AGENT_PACKAGE) for f in files)
    assert "storage/queue.py" in files
    assert "bot/__main__.py" in files


@pytest.mark.parametrize(
    "path",
    [p for p in _source_files() if _relative(p).startswith("storage/")],
    ids=_relative,
)
def test_storage_never_imports_bot(path: Path) -> None:
    relative = _relative(path)
    found = imports(path.read_text(encoding="utf-8"), relative, runtime_only=False)

    assert [name for name in found if _is_within(name, "bot")] == []


@pytest.mark.parametrize(
    "path",
    [p for p in _source_files() if not _relative(p).startswith(AGENT_PACKAGE)],
    ids=_relative,
)
def test_only_the_agent_package_imports_agents(path: Path) -> None:
    relative = _relative(path)
    found = imports(path.read_text(encoding="utf-8"), relative, runtime_only=True)

    assert [name for name in found if _is_within(name, "agents")] == []


@pytest.mark.parametrize("path", _source_files(), ids=_relative)
def test_nothing_is_built_at_import_time(path: Path) -> None:
    relative = _relative(path)

    assert import_time_calls(path.read_text(encoding="utf-8"), relative) == []


def _our_module(name: str, known: set[str]) -> str | None:
    """The module of ours that an import names (`from bot.slack import blocks` names one)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported_names(source: str, path: str) -> list[str]:
    """Like `imports`, but `from package import module` names the module itself."""
    found: list[str] = []
    module = _module_name(path)
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.ImportFrom):
            for base in _imported_modules(node, module, path.endswith("__init__.py")):
                found.extend([base, *(f"{base}.{alias.name}" for alias in node.names)])
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def import_cycles(sources: dict[str, str]) -> list[list[str]]:
    """Cycles among `sources` (path -> code), counting every import, TYPE_CHECKING included."""
    modules = {_module_name(path): path for path in sources}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported_names(sources[path], path):
            target = _our_module(name, set(modules))
            if target is not None and target != module and not module.startswith(target + "."):
                targets.add(target)
        graph[module] = targets
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_cycle_finder_sees_a_type_checking_cycle() -> None:
    sources = {
        "bot/a.py": "from bot.b import thing\n",
        "bot/b.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot.a import x\n"
        ),
        "bot/c.py": "from bot import a\n",
        "bot/d/__init__.py": "",
        "bot/d/e.py": "from bot.f import y\n",
        "bot/f.py": "from bot.d import e\n",
    }

    assert import_cycles(sources) == [["bot.a", "bot.b", "bot.a"], ["bot.d.e", "bot.f", "bot.d.e"]]


def test_no_import_cycles() -> None:
    sources = {_relative(p): p.read_text(encoding="utf-8") for p in _source_files()}

    assert import_cycles(sources) == []
