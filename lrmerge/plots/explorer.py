"""Interactive sign-conflict explorer (ipywidgets, JupyterLab) and its headless twin ``explorer_figure``.

Source of numbers: an ``InMemoryLedger`` (small models: density / slack sliders recompute only the ledger, with
trim masks and finished rows memoised) or a ledger table read from disk (then densities and slack are fixed by the
table and those sliders are disabled). Drawing always goes through ``explorer_figure``, the same function a script
or a test calls without a browser.
"""

from __future__ import annotations

import time
from typing import Sequence

import pandas as pd
from matplotlib.figure import Figure

from lrmerge.conflicts.aggregate import aggregate, sort_checkpoints
from lrmerge.conflicts.names import MODULES
from lrmerge.plots.conflict_figures import figure3_conflicts, figure4_discarded, heatmap_layer_module
from lrmerge.plots.style import figure_png_bytes, use_style

OUTSIDE_BLOCKS = "outside blocks"  # layer filter label of embed / lm_head / final norm
WIDGET_DPI = 80  # the widget's PNG: fewer pixels to render on every slider move


def filter_table(table: pd.DataFrame, checkpoints: Sequence[str] | None = None, layers: Sequence | None = None,
                 modules: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of the chosen checkpoints, layers (ints, or ``OUTSIDE_BLOCKS``) and modules; ``None`` keeps all."""
    keep = pd.Series(True, index=table.index)
    if checkpoints is not None:
        unknown = sorted(set(checkpoints) - set(table["checkpoint"]))
        if unknown:
            raise ValueError(f"unknown checkpoint(s) {unknown}; the table has {sorted(set(table['checkpoint']))}")
        keep &= table["checkpoint"].isin(list(checkpoints))
    if layers is not None:
        numbers = [int(v) for v in layers if v != OUTSIDE_BLOCKS]
        keep &= table["layer"].isin(numbers).fillna(False).astype(bool) | (
            table["layer"].isna() if OUTSIDE_BLOCKS in layers else False)
    if modules is not None:
        unknown = sorted(set(modules) - set(MODULES))
        if unknown:
            raise ValueError(f"unknown module(s) {unknown}; allowed: {list(MODULES)}")
        keep &= table["module"].isin(list(modules))
    return table[keep]


def explorer_figure(table: pd.DataFrame, *, checkpoints=None, layers=None, modules=None,
                    heatmap_checkpoint: str | None = None):
    """Figure 3, Figure 4 and the layer x module heatmap side by side for the filtered table."""
    use_style()
    chosen = filter_table(table, checkpoints, layers, modules)
    # a bare Figure (not pyplot's): nothing global to close, and Jupyter shows it once, when returned/displayed
    fig = Figure(figsize=(13, 3.6))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.3]})
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.22, top=0.9, wspace=0.3)  # fixed: no layout engine pass
    if chosen.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no tensors match the filters", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        return fig
    figure3_conflicts(chosen, ax=axes[0], title="Fig. 3: SFT entries in sign conflict")
    figure4_discarded(chosen, ax=axes[1], title="Fig. 4: trimmed SFT entries discarded")
    labels = list(sort_checkpoints(aggregate(chosen, "checkpoint"))["checkpoint"])
    target = heatmap_checkpoint if heatmap_checkpoint in labels else labels[-1]
    heatmap_layer_module(chosen, checkpoint=target, ax=axes[2], title=f"discarded share, {target}")
    return fig


def summary_line(table: pd.DataFrame) -> str:
    """One-line text readout of the last checkpoint (tests and the browser check read it)."""
    if table.empty:
        return "no tensors match the filters"
    last = aggregate(table, "checkpoint").iloc[-1]
    return (f"{last['checkpoint']}: {int(last['sft_kept'])} SFT entries kept, {int(last['conflicts'])} in conflict "
            f"({100 * last['conflict_share']:.3f}%), {int(last['sft_discarded'])} discarded "
            f"({100 * last['discarded_share']:.3f}%), {int(last['slack_restored'])} restored by slack")


class ConflictExplorer:
    """The widget: checkpoint, density, slack, layer and module controls above the figure and a text readout."""

    def __init__(self, source, density_sft: float = 0.2, density_ct: float = 1.0, slack: float = 0.0):
        import ipywidgets as w

        from lrmerge.conflicts.memory import InMemoryLedger

        if isinstance(source, InMemoryLedger):
            self.ledger, self.fixed_table = source, None
            labels = list(source.labels)
            layer_values = sorted({lay for lay, _ in source.where.values() if lay is not None})
            outside = any(lay is None for lay, _ in source.where.values())
            modules = [m for m in MODULES if m in {mod for _, mod in source.where.values()}]
        elif isinstance(source, pd.DataFrame):
            self.ledger, self.fixed_table = None, source
            labels = list(sort_checkpoints(aggregate(source, "checkpoint"))["checkpoint"])
            layer_values = sorted(int(v) for v in source["layer"].dropna().unique())
            outside = bool(source["layer"].isna().any())
            modules = [m for m in MODULES if m in set(source["module"])]
        else:
            raise ValueError(f"source must be an InMemoryLedger or a ledger table (DataFrame), got {type(source)}")
        fixed = self.ledger is None
        slider = dict(continuous_update=False, readout_format=".2f", style={"description_width": "110px"},
                      disabled=fixed)
        self.density_sft = w.FloatSlider(value=density_sft, min=0.05, max=1.0, step=0.05,
                                         description="k_sft (density)", **slider)
        self.density_ct = w.FloatSlider(value=density_ct, min=0.05, max=1.0, step=0.05,
                                        description="k_ct (density)", **slider)
        self.slack = w.FloatSlider(value=slack, min=0.0, max=0.2, step=0.01, description="slack (TIES-SV)", **slider)
        self.checkpoints = w.SelectMultiple(options=labels, value=tuple(labels), rows=min(6, len(labels)),
                                            description="checkpoints")
        layer_options = [str(v) for v in layer_values] + ([OUTSIDE_BLOCKS] if outside else [])
        self.layers = w.SelectMultiple(options=layer_options, value=tuple(layer_options),
                                       rows=min(6, len(layer_options)), description="layers")
        self.modules = w.SelectMultiple(options=modules, value=tuple(modules), rows=min(6, len(modules)),
                                        description="modules")
        self.heatmap_checkpoint = w.Dropdown(options=labels, value=labels[-1], description="heatmap")
        for name in ("density_sft", "density_ct", "slack", "checkpoints", "layers", "modules"):
            getattr(self, name).add_class(f"lrmerge-{name.replace('_', '-')}")  # stable hooks for browser tests
        self.readout = w.HTML()
        self.readout.add_class("lrmerge-readout")
        self.image = w.Image(format="png")
        self.image.add_class("lrmerge-figure")
        controls = [self.density_sft, self.density_ct, self.slack, self.checkpoints, self.layers, self.modules,
                    self.heatmap_checkpoint]
        for control in controls:
            control.observe(self.update, names="value")
        self.widget = w.VBox([w.HBox([w.VBox(controls[:3] + [self.heatmap_checkpoint]), w.VBox(controls[3:6])]),
                              self.readout, self.image])
        self.last_seconds = float("nan")
        self.update()

    def table(self) -> pd.DataFrame:
        """The ledger table for the current densities / slack / checkpoints (before layer and module filters)."""
        chosen = list(self.checkpoints.value)
        if self.fixed_table is not None:
            return filter_table(self.fixed_table, checkpoints=chosen)
        return self.ledger.table(self.density_sft.value, self.density_ct.value, self.slack.value, checkpoints=chosen)

    def filtered(self) -> pd.DataFrame:
        layers = [v if v == OUTSIDE_BLOCKS else int(v) for v in self.layers.value]
        return filter_table(self.table(), layers=layers, modules=list(self.modules.value))

    def update(self, *_):
        started = time.perf_counter()
        table = self.filtered()
        fig = explorer_figure(table, heatmap_checkpoint=self.heatmap_checkpoint.value)
        self.image.value = figure_png_bytes(fig, dpi=WIDGET_DPI)
        self.last_seconds = time.perf_counter() - started
        settings = (f"k_sft={self.density_sft.value:.2f}, k_ct={self.density_ct.value:.2f}, "
                    f"slack={self.slack.value:.2f}")
        self.readout.value = (f"<code>{settings} | {summary_line(table)} | updated in "
                              f"{1000 * self.last_seconds:.0f} ms</code>")
