import pandas as pd
import pytest

from lrmerge.plots.study_figures import figure2
from lrmerge.plots.style import save_figure


def test_figure2_draws_one_line_per_model_and_exports(tmp_path):
    rows = [(lang, model, tokens, score)
            for lang in ("tbx", "mnx")
            for model, offset in (("CT-X", 10), ("CTSFT-X-flan", 30), ("TIES-X-flan", 40))
            for tokens, score in ((1e5, offset), (2e5, offset + 5), (4e5, offset + 7))]
    fig = figure2(pd.DataFrame(rows, columns=["language", "model", "ct_tokens", "score"]), chance={"tbx": 14.3})
    assert len(fig.axes) == 2
    lines = fig.axes[0].get_lines()
    # two panels share one legend: generic names (one language: its own, below)
    assert [l.get_label() for l in lines][:3] == ["TIES-X-flan", "CTSFT-X-flan", "CT-X"]
    assert list(lines[0].get_ydata()) == [40, 45, 47]
    one = figure2(pd.DataFrame(rows, columns=["language", "model", "ct_tokens", "score"]), ["tbx"])
    assert [l.get_label() for l in one.axes[0].get_lines()][:3] == ["TIES-tbx-flan", "CTSFT-tbx-flan", "CT-tbx"]
    paths = save_figure(fig, "figure2", tmp_path)
    assert {p.suffix for p in paths} == {".pdf", ".svg", ".png"} and all(p.stat().st_size > 1000 for p in paths)


def test_figure2_refuses_a_frame_without_scores():
    with pytest.raises(ValueError, match="score"):
        figure2(pd.DataFrame({"language": ["tbx"], "model": ["CT-X"], "ct_tokens": [1]}))
