"""The pipeline config as a file: what `save` writes, `load_pipeline_config` reads back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clipforge.errors import ConfigError
from pipelines.config import DEFAULT_CONFIG, load_pipeline_config


def test_saved_config_loads_back_equal(tmp_path: Path) -> None:
    config = load_pipeline_config(
        transcribe__speaker_turns=False, import__num_cpus=0.5, worker__shared_pools=[]
    )
    path = config.save(tmp_path / "pipeline.yaml")
    assert load_pipeline_config(path) == config
    # The file spells sections as the shipped one does (`import`, not the attribute `import_`).
    assert set(yaml.safe_load(path.read_text())) == set(yaml.safe_load(DEFAULT_CONFIG.read_text()))


def test_renamed_keys_still_load(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
    old.write_text("transcribe:\n  asr_actors_max: 1\n")
    assert load_pipeline_config(old).transcribe.asr_actors == 1
    assert load_pipeline_config(transcribe__asr_actors_max=1).transcribe.asr_actors == 1


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("transcribe:\n  asr_actorz: 1\n", "asr_actorz"),
        ("detect:\n  top_k: -1\n", "top_k"),
        ("detect: [1\n", "cannot read"),
    ],
)
def test_bad_files_name_what_is_wrong(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=names):
        load_pipeline_config(path)
