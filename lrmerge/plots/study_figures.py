"""Figure 2: average score vs CT tokens for CT-X, CTSFT-X-flan and TIES-X-flan, one panel per language.

Reads a tidy curve frame (``language, model, ct_tokens, score``; score = average over the language's tasks, in
percent); it never trains or merges anything.
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
            return f"{tokens / scale:g}{unit}"
    return f"{tokens:g}"


def figure2(curves: pd.DataFrame, languages: list[str] | None = None, chance: dict[str, float] | None = None):
    """One panel per language: lines for TIES-X-flan (blue), CTSFT-X-flan (red), CT-X (grey) over CT tokens."""
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise ValueError(f"curve frame lacks column(s) {missing}; needs {list(CURVE_COLUMNS)}")
    use_style()
    languages = languages or list(dict.fromkeys(curves["language"]))  # order of first appearance
    width = SINGLE_COLUMN[0] if len(languages) == 1 else DOUBLE_COLUMN[0]
    fig, axes = plt.subplots(1, len(languages), figsize=(width, SINGLE_COLUMN[1]), squeeze=False, sharey=False)
    for ax, lang in zip(axes[0], languages):
        rows = curves[curves["language"] == lang]
        for model, role in FIGURE2_MODELS.items():
            line = rows[rows["model"] == model].sort_values("ct_tokens")
            if line.empty:
                continue
            ax.plot(line["ct_tokens"], line["score"], marker="o", markersize=3, color=color(role),
                    label=model.replace("X", lang))
        if chance and lang in chance:
            ax.axhline(chance[lang], color="black", linestyle=":", linewidth=0.8, label="chance")
        ax.set_title(lang)
        ax.set_xlabel("CT tokens")
        ticks = ax.get_xticks()
        ax.set_xticks(ticks)
        ax.set_xticklabels([_token_label(t) for t in ticks])
        ax.set_xlim(left=0)
        ax.legend(loc="best")
    axes[0][0].set_ylabel("average score (%)")
    fig.tight_layout()
    return fig
