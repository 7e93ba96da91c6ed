"""The one figure style of the project: seaborn theme, the paper's palette, font sizes, atomic export.

Every figure module calls ``use_style()`` before drawing and ``save_figure()`` to write it, so Figures 2, 3 and 4
(and any widget drawing the same data) look alike and land on disk the same way.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Iterable

import matplotlib.pyplot as plt
import seaborn as sns

from lrmerge.runs import respect_umask

# The paper's colours (Figures 2-4): cyan/yellow split the sign conflicts of Figure 3, blue/red/grey are the
# three model families of Figure 2 (TIES-X-flan, CTSFT-X-flan, CT-X).
PALETTE: dict[str, str] = {
    "elect_sft": "#3ec1d3",  # cyan: conflicts that elect SFT-flan's sign
    "elect_ct": "#f6c85f",  # yellow: conflicts that elect CT-X's sign
    "ties": "#1f5fbf",  # blue: TIES-X-flan
    "ctsft": "#d1383d",  # red: CTSFT-X-flan
    "ct": "#8c8c8c",  # grey: CT-X
    "slack": "#7a4fb3",  # purple: TIES-SV restored entries
    "sft": "#2a9d8f",  # SFT-flan alone
}
FONT_SIZES = {"base": 10, "title": 11, "label": 10, "tick": 9, "legend": 9}
FIGURE_FORMATS = ("pdf", "svg", "png")
SINGLE_COLUMN = (3.4, 2.4)  # inches, an ACL single column
DOUBLE_COLUMN = (7.0, 2.6)
PNG_DPI = 200


def use_style() -> None:
    """Apply the project theme (idempotent)."""
    sns.set_theme(context="paper", style="whitegrid", palette=list(PALETTE.values()))
    plt.rcParams.update(
        {
            "font.size": FONT_SIZES["base"],
            "axes.titlesize": FONT_SIZES["title"],
            "axes.labelsize": FONT_SIZES["label"],
            "xtick.labelsize": FONT_SIZES["tick"],
            "ytick.labelsize": FONT_SIZES["tick"],
            "legend.fontsize": FONT_SIZES["legend"],
            "legend.frameon": False,
            "figure.dpi": 100,
            "savefig.bbox": "tight",
            "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
            "svg.fonttype": "none",
            "svg.hashsalt": "lrmerge",  # stable SVG ids, so identical figures give identical files
        }
    )


def color(name: str) -> str:
    """A palette colour by its role name; unknown names raise naming the allowed ones."""
    if name not in PALETTE:
        raise ValueError(f"unknown colour role {name!r}; allowed: {sorted(PALETTE)}")
    return PALETTE[name]


def save_figure(fig, name: str, folder: str | Path, formats: Iterable[str] = FIGURE_FORMATS) -> list[Path]:
    """Write ``fig`` as ``folder/name.{pdf,svg,png}``, each through a temporary file renamed into place.

    Returns the written paths in the order of ``formats``.
    """
    formats = tuple(formats)
    bad = [f for f in formats if f not in FIGURE_FORMATS]
    if bad:
        raise ValueError(f"unknown figure format(s) {bad}; allowed: {list(FIGURE_FORMATS)}")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem, got {name!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        final = folder / f"{name}.{fmt}"
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                fig.savefig(handle, format=fmt, dpi=PNG_DPI, metadata=_metadata(fmt))
            respect_umask(Path(tmp), directory=False)  # mkstemp makes 0600; a figure is as readable as the umask says
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(final)
    return paths


def figure_png_bytes(fig, dpi: int = 100, bbox_inches: str | None = None) -> bytes:
    """The figure rendered as PNG bytes (widgets display these; tests compare them). No tight bbox by default:
    it renders the figure twice, and widget figures have a fixed layout anyway."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata=_metadata("png"), bbox_inches=bbox_inches)
    return buffer.getvalue()


def _metadata(fmt: str) -> dict:
    # drop creation dates so re-plotting the same table gives byte-identical files
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": "lrmerge"}
    if fmt == "svg":
        return {"Date": None, "Creator": "lrmerge"}
    return {"Software": "lrmerge"}
