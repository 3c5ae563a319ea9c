"""SQL lives only in the repositories (`clipforge/db/`): no other module writes a query.

The check reads the source, not the running code: every string literal outside `clipforge/db/`
(docstrings aside) is searched for the keywords of a statement. A query built elsewhere (an
f-string, `sql.SQL(...)`, a constant) is a string literal too, so it is found.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[3]
_PACKAGES = ("clipforge", "models", "pipelines", "serve_apps")
_ALLOWED = _ROOT / "clipforge" / "db"  # the pool, migrations and the repositories
_STATEMENT = re.compile(r"\b(SELECT |UPDATE |INSERT INTO|DELETE FROM)")


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def sql_outside_repositories(root: Path = _ROOT) -> list[str]:
    """`path:line: text` of every string literal outside clipforge/db/ that holds a statement."""
    hits: list[str] = []
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if path.is_relative_to(root / "clipforge" / "db"):
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            skip = _docstrings(tree)
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and id(node) not in skip
                    and _STATEMENT.search(node.value)
                ):
                    first = node.value.strip().splitlines()[0][:60]
                    hits.append(f"{path.relative_to(root)}:{node.lineno}: {first}")
    return hits


def test_no_sql_outside_the_repositories() -> None:
    assert sql_outside_repositories() == [], "move these queries into clipforge/db/repo/"


def test_the_check_finds_a_query_in_an_fstring_and_ignores_docstrings(tmp_path: Path) -> None:
    module = tmp_path / "pipelines" / "stray.py"
    module.parent.mkdir()
    module.write_text(
        '"""Docs may say SELECT * FROM videos."""\n'
        "def f(conn, t):\n"
        '    """Nor here: UPDATE jobs SET state."""\n'
        '    return conn.execute(f"DELETE FROM {t} WHERE id = 1")\n'
    )
    for package in ("clipforge", "models", "serve_apps"):
        (tmp_path / package).mkdir()
    assert sql_outside_repositories(tmp_path) == ["pipelines/stray.py:4: DELETE FROM"]
