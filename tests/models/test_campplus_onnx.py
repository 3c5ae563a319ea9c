"""The speaker encoder's ONNX graph: the same embeddings as the torch network, and no torch in
the process that uses it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from clipforge.errors import ConfigError
from models import campplus, campplus_onnx, onnx_graphs
from models.speakers import SpeakerEncoder


def test_export_matches_the_torch_network(tmp_path: Path) -> None:
    import torch

    dest = campplus_onnx.export(tmp_path / "campplus.onnx")
    assert dest.is_file() and not list(tmp_path.glob(".*.tmp"))  # renamed, nothing left over
    network = campplus_onnx.torch_network()
    assert campplus_onnx.check(network, dest) < 1e-4

    # A graph of other weights is refused by the same check.
    with torch.no_grad():
        network.head.conv1.weight.mul_(1.5)
    with pytest.raises(ConfigError, match="differs from torch"):
        campplus_onnx.check(network, dest)


def test_encoder_exports_once_in_a_child_and_never_loads_torch(tmp_path: Path) -> None:
    """Two processes opening the encoder where no graph is yet: both get one graph, exported
    once (the lock) into the first writable folder, and neither imports torch itself."""
    blocked = tmp_path / "read-only-env"
    blocked.write_text("")  # a file: no folder can be made under it (as root, unlike chmod)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import numpy as np
        from models import onnx_graphs
        from models.speakers import SpeakerEncoder
        onnx_graphs.graph_folders = lambda data_dir: [
            Path({str(blocked)!r}) / "models", Path(data_dir) / "models"
        ]
        encoder = SpeakerEncoder(data_dir={str(tmp_path)!r})
        encoder.embed(np.random.default_rng(0).standard_normal(32000).astype("float32"), [(0, 1)])
        print("torch" in sys.modules, encoder.path)
        """
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    expected = tmp_path / "models" / campplus_onnx.graph_name()
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert out.split() == ["False", str(expected)]
    assert sorted(p.name for p in expected.parent.iterdir() if not p.name.endswith(".lock")) == [
        expected.name
    ]


def test_the_environment_folder_comes_first(tmp_path: Path) -> None:
    """A graph in the Python environment serves every data dir (no export per fresh DATA_DIR,
    as a pod's empty volume would have)."""
    folders = onnx_graphs.graph_folders(tmp_path)
    assert folders[0] == Path(sys.prefix) / "share" / "clipforge" / "models"
    assert folders[1] == tmp_path / "models"
    assert SpeakerEncoder(data_dir=tmp_path).path == folders[0] / campplus_onnx.graph_name()
    assert not (tmp_path / "models").exists()


def test_windows_embed_like_the_torch_network(test_media: dict[str, Path]) -> None:
    """Real speech windows through the encoder and through the torch network: the same unit
    vectors (the export check uses random features; this uses the filterbank of a voice)."""
    import torch

    from clipforge.media import decode_audio

    audio = decode_audio(test_media["speech_short"])[: 8 * campplus.SAMPLE_RATE]
    bank = campplus.fbank(audio)
    spans = [bank[s : s + 80] for s in range(0, len(bank) - 80, 20)]
    encoder = SpeakerEncoder()
    got = encoder._forward(spans)
    network = campplus_onnx.torch_network()
    with torch.inference_mode():
        raw = network(torch.from_numpy(np.stack([campplus.normalise(f) for f in spans]))).numpy()
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    assert got.shape == (len(spans), campplus.EMBEDDING_DIM)
    assert float(np.abs(got - expected).max()) < 1e-4
