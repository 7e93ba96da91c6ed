"""Tables 3-5 and 7-13 from a tidy scores frame; checked by rebuilding the paper's own tables from its task scores."""

import math

import pandas as pd
import pytest

from lrmerge.eval.tables import (multilingual_table, per_task_table, roadmap_table, to_latex, to_markdown,
                                 ties_sv_table, with_paper, write_table)
from lrmerge.paper_results import DISCREPANCIES, LANGUAGE_ORDER, ROADMAP_MODELS, paper_results


def paper_task_scores() -> pd.DataFrame:
    """The paper's per-task scores (Tables 7-13) as a run's scores frame."""
    paper = paper_results()
    rows = paper[paper["table"].str.match(r"table(7|8|9|10|11|12|13)$") & (paper["task"] != "average")]
    return rows[["language", "model", "task", "score"]].reset_index(drop=True)


def test_per_task_table_rebuilds_the_appendix_averages():
    scores = paper_task_scores()
    paper = paper_results()
    documented = {(lang, model) for lang, model, _table, _why in DISCREPANCIES}
    for lang in LANGUAGE_ORDER:
        table = per_task_table(scores, lang)
        assert list(table.index) == list(ROADMAP_MODELS)
        for model in ROADMAP_MODELS:
            printed = paper[(paper.language == lang) & (paper.model == model) & (paper.task == "average")
                            & (paper.table != "table3") & (paper.table != "table4") & (paper.table != "table5")]
            if (lang, model) in documented:
                continue
            assert table.loc[model, "Average"] == pytest.approx(float(printed.score.iloc[0]), abs=0.01), (lang, model)


def test_roadmap_table_matches_table3_and_highlights_best_per_column():
    scores = paper_task_scores()
    table = roadmap_table(scores, LANGUAGE_ORDER)
    table3 = paper_results().query("table == 'table3'")
    documented = {(lang, model) for lang, model, _t, _w in DISCREPANCIES}
    for lang in LANGUAGE_ORDER:
        for model in ROADMAP_MODELS:
            printed = float(table3[(table3.language == lang) & (table3.model == model)].score.iloc[0])
            if (lang, model) not in documented:
                assert table.loc[model, lang] == pytest.approx(printed, abs=0.01)
    markdown = to_markdown(table)
    # Tamil: TIES-X-flan best (58.46), WAVG-X-flan second (57.56), as the paper marks them
    ties_row = next(line for line in markdown.splitlines() if line.startswith("| TIES-X-flan"))
    wavg_row = next(line for line in markdown.splitlines() if line.startswith("| WAVG-X-flan"))
    assert ties_row.split("|")[2].strip() == "**58.46**"
    assert wavg_row.split("|")[2].strip() == f"<u>{table.loc['WAVG-X-flan', 'tam']:.2f}</u>"  # 57.555 recomputed
    latex = to_latex(table, caption="Table 3")
    assert r"\textbf{58.46}" in latex and r"\underline{57.5" in latex and latex.count(r"\\") == len(table) + 1


def test_highlight_rules_on_crafted_values():
    table = pd.DataFrame({"a": [1.0, 3.0, 2.0, 3.0], "b": [math.nan, 0.5, 0.7, 0.1]}, index=list("wxyz"))
    lines = to_markdown(table).splitlines()[2:]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in lines}
    assert cells["x"][0] == "**3.00**" and cells["z"][0] == "**3.00**"  # equal best values are both bold
    assert cells["y"][0] == "<u>2.00</u>" and cells["w"][0] == "1.00"
    assert cells["w"][1] == "–" and cells["y"][1] == "**0.70**" and cells["x"][1] == "<u>0.50</u>"
    with pytest.raises(ValueError, match="highlight"):
        to_markdown(table, highlight="diagonal")


def test_ties_sv_and_multilingual_tables_and_paper_columns(tmp_path):
    scores = pd.DataFrame([
        ("tbx", "TIES-X-flan", "sib200", 60.0), ("tbx", "TIES-X-flan", "mgsm", 10.0),
        ("tbx", "TIES-SV-X-flan", "sib200", 62.0), ("tbx", "TIES-SV-X-flan", "mgsm", 11.0),
    ], columns=["language", "model", "task", "score"])
    table4 = ties_sv_table(scores, "tbx")
    assert list(table4.index) == ["TIES", "TIES-SV"] and list(table4.columns) == ["MGSM", "SIB-200", "Average"]
    assert table4.loc["TIES-SV", "Average"] == pytest.approx(36.5)

    multi = pd.DataFrame([
        ("tbx", "SFT-flan", "sib200", 20.0), ("mnx", "SFT-flan", "sib200", 18.0),
        ("tbx", "TIES-tbx&mnx-flan", "sib200", 50.0), ("tbx", "TIES-tbx&mnx-flan", "mgsm", 30.0),
        ("mnx", "TIES-tbx&mnx-flan", "sib200", 40.0), ("tbx", "TIES-tbx-flan", "sib200", 55.0),
    ], columns=["language", "model", "task", "score"])
    table5 = multilingual_table(multi, ["tbx", "mnx"])
    assert list(table5.index) == ["SFT-flan", "TIES-tbx-flan", "TIES-tbx&mnx-flan"]
    assert table5.loc["TIES-tbx&mnx-flan", "tbx"] == pytest.approx(40.0)
    assert math.isnan(table5.loc["TIES-tbx-flan", "mnx"])

    ben = paper_task_scores().query("language == 'ben'")
    side = with_paper(per_task_table(ben, "ben"), "per_task", "ben")
    assert side.loc["TIES-X-flan", ("MGSM", "paper")] == pytest.approx(7.5)
    assert side.loc["TIES-X-flan", ("MGSM", "this run")] == pytest.approx(7.5)
    demo = with_paper(per_task_table(scores, "tbx"), "per_task", "tbx")
    assert demo[("SIB-200", "paper")].isna().all()

    paths = write_table(table4, "table4", tmp_path)
    assert [p.suffix for p in paths] == [".md", ".tex", ".csv"] and all(p.stat().st_size > 0 for p in paths)


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="lacks column"):
        per_task_table(pd.DataFrame({"language": ["tbx"], "score": [1.0]}), "tbx")
    with pytest.raises(ValueError, match="percentages"):
        per_task_table(pd.DataFrame([("tbx", "BASE", "sib200", 140.0)], columns=["language", "model", "task", "score"]), "tbx")
    with pytest.raises(ValueError, match="no scores"):
        per_task_table(pd.DataFrame([("tbx", "BASE", "sib200", 40.0)], columns=["language", "model", "task", "score"]), "mnx")
