"""Streaming checkpoint I/O: read one tensor at a time from HF safetensors folders, write sharded safetensors.

Pickle checkpoints (``.bin`` / ``.pt``) can run code when loaded, so they are refused unless ``allow_pickle=True``
(then loaded whole with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from lrmerge.errors import UserError

SAFE_SINGLE, SAFE_INDEX = "model.safetensors", "model.safetensors.index.json"
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.bin", "model.pt")
ARCH_KEYS = ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "num_attention_heads",
             "num_key_value_heads", "head_dim")
SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
              "chat_template.jinja")
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


def resolve_device(device: str) -> torch.device:
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device={device!r} is not one of ['auto', 'cpu', 'cuda']")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _read_json(path: Path) -> Any:
    """A JSON file; a broken or non-UTF-8 one raises a UserError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from error
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from error


class CheckpointReader:
    """Lists tensor names / shapes / dtypes of an HF checkpoint folder without loading, loads one at a time."""

    def __init__(self, folder: str | Path, allow_pickle: bool = False):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"checkpoint folder not found: {self.folder}")
        try:
            self._open(allow_pickle)
        except SafetensorError as error:
            raise UserError(f"{self.folder}: a safetensors file is unreadable ({error})") from error

    def _open(self, allow_pickle: bool) -> None:
        self._pickled: dict[str, Tensor] | None = None
        self._files: dict[str, Path] = {}  # tensor name -> file
        self._meta: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        if (self.folder / SAFE_INDEX).exists():
            index = _read_json(self.folder / SAFE_INDEX)
            if not isinstance(index, dict) or not isinstance(index.get("weight_map", {}), dict):
                raise UserError(f"{self.folder / SAFE_INDEX}: expected an object with a weight_map")
            for name, file in index.get("weight_map", {}).items():
                self._files[name] = self.folder / file
        elif (self.folder / SAFE_SINGLE).exists():
            with _safe_open(self.folder / SAFE_SINGLE) as handle:
                self._files = {name: self.folder / SAFE_SINGLE for name in handle.keys()}
        else:
            pickles = [p for p in PICKLE_FILES if (self.folder / p).exists()] + [p.name for p in self.folder.glob("*.bin")]
            if not pickles:
                raise FileNotFoundError(f"{self.folder}: no {SAFE_SINGLE} or {SAFE_INDEX} found")
            if not allow_pickle:
                raise ValueError(f"{self.folder}: only pickle checkpoints ({pickles[0]}) found; loading them can run "
                                 "arbitrary code. Convert to safetensors, or pass --allow-pickle (allow_pickle=True) if you trust them")
            self._load_pickles(sorted(set(pickles)))
        for file in sorted(set(self._files.values())):
            if not file.exists():
                raise FileNotFoundError(f"{self.folder}: shard {file.name} listed in {SAFE_INDEX} is missing")
            with _safe_open(file) as handle:
                for name in handle.keys():
                    if self._files.get(name) == file:
                        piece = handle.get_slice(name)
                        self._meta[name] = (tuple(piece.get_shape()), _DTYPES[piece.get_dtype()])
        self._offsets: dict[str, int] = {}  # tensor name -> byte offset of its data in its file
        for file in sorted(set(self._files.values())):
            for name, start in _data_offsets(file).items():
                if self._files.get(name) == file:
                    self._offsets[name] = start
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
        return _read_json(path) if path.exists() else {}

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
            try:
                with safe_open(self._files[name], "pt", device="cpu") as handle:
                    tensor = handle.get_tensor(name)
            except SafetensorError as error:
                raise UserError(f"{self._files[name]}: tensor {name!r} is unreadable ({error})") from error
        tensor = tensor.to(device)
        if tensor.is_floating_point():
            if float32:
                tensor = tensor.float()
            self.check_finite(name, tensor)
        return tensor


    def read_flat(self, name: str, start: int, stop: int) -> Tensor:
        """Elements [start, stop) of the flattened tensor, in its stored dtype, read straight from the file
        (no mmap: only these bytes are held)."""
        shape, dtype = self._entry(name)
        numel = int(torch.Size(shape).numel())
        if not 0 <= start <= stop <= numel:
            raise ValueError(f"{self.folder}: range [{start}, {stop}) outside tensor {name!r} of {numel} elements")
        if self._pickled is not None:
            return self._pickled[name].reshape(-1)[start:stop]
        size = torch.empty((), dtype=dtype).element_size()
        out = torch.empty((stop - start) * size, dtype=torch.uint8)
        with open(self._files[name], "rb", buffering=0) as handle:
            got = os.preadv(handle.fileno(), [out.numpy()], self._offsets[name] + start * size)
        if got != out.numel():
            raise ValueError(f"{self.folder}: {self._files[name].name} is truncated inside tensor {name!r}")
        return out.view(dtype)

    def check_finite(self, name: str, tensor: Tensor) -> None:
        """NaN / inf raise naming the tensor (one cheap sum first, the exact test only if that is not finite)."""
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{self.folder}: tensor {name!r} contains NaN or inf")


def _safe_open(file: Path):
    try:
        return safe_open(file, "pt")
    except SafetensorError as error:
        raise UserError(f"{file}: not a readable safetensors file ({error})") from error


def _data_offsets(file: Path) -> dict[str, int]:
    """Byte offset in ``file`` where each tensor's data starts (safetensors: 8-byte header length, JSON header)."""
    with open(file, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        try:
            header = json.loads(handle.read(length))
        except (ValueError, MemoryError) as error:
            raise UserError(f"{file}: not a readable safetensors header ({error})") from error
    return {name: 8 + length + entry["data_offsets"][0] for name, entry in header.items() if name != "__metadata__"}


def check_same_architecture(readers: list[CheckpointReader]) -> None:
    """config.json model_type and sizes must agree (vocab_size may differ; see the engine's vocab_policy)."""
    first = readers[0]
    for other in readers[1:]:
        a, b = first.config, other.config
        for key in ARCH_KEYS:
            if a.get(key) != b.get(key):
                raise ValueError(f"different architectures: {first.folder} has {key}={a.get(key)!r} but "
                                 f"{other.folder} has {key}={b.get(key)!r}")


def check_written(name: str, tensor: Tensor) -> None:
    """Every tensor written is finite, checked in the dtype it is stored in (after the cast: a finite float32 merge
    can overflow float16's +-65504 to inf)."""
    if tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor.sum())) \
            and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        hint = (f"; the {tensor.dtype} cast overflowed (finite range +-{torch.finfo(tensor.dtype).max:.4g}): "
                "use out_dtype: float32 or bfloat16" if tensor.dtype in (torch.float16, torch.bfloat16) else "")
        raise UserError(f"merged tensor {name!r} has {bad} NaN or inf value(s) in {tensor.dtype}{hint}; nothing was "
                        "written")


class ShardedWriter:
    """Writes safetensors shards of at most ``max_shard_size`` bytes and, for several shards, the index.

    With a ``layout`` (name, shape, dtype in writing order, known before merging) each shard's header is written
    first and every tensor's bytes are appended as they are produced (``add`` whole, or ``append`` in flat pieces):
    nothing is buffered. Without one, tensors are buffered in memory up to a shard and written with save_file.
    """

    def __init__(self, folder: str | Path, max_shard_size: int = 2 * 1024**3,
                 layout: Sequence[tuple[str, Sequence[int], torch.dtype]] | None = None):
        self.folder = Path(folder)
        self.max_shard_size = int(max_shard_size)
        self._buffer: dict[str, Tensor] = {}
        self._buffer_bytes = 0
        self._shards: list[list[str]] = []
        self._total = 0
        self._layout = None if layout is None else [(n, tuple(int(d) for d in shape), dtype) for n, shape, dtype in layout]
        if self._layout is not None:
            self._plan_shards()

    # ------------------------------------------------------------ streaming (layout known)

    def _plan_shards(self) -> None:
        sizes = {n: int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
                 for n, shape, dtype in self._layout}
        current, current_bytes = [], 0
        for name, _, _ in self._layout:
            if current and current_bytes + sizes[name] > self.max_shard_size:
                self._shards.append(current)
                current, current_bytes = [], 0
            current.append(name)
            current_bytes += sizes[name]
        if current or not self._shards:
            self._shards.append(current)
        self._sizes, self._total = sizes, sum(sizes.values())
        self._shard_of = {n: i for i, names in enumerate(self._shards) for n in names}
        self._order = [n for n, _, _ in self._layout]
        self._next, self._written, self._handle, self._open_shard = 0, 0, None, -1

    def _header(self, shard: int) -> bytes:
        entries: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        meta = {n: (shape, dtype) for n, shape, dtype in self._layout}
        offset = 0
        for name in self._shards[shard]:
            shape, dtype = meta[name]
            entries[name] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape),
                             "data_offsets": [offset, offset + self._sizes[name]]}
            offset += self._sizes[name]
        header = json.dumps(entries, separators=(",", ":")).encode()
        header += b" " * (-len(header) % 8)  # pad to a multiple of 8 (safetensors alignment)
        return len(header).to_bytes(8, "little") + header

    def append(self, name: str, piece: Tensor) -> None:
        """The next flat piece of tensor ``name`` (layout order; pieces in flat order, in the layout's dtype)."""
        if self._layout is None:
            raise ValueError("ShardedWriter.append needs a layout")
        if self._next >= len(self._order) or self._order[self._next] != name:
            expected = self._order[self._next] if self._next < len(self._order) else "nothing (all written)"
            raise ValueError(f"ShardedWriter: got tensor {name!r}, expected {expected!r} (layout order)")
        _, shape, dtype = self._layout[self._next]
        if piece.dtype != dtype:
            raise ValueError(f"ShardedWriter: tensor {name!r} has dtype {piece.dtype}, layout says {dtype}")
        shard = self._shard_of[name]
        if shard != self._open_shard:
            self._close_handle()
            self._handle = open(self.folder / f"shard-{shard:05d}.tmp", "wb")
            self._handle.write(self._header(shard))
            self._open_shard = shard
        check_written(name, piece)
        data = piece.detach().to("cpu").contiguous().reshape(-1)
        size = data.numel() * data.element_size()
        if self._written + size > self._sizes[name]:
            raise ValueError(f"ShardedWriter: tensor {name!r} got more than its {self._sizes[name]} bytes "
                             f"(shape {list(shape)})")
        if size:
            self._handle.write(memoryview(data.view(torch.uint8).numpy()))
        self._written += size
        if self._written == self._sizes[name]:
            self._next, self._written = self._next + 1, 0

    def _close_handle(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    # ------------------------------------------------------------ both modes

    def add(self, name: str, tensor: Tensor) -> None:
        if self._layout is not None:
            expected = self._layout[self._next] if self._next < len(self._layout) else None
            if expected is not None and expected[0] == name and tuple(tensor.shape) != expected[1]:
                raise ValueError(f"ShardedWriter: tensor {name!r} has shape {tuple(tensor.shape)}, "
                                 f"layout says {expected[1]}")
            self.append(name, tensor)  # checks the order and the dtype
            return
        check_written(name, tensor)
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
        if self._layout is not None:
            self._close_handle()
            if self._next < len(self._order):
                raise ValueError(f"ShardedWriter: tensor {self._order[self._next]!r} and later ones were never written")
        else:
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
