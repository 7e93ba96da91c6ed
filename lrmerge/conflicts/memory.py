"""An in-memory ledger for small models (the demo world): load BASE, SFT and CT tensors once, then recompute the
ledger for new densities / slack in a fraction of a second. The explorer widget uses it; big models go through
``series.conflict_series`` (streamed, cached) instead.

Reuse: finished ledger rows are memoised per (checkpoint, densities, slack) and, for TIES-SV (slack > 0), trim masks
per (model, tensor, density), so moving one slider recomputes only what that slider changes. Plain TIES (slack 0)
takes the streamed counts of ``chunked.chunked_ledger`` (no masks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from lrmerge.conflicts.chunked import chunked_ledger, fast_path, streamed_ledgers
from lrmerge.conflicts.columns import TABLE_COLUMNS
from lrmerge.conflicts.ledger import tensor_ledger
from lrmerge.conflicts.names import parse_tensor_name
from lrmerge.conflicts.series import check_same_tensors, checkpoint_labels, ct_tokens_of, normalise_table
from lrmerge.merge.checkpoint import CheckpointReader, resolve_device
from lrmerge.merge.fastpath import serial_cpu
from lrmerge.merge.primitives import task_vector, trim_mask

DEFAULT_MAX_PARAMS = 50_000_000  # per model; beyond this use the streamed, cached series


class InMemoryLedger:
    """BASE, SFT and every CT checkpoint held in memory (float32) for interactive recomputation."""

    def __init__(self, base: str | Path, sft: str | Path, cts: Sequence[str | Path], device: str = "cpu",
                 max_params: int = DEFAULT_MAX_PARAMS):
        if not cts:
            raise ValueError("need at least one CT checkpoint")
        dev = self.device = resolve_device(device)
        readers = {"base": CheckpointReader(base), "sft": CheckpointReader(sft)}
        ct_readers = [CheckpointReader(c) for c in cts]
        names = check_same_tensors(base, readers["base"], [(sft, readers["sft"]), *zip(cts, ct_readers)])
        names = [n for n in names if readers["base"].dtype(n).is_floating_point]
        total = sum(_numel(readers["base"].shape(n)) for n in names)
        if total > max_params:
            raise ValueError(f"{base}: {total:,} parameters exceed max_params={max_params:,} for the in-memory "
                             "ledger; use lrmerge.conflicts.series.conflict_series (streamed, cached)")
        self.names = names
        self.labels = checkpoint_labels(cts)
        self.ct_tokens = dict(zip(self.labels, (ct_tokens_of(c) for c in cts)))
        self.where = {name: parse_tensor_name(name) for name in names}
        self.base = {n: readers["base"].get(n, device=dev) for n in names}
        # the fine-tuned tensors themselves (not base + tau), so merges here are bit-identical to the series
        self.models = {"sft": {n: readers["sft"].get(n, device=dev) for n in names}}
        for label, reader in zip(self.labels, ct_readers):
            self.models[label] = {n: reader.get(n, device=dev) for n in names}
        self._masks: dict[tuple, torch.Tensor] = {}
        self._rows: dict[tuple, list[dict]] = {}

    def kept(self, model: str, name: str, density: float) -> torch.Tensor:
        key = (model, name, float(density))
        if key not in self._masks:
            self._masks[key] = trim_mask(task_vector(self.models[model][name], self.base[name]), density)
        return self._masks[key]

    def rows(self, label: str, density_sft: float, density_ct: float, slack: float, slack_of: str = "kept") -> list[dict]:
        """Ledger rows of one checkpoint for these settings (memoised)."""
        if label not in self.ct_tokens:
            raise ValueError(f"unknown checkpoint {label!r}; loaded: {self.labels}")
        key = (label, float(density_sft), float(density_ct), float(slack), slack_of)
        if key not in self._rows:
            out = []
            for name in self.names:
                base, sft, ct = self.base[name], self.models["sft"][name], self.models[label][name]
                if fast_path(slack=slack):  # plain TIES: streamed counts, no masks (see chunked.py)
                    led = chunked_ledger(base, [sft, ct], [density_sft, density_ct])
                else:
                    kept = [self.kept("sft", name, density_sft), self.kept(label, name, density_ct)]
                    _, led = tensor_ledger(base, [sft, ct], [density_sft, density_ct], slack=slack,
                                           slack_of=slack_of, kept=kept)
                layer, module = self.where[name]
                out.append({"checkpoint": label, "ct_tokens": self.ct_tokens[label], "tensor": name,
                            "layer": layer, "module": module, **led})
            self._rows[key] = out
        return self._rows[key]

    def _plain_ties_rows(self, labels: Sequence[str], density_sft: float, density_ct: float, slack_of: str) -> None:
        """Fill the row cache of every missing checkpoint at once: per tensor, SFT's task vector and trim
        threshold are computed once and shared by all checkpoints (``streamed_ledgers``)."""
        missing = [label for label in dict.fromkeys(labels)
                   if (label, float(density_sft), float(density_ct), 0.0, slack_of) not in self._rows]
        if not missing:
            return
        for label in missing:
            if label not in self.ct_tokens:
                raise ValueError(f"unknown checkpoint {label!r}; loaded: {self.labels}")
        out: dict[str, list[dict]] = {label: [] for label in missing}
        for name in self.names:
            flats = [self.base[name].reshape(-1), self.models["sft"][name].reshape(-1),
                     *(self.models[label][name].reshape(-1) for label in missing)]
            ledgers = streamed_ledgers(lambda m, a, b: flats[m][a:b], flats[0].numel(), density_sft,
                                       [density_ct] * len(missing), device=self.device)
            layer, module = self.where[name]
            for label, led in zip(missing, ledgers):
                out[label].append({"checkpoint": label, "ct_tokens": self.ct_tokens[label], "tensor": name,
                                   "layer": layer, "module": module, **led})
        for label in missing:
            self._rows[(label, float(density_sft), float(density_ct), 0.0, slack_of)] = out[label]

    def table(self, density_sft: float = 0.2, density_ct: float = 1.0, slack: float = 0.0,
              checkpoints: Sequence[str] | None = None, slack_of: str = "kept") -> pd.DataFrame:
        """The tidy ledger table (same columns as the streamed series) for the chosen checkpoints."""
        labels = list(checkpoints) if checkpoints is not None else self.labels
        with serial_cpu(self.device):  # small tensors: thread wake-ups would cost more than the work
            if fast_path(slack=slack):
                self._plain_ties_rows(labels, density_sft, density_ct, slack_of)
            rows = [r for label in labels for r in self.rows(label, density_sft, density_ct, slack, slack_of)]
        return normalise_table(pd.DataFrame(rows, columns=list(TABLE_COLUMNS)))


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
