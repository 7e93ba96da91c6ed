"""Figures 3 and 4 of the paper and a layer x module heatmap, drawn from the tidy ledger table.

These functions read results (the table written by ``lrmerge conflicts``); they never recompute a merge.
Shares are relative to SFT's kept (trimmed) entries, as in the paper's Figure 4 caption.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lrmerge.conflicts.aggregate import aggregate
from lrmerge.conflicts.names import MODULES
from lrmerge.plots.style import DOUBLE_COLUMN, SINGLE_COLUMN, color, save_figure, use_style

HEATMAP_VALUES = ("discarded_share", "discarded_l1_share", "conflict_share", "restored_share")


def ct_tokens_axis(per_checkpoint: pd.DataFrame) -> tuple[np.ndarray, str]:
    """x values and label: CT tokens (in billions/millions as fits), or the checkpoint order when unknown."""
    tokens = per_checkpoint["ct_tokens"].astype(float).to_numpy()
    if len(tokens) == 0 or np.isnan(tokens).any():
        return np.arange(len(per_checkpoint), dtype=float), "CT checkpoint (order; tokens unknown)"
    scale, unit = ((1e9, "B") if tokens.max() >= 1e9 else (1e6, "M") if tokens.max() >= 1e6
                   else (1e3, "K") if tokens.max() >= 1e3 else (1.0, ""))
    return tokens / scale, f"CT tokens ({unit})" if unit else "CT tokens"


def figure3_conflicts(table: pd.DataFrame, ax=None, title: str | None = None):
    """Figure 3: share of SFT's kept entries in sign conflict per CT checkpoint, stacked into the conflicts that
    elect SFT's sign (cyan) and those that elect CT's sign (yellow; these are discarded from SFT)."""
    use_style()
    per = aggregate(table, "checkpoint")
    x, xlabel = ct_tokens_axis(per)
    fig, ax = _axes(ax, SINGLE_COLUMN)
    sft, ct = 100 * per["elect_sft_share"].to_numpy(), 100 * per["elect_ct_share"].to_numpy()
    ax.stackplot(x, sft, ct, colors=[color("elect_sft"), color("elect_ct")], alpha=0.9,
                 labels=["conflict, elects SFT sign", "conflict, elects CT sign"])
    ax.plot(x, sft + ct, color="black", lw=0.8, marker="o", ms=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("% of trimmed SFT entries")
    ax.set_ylim(0, max(1e-9, float(np.nanmax(sft + ct))) * 1.1)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=1, fontsize="small")  # above the plot, off the data
    if title:
        ax.set_title(title, pad=30)  # above the two legend rows
    return fig


def figure4_discarded(table: pd.DataFrame, ax=None, title: str | None = None, l1: bool = False):
    """Figure 4: share of trimmed SFT entries discarded at sign election (``l1``: share of their L1 mass)."""
    use_style()
    per = aggregate(table, "checkpoint")
    x, xlabel = ct_tokens_axis(per)
    fig, ax = _axes(ax, SINGLE_COLUMN)
    column = "discarded_l1_share" if l1 else "discarded_share"
    ax.plot(x, 100 * per[column], color=color("elect_ct"), marker="o", lw=1.5, mec="black", mew=0.5,
            label="TIES")
    if (per["slack_restored"] > 0).any():
        ax.plot(x, 100 * per["restored_share"], color=color("slack"), marker="s", lw=1.0, ls="--",
                label="restored by slack (TIES-SV)")
        ax.legend(loc="upper left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("% of trimmed SFT " + ("L1 mass" if l1 else "entries") + " discarded")
    if title:
        ax.set_title(title)
    return fig


def heatmap_layer_module(table: pd.DataFrame, checkpoint: str | None = None, value: str = "discarded_share",
                         ax=None, title: str | None = None):
    """Layer x module heatmap of ``value`` (default: discarded share) for one checkpoint (default: the last by
    CT tokens). Tensors outside the blocks (embed, lm_head, final norm) form the row "-"."""
    if value not in HEATMAP_VALUES:
        raise ValueError(f"unknown heatmap value {value!r}; allowed: {list(HEATMAP_VALUES)}")
    use_style()
    per = aggregate(table, ["checkpoint", "ct_tokens", "layer", "module"])
    checkpoints = list(dict.fromkeys(per["checkpoint"]))
    if checkpoint is None:
        checkpoint = checkpoints[-1]
    if checkpoint not in checkpoints:
        raise ValueError(f"checkpoint {checkpoint!r} is not in the table; it has: {checkpoints}")
    one = per[per["checkpoint"] == checkpoint].copy()
    one["layer"] = [("-" if pd.isna(v) else str(int(v))) for v in one["layer"]]
    grid = one.pivot_table(index="layer", columns="module", values=value, aggfunc="first")
    layers = sorted((r for r in grid.index if r != "-"), key=int) + (["-"] if "-" in grid.index else [])
    grid = grid.reindex(index=layers, columns=[m for m in MODULES if m in grid.columns])
    fig, ax = _axes(ax, (DOUBLE_COLUMN[0] * 0.6, 0.35 * len(layers) + 1.2))
    # plain imshow + text (seaborn's heatmap draws the whole figure once more to pick label colours: slow in widgets)
    values = 100 * grid.to_numpy(dtype=float)  # (n_layers, n_modules)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="YlOrBr", aspect="auto", vmin=0,
                      vmax=max(1e-9, float(np.nanmax(values))) if np.isfinite(values).any() else 1)
    ax.set_xticks(range(len(grid.columns)), grid.columns, rotation=90)
    ax.set_yticks(range(len(layers)), layers)
    ax.grid(False)
    if len(layers) <= 12:
        top = np.nanmax(values) if np.isfinite(values).any() else 0
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if v > 0.6 * top else "black")
    fig.colorbar(image, ax=ax, label="% " + value.replace("_", " "))
    ax.set_xlabel("module")
    ax.set_ylabel("layer")
    ax.set_title(title or f"{checkpoint}")
    return fig


def _axes(ax, size):
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    return fig, ax


def save_conflict_figures(table: pd.DataFrame, folder, prefix: str = "") -> list:
    """Write Figure 3, Figure 4 and the layer x module heatmap (PDF, SVG, PNG each) into ``folder``."""
    paths = []
    for name, draw in (("figure3_sign_conflicts", figure3_conflicts), ("figure4_sft_discarded", figure4_discarded),
                       ("heatmap_discarded_layer_module", heatmap_layer_module)):
        fig = draw(table)
        paths += save_figure(fig, f"{prefix}{name}", folder)
        plt.close(fig)
    return paths
