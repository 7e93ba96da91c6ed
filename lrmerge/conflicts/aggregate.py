"""Aggregates of the tidy ledger table (one row per (checkpoint, tensor)): by checkpoint, layer, module.

Counts are summed exactly (integers); shares are ratios of sums, never means of per-tensor ratios, so a share for
the whole model weighs every parameter equally (as the paper's Figures 3 and 4 do).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from lrmerge.conflicts.columns import LEDGER_FIELDS, TABLE_COLUMNS

# share name -> (numerator, denominator); Fig. 3 stacks elect_sft/elect_ct shares, Fig. 4 plots discarded_share
SHARES = {
    "conflict_share": ("conflicts", "sft_kept"),
    "elect_sft_share": ("elect_sft", "sft_kept"),
    "elect_ct_share": ("elect_ct", "sft_kept"),
    "discarded_share": ("sft_discarded", "sft_kept"),
    "discarded_l1_share": ("sft_discarded_l1", "sft_kept_l1"),
    "restored_share": ("slack_restored", "sft_kept"),
    "sft_density": ("sft_kept", "numel"),
}
GROUPINGS = ("checkpoint", "layer", "module", "model")


def add_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with the ``SHARES`` columns (NaN where the denominator is 0)."""
    out = frame.copy()
    for share, (num, den) in SHARES.items():
        denominator = out[den].astype(float).replace(0.0, np.nan)
        out[share] = out[num].astype(float) / denominator
    return out


def aggregate(table: pd.DataFrame, by: str | Sequence[str] = "checkpoint") -> pd.DataFrame:
    """Sum the ledger over tensors, grouped by ``by``.

    ``by``: ``"checkpoint"`` (one row per checkpoint, with ``ct_tokens``; Figures 3 and 4), ``"layer"`` or
    ``"module"`` (per checkpoint), ``"model"`` (everything summed per checkpoint = same as ``"checkpoint"``), or an
    explicit list of column names.
    """
    check_table(table)
    if isinstance(by, str):
        if by not in GROUPINGS:
            raise ValueError(f"unknown grouping {by!r}; allowed: {list(GROUPINGS)} or a list of columns")
        keys = {"checkpoint": ["checkpoint", "ct_tokens"], "model": ["checkpoint", "ct_tokens"],
                "layer": ["checkpoint", "ct_tokens", "layer"], "module": ["checkpoint", "ct_tokens", "module"]}[by]
    else:
        keys = list(by)
    summed = table.groupby(keys, dropna=False, sort=False)[list(LEDGER_FIELDS)].sum().reset_index()
    return add_shares(sort_checkpoints(summed))


def sort_checkpoints(frame: pd.DataFrame) -> pd.DataFrame:
    """Order rows by CT tokens (then checkpoint name), the x axis of Figures 3 and 4."""
    keys = [c for c in ("ct_tokens", "checkpoint", "layer", "module") if c in frame.columns]
    return frame.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)


def check_table(table: pd.DataFrame) -> None:
    """Raise a ValueError naming the missing columns if ``table`` is not a ledger table."""
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"not a conflict ledger table: missing column(s) {missing}")
