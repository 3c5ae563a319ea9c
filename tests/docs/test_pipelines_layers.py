"""The subpackages of `pipelines/` import each other in the one direction docs/architecture.md
states (`local`, `batch` -> `engine` -> `stages` -> `render` -> `config`).

The order is read from the document's chain of arrows, so the document and this test cannot
drift apart; the code is parsed, never imported (imports inside functions count too).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
# The chain starts at a subpackage folder (a chain of modules, such as a call path, does not).
_CHAIN = re.compile(r"`pipelines/\w+/`(?:\s+and\s+`pipelines/\w+/`)?(?:\s+->\s+`[^`]+`)+")
_PART = re.compile(r"`pipelines/(\w+)(?:\.py|/)`")


def _ranks() -> dict[str, int]:
    """Part name (`engine`, `config`, ...) -> its place in the chain, 0 at the top."""
    text = " ".join(DOC.read_text(encoding="utf-8").split())  # the chain may wrap
    chains = _CHAIN.findall(text)
    assert len(chains) == 1, f"expected one chain of pipelines/ parts in the document: {chains}"
    return {
        name: rank
        for rank, step in enumerate(chains[0].split("->"))
        for name in _PART.findall(step)
    }


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "pipelines" and len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def test_the_document_orders_every_part() -> None:
    ranks = _ranks()
    parts = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "pipelines").iterdir()
        if p.name != "__init__.py" and (p.suffix == ".py" or (p / "__init__.py").is_file())
    }
    assert parts == set(ranks), f"parts of pipelines/ {sorted(parts)}, in the chain {ranks}"


def test_imports_between_parts_point_down_the_chain() -> None:
    ranks = _ranks()
    upward = []
    for path in sorted((ROOT / "pipelines").rglob("*.py")):
        here = _part(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if here is None or here == "__init__":
            continue
        for line, module in _imports(path):
            there = _part(module)
            if there is not None and there != here and ranks[there] <= ranks[here]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not upward, f"imports against the order of docs/architecture.md: {upward}"
