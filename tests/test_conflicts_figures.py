"""Figures 3/4, the heatmap, the style module's atomic export, the in-memory ledger and the headless explorer."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from test_conflicts_series import make_world

from lrmerge.conflicts.memory import InMemoryLedger
from lrmerge.conflicts.series import compute_series
from lrmerge.plots import style
from lrmerge.plots.conflict_figures import figure3_conflicts, figure4_discarded, heatmap_layer_module
from lrmerge.plots.explorer import OUTSIDE_BLOCKS, ConflictExplorer, explorer_figure, filter_table


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def table(world):
    return compute_series(world["base"], world["sft"], world["ct"], slack=0.05, progress=False)


def by_hand(table, checkpoint, num, den="sft_kept"):
    rows = table[table.checkpoint == checkpoint]
    return 100 * sum(int(v) for v in rows[num]) / sum(int(v) for v in rows[den])


def test_figure4_plots_discarded_over_kept_against_ct_tokens(table):
    fig = figure4_discarded(table)
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [1, 2, 4] and "(K)" in fig.axes[0].get_xlabel()  # thousands of tokens
    expected = [by_hand(table, c, "sft_discarded") for c in ("tokens-000001000", "tokens-000002000", "tokens-000004000")]
    assert list(line.get_ydata()) == pytest.approx(expected)
    assert len(fig.axes[0].lines) == 2  # slack > 0: the restored series is drawn too
    plt.close(fig)


def test_figure3_stacks_elect_sft_under_elect_ct(table):
    fig = figure3_conflicts(table)
    ax = fig.axes[0]
    cyan, yellow = ax.collections[:2]
    assert np.allclose(cyan.get_facecolor()[0][:3], plt.matplotlib.colors.to_rgb(style.color("elect_sft")))
    assert np.allclose(yellow.get_facecolor()[0][:3], plt.matplotlib.colors.to_rgb(style.color("elect_ct")))
    total = [by_hand(table, c, "conflicts") for c in sorted(set(table.checkpoint))]
    assert list(ax.lines[0].get_ydata()) == pytest.approx(total)
    top_of_cyan = cyan.get_paths()[0].vertices[:, 1].max()
    assert top_of_cyan == pytest.approx(max(by_hand(table, c, "elect_sft") for c in set(table.checkpoint)))
    plt.close(fig)


def test_unknown_tokens_fall_back_to_checkpoint_order(table):
    no_tokens = table.assign(ct_tokens=np.nan)
    fig = figure4_discarded(no_tokens)
    assert list(fig.axes[0].lines[0].get_xdata()) == [0, 1, 2]
    assert "order" in fig.axes[0].get_xlabel()
    plt.close(fig)


def test_heatmap_cells_are_layer_module_shares(table):
    fig = heatmap_layer_module(table, checkpoint="tokens-000002000")
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    layers = [t.get_text() for t in ax.get_yticklabels()]
    modules = [t.get_text() for t in ax.get_xticklabels()]
    assert layers == ["0", "1", "-"] and modules == ["embed", "q", "v", "down", "norm"]
    rows = table[(table.checkpoint == "tokens-000002000") & (table.tensor == "model.layers.0.mlp.down_proj.weight")]
    assert grid[0, modules.index("down")] == pytest.approx(100 * rows.sft_discarded.sum() / rows.sft_kept.sum())
    assert np.ma.is_masked(grid[0, modules.index("embed")])  # no embed tensor inside layer 0
    plt.close(fig)
    with pytest.raises(ValueError, match="tokens-9.*the table has|it has"):
        heatmap_layer_module(table, checkpoint="tokens-9")
    with pytest.raises(ValueError, match="allowed"):
        heatmap_layer_module(table, value="mass")


def test_save_figure_writes_three_formats_atomically(tmp_path, table):
    fig = figure4_discarded(table)
    paths = style.save_figure(fig, "fig4", tmp_path)
    assert [p.name for p in paths] == ["fig4.pdf", "fig4.svg", "fig4.png"]
    assert paths[0].read_bytes().startswith(b"%PDF") and paths[2].read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in paths[1].read_bytes()
    assert style.save_figure(fig, "fig4", tmp_path) == paths  # overwrites in place

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    fig.savefig = broken
    with pytest.raises(RuntimeError):
        style.save_figure(fig, "broken", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig4.pdf", "fig4.png", "fig4.svg"]  # no temp, no partial
    with pytest.raises(ValueError, match=r"allowed: \['pdf', 'svg', 'png'\]"):
        style.save_figure(fig, "x", tmp_path, formats=["jpg"])
    with pytest.raises(ValueError, match="unknown colour role 'cyan'"):
        style.color("cyan")
    plt.close(fig)


def test_in_memory_ledger_equals_streamed_series(world, table):
    memory = InMemoryLedger(world["base"], world["sft"], world["ct"])
    key = ["checkpoint", "tensor"]
    got = memory.table(0.2, 1.0, 0.05).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, table.sort_values(key).reset_index(drop=True))
    other = memory.table(0.5, 1.0, 0.0, checkpoints=["tokens-000004000"])
    assert set(other.checkpoint) == {"tokens-000004000"} and other.sft_kept.sum() > got.sft_kept.sum() / 3
    with pytest.raises(ValueError, match="max_params=10"):
        InMemoryLedger(world["base"], world["sft"], world["ct"], max_params=10)
    with pytest.raises(ValueError, match="unknown checkpoint 'nope'"):
        memory.rows("nope", 0.2, 1.0, 0.0)


def test_filters(table):
    q_only = filter_table(table, modules=["q"])
    assert set(q_only.tensor) == {"model.layers.0.self_attn.q_proj.weight"}
    outside = filter_table(table, layers=[OUTSIDE_BLOCKS])
    assert set(outside.tensor) == {"model.embed_tokens.weight", "model.norm.weight"}
    assert set(filter_table(table, layers=[1, OUTSIDE_BLOCKS]).layer.dropna()) == {1}
    with pytest.raises(ValueError, match="unknown module"):
        filter_table(table, modules=["attention"])
    with pytest.raises(ValueError, match="unknown checkpoint"):
        filter_table(table, checkpoints=["tokens-x"])
    fig = explorer_figure(table, modules=["gate"])  # nothing matches: a message, not an error
    assert "no tensors match" in fig.axes[0].texts[0].get_text()
    plt.close(fig)


def test_explorer_widget_recomputes_on_slider_and_filters(world):
    memory = InMemoryLedger(world["base"], world["sft"], world["ct"])
    explorer = ConflictExplorer(memory, density_sft=0.2)
    before_image, before_text = bytes(explorer.image.value), explorer.readout.value
    assert before_image.startswith(b"\x89PNG") and "k_sft=0.20" in before_text
    kept = int(memory.table(0.2, 1.0, 0.0, checkpoints=["tokens-000004000"]).sft_kept.sum())
    assert f"{kept} SFT entries kept" in before_text
    explorer.density_sft.value = 0.5
    assert bytes(explorer.image.value) != before_image and "k_sft=0.50" in explorer.readout.value
    kept = int(memory.table(0.5, 1.0, 0.0, checkpoints=["tokens-000004000"]).sft_kept.sum())
    assert f"{kept} SFT entries kept" in explorer.readout.value
    explorer.modules.value = ("q",)
    q_kept = int(filter_table(memory.table(0.5, 1.0, 0.0), checkpoints=["tokens-000004000"], modules=["q"]).sft_kept.sum())
    assert f"{q_kept} SFT entries kept" in explorer.readout.value
    explorer.slack.value = 0.1
    assert "0 restored" not in explorer.readout.value


def test_explorer_on_a_table_fixes_densities(table):
    explorer = ConflictExplorer(table)
    assert explorer.density_sft.disabled and explorer.slack.disabled
    explorer.checkpoints.value = ("tokens-000001000",)
    assert explorer.readout.value.count("tokens-000001000") == 1
    with pytest.raises(ValueError, match="InMemoryLedger or a ledger table"):
        ConflictExplorer("runs/x.csv")
