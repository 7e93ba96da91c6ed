"""Streaming checkpoint I/O: read one tensor at a time from HF safetensors folders, write sharded safetensors.

Pickle checkpoints (``.bin`` / ``.pt``) can run code when loaded, so they are refused unless ``allow_pickle=True``
(then loaded whole with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

SAFE_SINGLE, SAFE_INDEX = "model.safetensors", "model.safetensors.index.json"
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.bin", "model.pt")
ARCH_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
             "num_key_value_heads", "head_dim")
SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
              "chat_template.jinja")
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
           "I64": torch.int64, "I32": torch.int32, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def resolve_device(device: str) -> torch.device:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device={device!r} is not one of ['auto', 'cpu', 'cuda']")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


class CheckpointReader:
    """Lists tensor names / shapes / dtypes of an HF checkpoint folder without loading, loads one at a time."""

    def __init__(self, folder: str | Path, allow_pickle: bool = False):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"checkpoint folder not found: {self.folder}")
        self._pickled: dict[str, Tensor] | None = None
        self._files: dict[str, Path] = {}  # tensor name -> file
        self._meta: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        if (self.folder / SAFE_INDEX).exists():
            index = json.loads((self.folder / SAFE_INDEX).read_text())
            for name, file in index.get("weight_map", {}).items():
                self._files[name] = self.folder / file
        elif (self.folder / SAFE_SINGLE).exists():
            with safe_open(self.folder / SAFE_SINGLE, "pt") as handle:
                self._files = {name: self.folder / SAFE_SINGLE for name in handle.keys()}
        else:
            pickles = [p for p in PICKLE_FILES if (self.folder / p).exists()] + [p.name for p in self.folder.glob("*.bin")]
            if not pickles:
                raise FileNotFoundError(f"{self.folder}: no {SAFE_SINGLE} or {SAFE_INDEX} found")
            if not allow_pickle:
                raise ValueError(f"{self.folder}: only pickle checkpoints ({pickles[0]}) found; loading them can run "
                                 "arbitrary code. Convert to safetensors, or pass allow_pickle=True if you trust them")
            self._load_pickles(sorted(set(pickles)))
        for file in sorted(set(self._files.values())):
            if not file.exists():
                raise FileNotFoundError(f"{self.folder}: shard {file.name} listed in {SAFE_INDEX} is missing")
            with safe_open(file, "pt") as handle:
                for name in handle.keys():
                    if self._files.get(name) == file:
                        piece = handle.get_slice(name)
                        self._meta[name] = (tuple(piece.get_shape()), _DTYPES[piece.get_dtype()])
        missing = [n for n in self._files if n not in self._meta]
        if missing:
            raise ValueError(f"{self.folder}: tensors listed in {SAFE_INDEX} are missing from their shard: {missing[:5]}")

    def _load_pickles(self, files: list[str]) -> None:
        self._pickled = {}
        for file in files:
            if file.endswith(".index.json"):
                continue
            self._pickled.update(torch.load(self.folder / file, map_location="cpu", weights_only=True))
        self._meta = {n: (tuple(t.shape), t.dtype) for n, t in self._pickled.items()}

    @property
    def config(self) -> dict[str, Any]:
        path = self.folder / "config.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def names(self) -> list[str]:
        return list(self._meta)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name)[0]

    def dtype(self, name: str) -> torch.dtype:
        return self._entry(name)[1]

    def _entry(self, name: str) -> tuple[tuple[int, ...], torch.dtype]:
        if name not in self._meta:
            raise KeyError(f"{self.folder}: tensor {name!r} not found")
        return self._meta[name]

    def get(self, name: str, device: torch.device | str = "cpu", float32: bool = True) -> Tensor:
        """One tensor on ``device`` (float32 for floating tensors); NaN / inf raise naming the tensor."""
        self._entry(name)
        if self._pickled is not None:
            tensor = self._pickled[name]
        else:
            with safe_open(self._files[name], "pt", device="cpu") as handle:
                tensor = handle.get_tensor(name)
        tensor = tensor.to(device)
        if tensor.is_floating_point():
            if float32:
                tensor = tensor.float()
            # one cheap reduction first; the exact test only when the sum is not finite (NaN/inf or overflow)
            if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{self.folder}: tensor {name!r} contains NaN or inf")
        return tensor


def check_same_architecture(readers: list[CheckpointReader]) -> None:
    """config.json model_type and sizes must agree (vocab_size may differ; see the engine's vocab_policy)."""
    first = readers[0]
    for other in readers[1:]:
        a, b = first.config, other.config
        for key in ARCH_KEYS:
            if a.get(key) != b.get(key):
                raise ValueError(f"different architectures: {first.folder} has {key}={a.get(key)!r} but "
                                 f"{other.folder} has {key}={b.get(key)!r}")


class ShardedWriter:
    """Collects tensors into safetensors shards of at most ``max_shard_size`` bytes, writes the index at close."""

    def __init__(self, folder: str | Path, max_shard_size: int = 2 * 1024**3):
        self.folder = Path(folder)
        self.max_shard_size = int(max_shard_size)
        self._buffer: dict[str, Tensor] = {}
        self._buffer_bytes = 0
        self._shards: list[list[str]] = []
        self._total = 0

    def add(self, name: str, tensor: Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self._buffer and self._buffer_bytes + size > self.max_shard_size:
            self._flush()
        self._buffer[name] = tensor.detach().to("cpu").contiguous()
        self._buffer_bytes += size
        self._total += size

    def _flush(self) -> None:
        if not self._buffer:
            return
        save_file(self._buffer, str(self.folder / f"shard-{len(self._shards):05d}.tmp"), metadata={"format": "pt"})
        self._shards.append(list(self._buffer))
        self._buffer, self._buffer_bytes = {}, 0

    def close(self) -> list[Path]:
        self._flush()
        n = len(self._shards)
        if n == 1:
            (self.folder / "shard-00000.tmp").rename(self.folder / SAFE_SINGLE)
            return [self.folder / SAFE_SINGLE]
        weight_map, paths = {}, []
        for i, names in enumerate(self._shards):
            final = self.folder / f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            (self.folder / f"shard-{i:05d}.tmp").rename(final)
            paths.append(final)
            weight_map.update({name: final.name for name in names})
        index = {"metadata": {"total_size": self._total}, "weight_map": weight_map}
        (self.folder / SAFE_INDEX).write_text(json.dumps(index, indent=2) + "\n")
        return paths


def copy_side_files(source: Path, target: Path, config_updates: dict[str, Any] | None = None) -> list[str]:
    """Copy config, generation config and tokenizer files from ``source``; apply ``config_updates`` to config.json."""
    copied = []
    for name in SIDE_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
            copied.append(name)
    if config_updates and (target / "config.json").exists():
        config = json.loads((target / "config.json").read_text())
        config.update(config_updates)
        (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return copied
