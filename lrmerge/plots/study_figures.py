"""Figure 2: average score vs CT tokens for CT-X, CTSFT-X-flan and TIES-X-flan, one panel per language.

Reads a tidy curve frame (``language, model, ct_tokens, task, score`` and optionally ``seed``; score in percent);
the line is the mean over seeds of the per-seed average over tasks, the band its standard error. It never trains or
merges anything.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from lrmerge.plots.style import DOUBLE_COLUMN, SINGLE_COLUMN, color, use_style

CURVE_COLUMNS = ("language", "model", "ct_tokens", "score")
FIGURE2_MODELS = {"TIES-X-flan": "ties", "CTSFT-X-flan": "ctsft", "CT-X": "ct"}  # model -> palette role


def _token_label(tokens: float) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if tokens >= scale:
            return f"{tokens / scale:.3g}{unit}"
    return f"{tokens:g}"


def curve_stats(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (language, model, ct_tokens): mean over seeds of the task-averaged score, its standard error, seeds."""
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise ValueError(f"curve frame lacks column(s) {missing}; needs {list(CURVE_COLUMNS)}")
    frame = curves.assign(seed=curves["seed"].fillna(-1) if "seed" in curves.columns else -1)
    per_seed = frame.groupby(["language", "model", "ct_tokens", "seed"])["score"].mean().reset_index()
    grouped = per_seed.groupby(["language", "model", "ct_tokens"])["score"]
    stats = grouped.agg(["mean", "std", "count"]).reset_index()
    stats["stderr"] = stats["std"] / stats["count"].pow(0.5)
    return stats.rename(columns={"count": "seeds"}).drop(columns="std")


def figure2(curves: pd.DataFrame, languages: list[str] | None = None, chance: dict[str, float] | None = None):
    """One panel per language: lines for TIES-X-flan (blue), CTSFT-X-flan (red), CT-X (grey) over CT tokens (log
    axis), with a band of one standard error over seeds; chance as a dotted line."""
    stats = curve_stats(curves)
    use_style()
    languages = languages or list(dict.fromkeys(curves["language"]))  # order of first appearance
    width = SINGLE_COLUMN[0] if len(languages) == 1 else DOUBLE_COLUMN[0]
    fig, axes = plt.subplots(1, len(languages), figsize=(width, SINGLE_COLUMN[1] * 1.25), squeeze=False, sharey=False)
    for ax, lang in zip(axes[0], languages):
        rows = stats[stats["language"] == lang]
        for model, role in FIGURE2_MODELS.items():
            line = rows[rows["model"] == model].sort_values("ct_tokens")
            if line.empty:
                continue
            ax.plot(line["ct_tokens"], line["mean"], marker="o", markersize=3, color=color(role),
                    label=model.replace("X", lang) if len(languages) == 1 else model)  # one legend for all panels
            band = line["stderr"].fillna(0.0)
            ax.fill_between(line["ct_tokens"], line["mean"] - band, line["mean"] + band, color=color(role), alpha=0.2,
                            linewidth=0)
        if chance and lang in chance:
            ax.axhline(chance[lang], color="black", linestyle=":", linewidth=0.8, label="chance")
        ticks = sorted(rows["ct_tokens"].unique())
        if len(ticks) > 1 and ticks[-1] / max(ticks[0], 1) >= 4:
            ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([_token_label(t) for t in ticks], rotation=45 if len(ticks) > 4 else 0)
        ax.minorticks_off()
        ax.set_title(lang)
        ax.set_xlabel("CT tokens (X + replay)")
    axes[0][0].set_ylabel("average score (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels,
               loc="lower center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
