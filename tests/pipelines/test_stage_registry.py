"""The stage registry (`clipforge.stages.STAGES`) is the one list of stages: nothing in the source
folders lists stage names again, and every entry resolves to its driver class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from clipforge.stages import BACKFILL_STAGES, STAGE_NAMES, STAGES, stage_info, stage_of_kind
from pipelines.stages.base import BaseStage, stage_class

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FOLDERS = ("clipforge", "models", "pipelines", "serve_apps", "benchmarks", "scripts")
REGISTRY = ROOT / "clipforge" / "stages.py"
# Names a positional unpack of the stages would bind (`importer, transcribe, ... = stages`).
_STAGE_VARIABLES = {*STAGE_NAMES, "importer", "exporter", "detector", "transcriber"}


def enumerations(source: str) -> list[int]:
    """Lines where `source` lists two or more stages: a tuple, list, set or dict (keys) holding
    two stage names as strings, or an assignment unpacking into two stage-named variables."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        items: list[ast.expr | None] = []
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = list(node.elts)
        elif isinstance(node, ast.Dict):
            items = list(node.keys)
        names = {i.value for i in items if isinstance(i, ast.Constant) and i.value in STAGE_NAMES}
        if len(names) >= 2:
            lines.append(getattr(node, "lineno", 0))
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Tuple | ast.List):
                    bound = {e.id for e in target.elts if isinstance(e, ast.Name)}
                    if len(bound & _STAGE_VARIABLES) >= 2:
                        lines.append(node.lineno)
    return lines


def test_the_check_finds_the_forms_stages_were_listed_in() -> None:
    """The forms this repository used before the registry (so the scan below can fail)."""
    assert enumerations('STAGES = ("import", "transcribe", "detect", "export")') == [1]
    assert enumerations('LABELS = {"import": "import", "detect": "find clips"}') == [1]
    assert enumerations('p.add_argument("--stage", choices=["import", "detect"])') == [1]
    assert enumerations("importer, transcribe, detect, export = (s.actors for s in x)") == [1]
    assert enumerations('kind = "detect"\nok = stage in ("detect", "user")') == []


def test_no_stage_is_enumerated_outside_the_registry() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for folder in SOURCE_FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != REGISTRY
        for line in enumerations(path.read_text())
    ]
    assert found == [], f"stages listed outside clipforge/stages.py: {found}"


def test_every_entry_names_its_driver_class() -> None:
    for info in STAGES:
        cls = stage_class(info)
        assert issubclass(cls, BaseStage) and cls.name == info.name
    assert [s.name for s in STAGES] == list(STAGE_NAMES)
    assert set(BACKFILL_STAGES) < set(STAGE_NAMES)


def test_job_kinds_name_their_stage() -> None:
    assert stage_of_kind("detect") == "detect"
    assert stage_of_kind("backfill-detect") == "detect"
    assert stage_of_kind("backfill-detect", prefix="backfill-") == "detect"
    assert stage_of_kind("detect", prefix="backfill-") is None
    assert stage_of_kind("webhook.deliver") is None
    assert stage_info("export").label == "render clips"
    with pytest.raises(KeyError):
        stage_info("render")
