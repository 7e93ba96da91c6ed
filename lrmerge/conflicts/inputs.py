"""The ledger's entry point: open BASE, SFT and the CT checkpoints and refuse what the merge would refuse.

Every checkpoint must have BASE's architecture (``config.json``: model type, sizes, layer count) and exactly BASE's
tensors with BASE's shapes (no extra tensors silently ignored), and every CT checkpoint gets a label of its own
(two ``.../ct/tokens-400000`` folders of different languages are never blended into one row).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lrmerge.errors import UserError
from lrmerge.merge.checkpoint import CheckpointReader, check_same_architecture


def checkpoint_labels(cts: Sequence[str | Path]) -> list[str]:
    """Short unique labels: the folder names, else the shortest trailing parts of the paths that tell them apart.
    The same folder given twice raises."""
    paths = [Path(c).resolve() for c in cts]
    seen: dict[Path, str] = {}
    for given, path in zip(cts, paths):
        if path in seen:
            raise UserError(f"CT checkpoint {given} is listed twice (also as {seen[path]})")
        seen[path] = str(given)
    depth = max((len(p.parts) for p in paths), default=1)
    for k in range(1, depth + 1):
        labels = ["/".join(p.parts[-k:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def check_same_tensors(base_path, base_ckpt: CheckpointReader, others) -> list[str]:
    """Tensor names of BASE, after checking every other checkpoint has the same names (none missing, none extra)
    and the same shapes."""
    shapes = {name: base_ckpt.shape(name) for name in base_ckpt.names()}
    for path, ckpt in others:
        other = {name: ckpt.shape(name) for name in ckpt.names()}
        missing = sorted(set(shapes) - set(other))
        if missing:
            raise ValueError(f"{path}: missing tensor(s) present in base {base_path}: {missing[:5]}")
        extra = sorted(set(other) - set(shapes))
        if extra:
            raise ValueError(f"{path}: tensor(s) absent from base {base_path}: {extra[:5]} (another architecture?)")
        for name, shape in shapes.items():
            if tuple(other[name]) != tuple(shape):
                raise ValueError(f"{path}: tensor {name} has shape {tuple(other[name])}, base has {tuple(shape)}")
    return list(shapes)


def open_checkpoints(base, sft, cts: Sequence[str | Path], allow_pickle: bool = False):
    """(base reader, sft reader, CT readers, tensor names, CT labels), every check above passed."""
    if not cts:
        raise ValueError("need at least one CT checkpoint")
    labels = checkpoint_labels(cts)
    base_ckpt, sft_ckpt = CheckpointReader(base, allow_pickle), CheckpointReader(sft, allow_pickle)
    ct_ckpts = [CheckpointReader(c, allow_pickle) for c in cts]
    names = check_same_tensors(base, base_ckpt, [(sft, sft_ckpt), *zip(cts, ct_ckpts)])
    with_config = [r for r in (base_ckpt, sft_ckpt, *ct_ckpts) if (r.folder / "config.json").exists()]
    check_same_architecture(with_config)
    return base_ckpt, sft_ckpt, ct_ckpts, names, labels
