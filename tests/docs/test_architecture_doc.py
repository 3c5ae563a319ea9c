"""docs/architecture.md stays true: what it names exists, it names every module, and the rules
it states that can be read off the code hold.

Everything is read from the document itself (its backticked paths, patterns and dotted names),
so a paragraph added or a module moved needs no change here, only a true document. The code is
parsed, never imported: no model, Ray or database is loaded, and the whole file takes a few
seconds.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from clipforge.media.ffmpeg import COMMON_FLAGS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("clipforge", "models", "pipelines", "serve_apps")
TOP = (*PACKAGES, "benchmarks", "scripts", "configs", "cluster", "docs", "tests", "notebooks")

_SPAN = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s#]+)")
# A path inside a span: starts at a top-level folder, not in the middle of another path.
_PATH = re.compile(rf"(?<![\w/.-])((?:{'|'.join(TOP)})/[\w./*-]*)")
# A dotted name: a package, then modules and attributes (`python -m pipelines.batch.backfill` too).
_DOTTED = re.compile(rf"(?<![\w/.-])((?:{'|'.join(PACKAGES)}|benchmarks)(?:\.[A-Za-z_]\w*)+)")


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


@cache
def _named() -> tuple[frozenset[str], frozenset[str]]:
    """The paths (and patterns) and the dotted names the document names."""
    text = _doc()
    spans = _SPAN.findall(text)
    paths = {p.rstrip(".") for s in spans for p in _PATH.findall(s)}
    paths |= {p for p in _LINK.findall(text) if p.split("/", 1)[0] in TOP}
    dotted = {d for s in spans for d in _DOTTED.findall(s)}
    return frozenset(paths), frozenset(dotted)


def _matches(pattern: str) -> list[Path]:
    if any(c in pattern for c in "*?["):
        return sorted(ROOT.glob(pattern))
    path = ROOT / pattern
    return [path] if path.exists() else []


@cache
def _defined(module: Path) -> dict[str, ast.AST]:
    """Top-level names of a module (imports under `if TYPE_CHECKING` and `try` count)."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    names: dict[str, ast.AST] = {}
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update({t.id: node for t in targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update({(a.asname or a.name).split(".")[0]: node for a in node.names})
        elif isinstance(node, ast.If | ast.Try):
            todo.extend([*node.body, *node.orelse, *getattr(node, "finalbody", [])])
    return names


def _module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _resolves(dotted: str) -> bool:
    """`pkg.module[.attr[.attr]]`: the longest module prefix exists and defines the rest."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = _module_file(parts[:cut])
        if module is None:
            continue
        rest = parts[cut:]
        if not rest:
            return True
        node = _defined(module).get(rest[0])
        if node is None:
            return False
        if len(rest) == 1:
            return True
        # Class.member: a method or class attribute defined in the class body.
        return isinstance(node, ast.ClassDef) and any(
            getattr(item, "name", None) == rest[1]
            or any(getattr(t, "id", None) == rest[1] for t in getattr(item, "targets", []))
            or getattr(getattr(item, "target", None), "id", None) == rest[1]
            for item in node.body
        )
    return False


def test_the_document_names_paths_and_modules() -> None:
    paths, dotted = _named()
    # Guards against a parser that silently finds nothing.
    assert len(paths) > 50 and len(dotted) > 10, (len(paths), len(dotted))


def test_every_path_it_names_exists() -> None:
    paths, _ = _named()
    missing = sorted(p for p in paths if not _matches(p))
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_dotted_name_it_names_resolves() -> None:
    _, dotted = _named()
    missing = sorted(d for d in dotted if not _resolves(d))
    assert not missing, (
        f"docs/architecture.md names modules or objects that do not exist: {missing}"
    )


def _covered() -> set[Path]:
    """Module files the document names: by path, pattern, subpackage folder or dotted name."""
    paths, dotted = _named()
    covered: set[Path] = set()
    for pattern in paths:
        for match in _matches(pattern):
            if match.is_file():
                covered.add(match)
            elif match.is_dir() and match.relative_to(ROOT).as_posix() not in PACKAGES:
                covered.update(match.rglob("*.py"))
    for name in dotted:
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            module = _module_file(parts[:cut])
            if module is not None:
                covered.add(module)
                break
    return covered


def test_every_module_is_in_the_package_map() -> None:
    modules = {
        m for package in PACKAGES for m in (ROOT / package).rglob("*.py") if m.name != "__init__.py"
    }
    left_out = sorted(m.relative_to(ROOT).as_posix() for m in modules - _covered())
    assert not left_out, (
        "modules docs/architecture.md does not name (add them to its package map, by path, "
        f"pattern or their subpackage's folder): {left_out}"
    )


@cache
def _source_trees() -> list[tuple[Path, ast.Module]]:
    return [
        (m, ast.parse(m.read_text(encoding="utf-8")))
        for package in PACKAGES
        for m in sorted((ROOT / package).rglob("*.py"))
    ]


_SPAWNERS = {"run", "Popen", "check_output", "check_call", "call"}


def test_every_subprocess_gets_stdin() -> None:
    """The stdin rule: `stdin=` (or `input=`) on every subprocess call of the packages."""
    assert "Every subprocess gets `stdin=DEVNULL`" in _doc()  # the rule this test keeps
    bare = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _source_trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _SPAWNERS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "subprocess"
        and not {k.arg for k in node.keywords} & {"stdin", "input"}
    ]
    assert not bare, f"subprocess calls without stdin: {bare}"


def _passes_nostdin(element: ast.expr) -> bool:
    """`"-nostdin"` itself, or `*COMMON_FLAGS` (clipforge.media.ffmpeg's flags, which hold it)."""
    if isinstance(element, ast.Constant):
        return element.value == "-nostdin"
    return (
        isinstance(element, ast.Starred)
        and isinstance(element.value, ast.Name)
        and element.value.id == "COMMON_FLAGS"
        and "-nostdin" in COMMON_FLAGS
    )


def test_every_ffmpeg_command_line_has_nostdin() -> None:
    lines = [
        (path, node)
        for path, tree in _source_trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.List)
        and node.elts
        and isinstance(node.elts[0], ast.Call)
        and isinstance(node.elts[0].func, ast.Name)
        and node.elts[0].func.id == "ffmpeg_exe"
    ]
    without = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, node in lines
        if not any(_passes_nostdin(e) for e in node.elts)
    ]
    assert not without, f"ffmpeg command lines without -nostdin: {without}"


def _does_more_than_delegate(handler: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = list(handler.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    last = body[-1] if body else None
    if (
        len(body) == 2
        and isinstance(last, ast.Return)
        and isinstance(last.value, ast.Call)
        and getattr(last.value.func, "id", None) == "Response"
    ):
        body = body[:1]  # the empty answer of a 204
    return len(body) > 1


@pytest.mark.parametrize("router", sorted((ROOT / "serve_apps/api/routers").glob("[!_]*.py")))
def test_handlers_delegate_or_are_named(router: Path) -> None:
    """A route handler is one call to a service; one that does more is named in the document."""
    _, dotted = _named()
    module = ".".join(router.relative_to(ROOT).with_suffix("").parts)
    tree = ast.parse(router.read_text(encoding="utf-8"))
    handlers = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any(
            isinstance(d, ast.Call)
            and isinstance(d.func, ast.Attribute)
            and isinstance(d.func.value, ast.Name)
            and d.func.value.id == "router"
            for d in node.decorator_list
        )
    ]
    assert handlers, f"no route handlers found in {router}"
    unnamed = [
        f"{module}.{h.name}"
        for h in handlers
        if _does_more_than_delegate(h) and f"{module}.{h.name}" not in dotted
    ]
    assert not unnamed, (
        f"handlers that do more than call a service, not named in docs/architecture.md: {unnamed}"
    )
