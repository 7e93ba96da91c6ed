"""The ledger of SFT against every CT checkpoint, streamed one tensor at a time, as a tidy table (cached).

For each tensor name, SFT's task vector and its trim threshold are computed once. Plain TIES (slack 0, the paper's
Figures 3-4) streams every checkpoint's tensor in blocks and counts chunk by chunk (``chunked.streamed_ledgers``:
the merge's own trim and election primitives, no masks, no merged tensor). TIES-SV (slack > 0: a per-tensor
selection) merges each checkpoint with ``tensor_ledger`` and reads its masks, reusing SFT's trim mask.
Rows: one per (checkpoint, tensor); columns ``TABLE_COLUMNS``.

The table is cached under ``runs/conflicts/cache/<key>/`` keyed by the model files (path, size, mtime), densities
and slack, so re-plotting never recomputes; an interrupted run resumes from ``ledger.partial.csv``.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from lrmerge.conflicts.chunked import fast_path, streamed_ledgers
from lrmerge.conflicts.columns import LEDGER_FIELDS, TABLE_COLUMNS
from lrmerge.conflicts.ledger import tensor_ledger
from lrmerge.conflicts.names import parse_tensor_name
from lrmerge.merge.checkpoint import CheckpointReader, resolve_device
from lrmerge.merge.methods import get_method, tensor_seeds
from lrmerge.merge.fastpath import serial_cpu
from lrmerge.merge.primitives import task_vector, trim_mask
from lrmerge.runs import RUN_RECORD, atomic_output_dir, atomic_write_text, config_key, runs_root, write_run_record

_TOKENS_IN_NAME = re.compile(r"tokens[-_]?(\d+)")
TABLE_FILE = "ledger.parquet"
PARTIAL_FILE = "ledger.partial.csv"


def ct_tokens_of(checkpoint: str | Path) -> float:
    """CT tokens of a checkpoint: ``ct_tokens`` or ``tokens_seen`` in its ``lrmerge_run.json`` (top level or in
    ``config``), else the number in a folder name like ``tokens-000123456``, else NaN."""
    folder = Path(checkpoint)
    record_path = folder / RUN_RECORD
    if record_path.exists():
        try:
            record = json.loads(record_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{record_path}: not valid JSON ({error})") from error
        for scope in (record, record.get("config") or {}):
            for field in ("ct_tokens", "tokens_seen"):
                if scope.get(field) is not None:
                    return float(scope[field])
    match = _TOKENS_IN_NAME.search(folder.name)
    return float(match.group(1)) if match else float("nan")


def model_fingerprint(folder: str | Path) -> list:
    """(file, size, mtime_ns) of every weight file in ``folder``: part of the cache key."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".json")) if folder.is_dir() else []
    if not any(p.suffix == ".safetensors" for p in files):
        raise FileNotFoundError(f"{folder}: no *.safetensors weights (expected a Hugging Face model folder)")
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.name != RUN_RECORD]


def series_config(base, sft, cts, density_sft: float, density_ct: float, slack: float, slack_of: str,
                  method: str = "ties", random_seed: int = 0) -> dict:
    config = {
        "base": str(Path(base).resolve()), "sft": str(Path(sft).resolve()),
        "ct": [str(Path(c).resolve()) for c in cts],
        "density_sft": density_sft, "density_ct": density_ct, "slack": slack, "slack_of": slack_of,
        "weights": [1.0, 1.0], "election": "sum", "priority": "sft",
    }
    if method not in ("ties", "ties_sv"):  # TIES keeps the keys of tables cached by older code
        spec = get_method(method)
        if not spec.uses_masks:
            raise ValueError(f"merge method {method!r} elects no signs: no sign-conflict ledger")
        config["method"] = method
        if spec.random:
            config["random_seed"] = int(random_seed)
    return config


def conflict_series(
    base: str | Path,
    sft: str | Path,
    cts: Sequence[str | Path],
    *,
    density_sft: float = 0.2,
    density_ct: float = 1.0,
    slack: float = 0.0,
    slack_of: str = "kept",
    device: str = "auto",
    cache_dir: str | Path | None = None,
    refresh: bool = False,
    progress: bool = True,
    method: str = "ties",
    random_seed: int = 0,
) -> pd.DataFrame:
    """The tidy ledger table of SFT vs each CT checkpoint (cached; see module doc). Paper: (0.2, 1.0), slack 0.
    ``method``: any registered method that elects signs (its registry defaults; ``random_seed`` for random ones)."""
    if not cts:
        raise ValueError("need at least one CT checkpoint")
    config = series_config(base, sft, cts, density_sft, density_ct, slack, slack_of, method, random_seed)
    key = config_key({**config, "files": {str(p): model_fingerprint(p) for p in [base, sft, *cts]}})
    folder = Path(cache_dir) if cache_dir is not None else runs_root() / "conflicts" / "cache"
    entry = folder / key
    if (entry / TABLE_FILE).exists() and not refresh:
        return read_table(entry / TABLE_FILE)
    partial = folder / f".{key}.{PARTIAL_FILE}"
    if refresh:
        partial.unlink(missing_ok=True)
    table = compute_series(base, sft, cts, density_sft=density_sft, density_ct=density_ct, slack=slack,
                           slack_of=slack_of, device=device, partial=partial, progress=progress, method=method,
                           random_seed=random_seed)
    with atomic_output_dir(entry, overwrite=True) as tmp:
        table.to_parquet(tmp / TABLE_FILE, index=False)
        write_run_record(tmp, config, seed=None, cache_key=key, rows=len(table))
    partial.unlink(missing_ok=True)
    return table


def compute_series(
    base, sft, cts, *, density_sft=0.2, density_ct=1.0, slack=0.0, slack_of="kept", device="auto",
    partial: str | Path | None = None, progress: bool = True, method: str = "ties", random_seed: int = 0,
) -> pd.DataFrame:
    """Stream every tensor once (no cache). ``partial``: a CSV that rows are appended to per finished tensor and
    that a rerun resumes from."""
    dev = resolve_device(device)
    base_ckpt, sft_ckpt = CheckpointReader(base), CheckpointReader(sft)
    ct_ckpts = [CheckpointReader(c) for c in cts]
    names = check_same_tensors(base, base_ckpt, [(sft, sft_ckpt), *zip(cts, ct_ckpts)])
    labels = checkpoint_labels(cts)
    tokens = [ct_tokens_of(c) for c in cts]
    done, rows = set(), []
    if partial is not None and Path(partial).exists():
        previous = read_table(partial)
        complete = previous.groupby("tensor")["checkpoint"].nunique() == len(cts)
        done = set(complete[complete].index)
        rows = previous[previous["tensor"].isin(done)].to_dict("records")
    todo = [n for n in names if n not in done]
    writer = _PartialWriter(partial) if partial is not None else None
    for name in tqdm(todo, desc="sign-conflict ledger", unit="tensor", disable=not progress):
        if not base_ckpt.dtype(name).is_floating_point:
            continue
        # one intra-op thread on CPU, as the merge primitives' own fast path: OpenMP barriers cost more than they
        # save here (measured on 2 busy cores: 84 s -> see benchmarks/conflict_speed.py)
        with serial_cpu(dev):
            tensor_rows = _tensor_rows(name, base_ckpt, sft_ckpt, list(zip(labels, tokens, ct_ckpts)), dev,
                                       density_sft, density_ct, slack, slack_of, method, random_seed)
        if writer is not None:
            writer.append(tensor_rows)
        rows.extend(tensor_rows)
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return normalise_table(table)


def _tensor_rows(name, base_ckpt, sft_ckpt, cts, dev, density_sft, density_ct, slack, slack_of, method="ties",
                 random_seed=0) -> list[dict]:
    """Ledger rows of one tensor for every CT checkpoint; SFT's task vector and trim are computed once."""
    layer, module = parse_tensor_name(name)
    if method not in ("ties", "ties_sv"):  # another sign-electing method: its reference merge's masks
        base_t, sft_t = base_ckpt.get(name, device=dev), sft_ckpt.get(name, device=dev)
        rows = []
        for label, ct_tokens, ckpt in cts:
            _, led = tensor_ledger(base_t, [sft_t, ckpt.get(name, device=dev)], [density_sft, density_ct],
                                   method=method, slack=slack, slack_of=slack_of,
                                   seeds=tensor_seeds(random_seed, name, 2) if get_method(method).random else None)
            rows.append({"checkpoint": label, "ct_tokens": ct_tokens, "tensor": name, "layer": layer,
                         "module": module, **led})
        return rows
    if fast_path(slack=slack):  # unit weights and sum election (series_config): only slack decides
        readers = [base_ckpt, sft_ckpt, *(ckpt for _, _, ckpt in cts)]

        def read(model: int, start: int, stop: int):
            piece = readers[model].read_flat(name, start, stop).to(dev).float()
            readers[model].check_finite(name, piece)
            return piece

        numel = int(math.prod(base_ckpt.shape(name)))
        ledgers = streamed_ledgers(read, numel, density_sft, [density_ct] * len(cts), device=dev)
        return [{"checkpoint": label, "ct_tokens": ct_tokens, "tensor": name, "layer": layer, "module": module, **led}
                for (label, ct_tokens, _), led in zip(cts, ledgers)]
    base_t = base_ckpt.get(name, device=dev)
    sft_t = sft_ckpt.get(name, device=dev)
    tau_sft = task_vector(sft_t, base_t)
    kept_sft = trim_mask(tau_sft, density_sft)  # reused for every checkpoint
    rows = []
    for label, ct_tokens, ckpt in cts:
        ct_t = ckpt.get(name, device=dev)
        tau_ct = task_vector(ct_t, base_t)
        kept_ct = trim_mask(tau_ct, density_ct)
        _, led = tensor_ledger(base_t, [sft_t, ct_t], [density_sft, density_ct], slack=slack, slack_of=slack_of,
                               kept=[kept_sft, kept_ct], task_vectors=[tau_sft, tau_ct])
        rows.append({"checkpoint": label, "ct_tokens": ct_tokens, "tensor": name, "layer": layer, "module": module,
                     **led})
        del ct_t, tau_ct, kept_ct
    return rows


def check_same_tensors(base_path, base_ckpt, others: Iterable) -> list[str]:
    """Tensor names of BASE, after checking every other checkpoint has the same names and shapes."""
    shapes = {name: base_ckpt.shape(name) for name in base_ckpt.names()}
    for path, ckpt in others:
        other = {name: ckpt.shape(name) for name in ckpt.names()}
        missing = sorted(set(shapes) - set(other))
        if missing:
            raise ValueError(f"{path}: missing tensor(s) present in base {base_path}: {missing[:5]}")
        for name, shape in shapes.items():
            if tuple(other[name]) != tuple(shape):
                raise ValueError(f"{path}: tensor {name} has shape {tuple(other[name])}, base has {tuple(shape)}")
    return list(shapes)


def checkpoint_labels(cts: Sequence[str | Path]) -> list[str]:
    """Short unique labels: the folder names, or parent/name when two folders share a name."""
    names = [Path(c).name for c in cts]
    if len(set(names)) == len(names):
        return names
    return [f"{Path(c).parent.name}/{Path(c).name}" for c in cts]


def normalise_table(table: pd.DataFrame) -> pd.DataFrame:
    """Column order and dtypes of a ledger table (integer counts, nullable integer layer)."""
    table = table[list(TABLE_COLUMNS)].copy()
    for name in LEDGER_FIELDS:
        table[name] = table[name].astype("float64" if name.endswith("_l1") else "int64")
    table["ct_tokens"] = table["ct_tokens"].astype("float64")
    table["layer"] = table["layer"].astype("Int64")
    for name in ("checkpoint", "tensor", "module"):
        table[name] = table[name].astype(str)
    return table


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a ledger table (.parquet or .csv) and check its columns."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ledger table not found: {path}")
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a conflict ledger table, missing column(s) {missing}")
    return normalise_table(table)


def write_table(table: pd.DataFrame, path: str | Path, config: dict | None = None) -> Path:
    """Write the table atomically as CSV (or parquet by suffix), with ``<name>.lrmerge_run.json`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    else:
        atomic_write_text(path, table.to_csv(index=False))
    if config is not None:
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
            record = write_run_record(tmp, config, seed=None, table=path.name, rows=len(table))
            os.replace(record, run_record_path(path))
    return path


def run_record_path(table_path: str | Path) -> Path:
    """Where ``write_table`` puts the run record of a table: ``<stem>.lrmerge_run.json`` beside it."""
    table_path = Path(table_path)
    return table_path.with_name(f"{table_path.stem}.{RUN_RECORD}")


class _PartialWriter:
    """Appends finished tensors' rows to a CSV (header once), flushed so an interrupted run can resume."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, rows: list[dict]) -> None:
        frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
        header = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a") as handle:
            frame.to_csv(handle, index=False, header=header)
            handle.flush()
            os.fsync(handle.fileno())



def resolve_checkpoints(ct: str | Path | Sequence[str | Path]) -> list[Path]:
    """CT checkpoint folders from a glob (``runs/ben/ct/tokens-*``), a folder whose subfolders are checkpoints,
    or a list; ordered by CT tokens (then name). Raises naming the pattern when nothing matches."""
    if isinstance(ct, (list, tuple)):
        found = [Path(c) for c in ct]
    else:
        text = str(ct)
        if any(ch in text for ch in "*?["):
            found = [Path(p) for p in sorted(glob.glob(text)) if Path(p).is_dir()]
        elif Path(text).is_dir() and not list(Path(text).glob("*.safetensors")):
            found = sorted(p for p in Path(text).iterdir() if p.is_dir() and list(p.glob("*.safetensors")))
        else:
            found = [Path(text)]
    if not found:
        raise FileNotFoundError(f"no CT checkpoint folders match {ct!r}")
    tokens = {p: ct_tokens_of(p) for p in found}
    return sorted(found, key=lambda p: (math.isnan(tokens[p]), tokens[p] if not math.isnan(tokens[p]) else 0, p.name))


__all__ = [
    "conflict_series", "compute_series", "ct_tokens_of", "read_table", "write_table",
    "checkpoint_labels", "resolve_checkpoints",
]
