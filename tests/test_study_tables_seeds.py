"""Tables over seeds (mean ± standard error), the study protocol's rows, Figure 2's bands, and the findings report."""

import math

import matplotlib
import pandas as pd
import pytest

from lrmerge.eval.tables import per_task_stats, roadmap_stats, study_scores, to_markdown
from lrmerge.findings import compare, findings_markdown, verdict
from lrmerge.plots.study_figures import curve_stats, figure2

matplotlib.use("Agg")


def _scores():
    rows = []
    for seed, (ties, ctsft) in enumerate([(60.0, 50.0), (64.0, 52.0), (62.0, 48.0)]):
        for task in ("sib200", "belebele"):
            for protocol, shift in (("loglik", 0.0), ("generate", -30.0)):
                rows += [("tbx", "TIES-X-flan", seed, 100, task, protocol, ties + shift, 50),
                         ("tbx", "CTSFT-X-flan", seed, 100, task, protocol, ctsft + shift, 50)]
        rows.append(("tbx", "TIES-X-flan", seed, 100, "mgsm", "generate", 10.0, 50))
        rows.append(("tbx", "CTSFT-X-flan", seed, 100, "mgsm", "generate", 4.0, 50))
    return pd.DataFrame(rows, columns=["language", "model", "seed", "ct_tokens", "task", "protocol", "score", "n"])


def test_study_rows_are_loglik_for_choices_and_generation_for_math():
    study = study_scores(_scores())
    assert set(study[study.task == "mgsm"].score) == {10.0, 4.0}
    assert study[study.task == "sib200"].score.min() >= 48.0  # the generate rows (shifted by -30) are gone


def test_mean_and_stderr_over_seeds():
    mean, stderr = per_task_stats(study_scores(_scores()), "tbx")
    per_seed_avg = [(60 + 60 + 10) / 3, (64 + 64 + 10) / 3, (62 + 62 + 10) / 3]
    assert mean.loc["TIES-X-flan", "Average"] == pytest.approx(sum(per_seed_avg) / 3)
    sd = pd.Series(per_seed_avg).std(ddof=1)
    assert stderr.loc["TIES-X-flan", "Average"] == pytest.approx(sd / math.sqrt(3))
    table3, se3 = roadmap_stats(study_scores(_scores()), ["tbx"])
    assert table3.loc["TIES-X-flan", "tbx"] == pytest.approx(mean.loc["TIES-X-flan", "Average"])
    assert "±" in to_markdown(table3, stderr=se3)
    one_seed = study_scores(_scores()[_scores().seed == 0])
    assert per_task_stats(one_seed, "tbx")[1].isna().all().all()  # no standard error from one seed


def test_compare_and_verdict():
    rows = study_scores(_scores())
    c = compare(rows, "tbx", "TIES-X-flan", "CTSFT-X-flan", 100)
    diffs = [(60 + 60 + 10 - 50 - 50 - 4) / 3, (64 + 64 + 10 - 52 - 52 - 4) / 3, (62 + 62 + 10 - 48 - 48 - 4) / 3]
    assert c.mean_difference == pytest.approx(sum(diffs) / 3) and c.seeds == 3
    assert c.significant and verdict([c]) == "reproduced" and verdict([c], expect_positive=False) == "not reproduced"


def test_figure2_draws_bands_over_seeds():
    curves = pd.concat([_scores().assign(ct_tokens=t) for t in (1_000, 10_000, 100_000, 1_000_000)])
    stats = curve_stats(study_scores(curves))
    assert set(stats.seeds) == {3} and (stats.stderr > 0).all()
    fig = figure2(study_scores(curves), ["tbx"], chance={"tbx": 20.0})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.collections) == 2  # one band per model drawn
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1K", "10K", "100K", "1M"]


def test_findings_report_lists_each_finding_with_a_verdict():
    seeds = _scores()
    text = findings_markdown(seeds, ["tbx"], {"tbx": {"sib200": 14.29, "belebele": 25.0, "mgsm": 0.0}},
                             {"tbx": (0.05, 0.09)})
    assert "verdict: reproduced" in text and "5.00% -> 9.00%" in text
    assert text.count("## ") >= 6


def test_findings_explain_only_what_does_not_show():
    """A source's explanation is printed under a finding that is not reproduced, never under one that is."""
    seeds = pd.concat([_scores(), _scores().assign(ct_tokens=1000)])  # a curve: two CT budgets
    why = {"scarce": "SCARCE-REASON", "mt": "MT-REASON"}
    text = findings_markdown(seeds, ["tbx"], {"tbx": {"sib200": 14.29}}, {"tbx": (0.05, 0.09)}, explanations=why)
    sections = {part.split("\n", 1)[0]: part for part in text.split("## ")[1:]}
    scarce = next(v for k, v in sections.items() if k.startswith("Merging beats CT-then-SFT when X data is scarce"))
    assert "verdict: reproduced" in scarce and "SCARCE-REASON" not in scarce
    mt = next(v for k, v in sections.items() if k.startswith("Machine-translated SFT data hurts"))
    assert ("MT-REASON" in mt) == ("verdict: reproduced" not in mt)


def test_a_language_without_a_curve_gets_no_scarce_budget():
    """A language with Table 3's checkpoint only (figure2_languages leaves it out) is not compared "at the scarcest
    budget": that budget would be its last one. The language with a curve still is."""
    curve = pd.concat([_scores(), _scores().assign(ct_tokens=1000)])
    seeds = pd.concat([curve, _scores().assign(language="mnx")])
    text = findings_markdown(seeds, ["tbx", "mnx"], {"tbx": {"sib200": 14.29}, "mnx": {"sib200": 14.29}},
                             {"tbx": (0.05, 0.09)})
    scarce = next(part for part in text.split("## ")[1:]
                  if part.startswith("Merging beats CT-then-SFT when X data is scarce"))
    assert "scarcest budget of tbx: 100 CT tokens" in scarce and "ours: tbx" in scarce
    assert "mnx: one CT budget only (no Figure 2 curve)" in scarce and "ours: mnx" not in scarce


def test_figure2_points_only_for_the_listed_languages():
    from lrmerge.pipeline import curve_points, figure2_points_for

    checkpoints = [f"tokens-{t}" for t in (1, 2, 3, 4)]
    assert figure2_points_for("tbx", 4, "tbx") == 4 and figure2_points_for("mnx", 4, "tbx") == 1
    assert figure2_points_for("mnx", 4, "") == 4  # empty: every language
    assert curve_points(checkpoints, figure2_points_for("mnx", 4, "tbx")) == ["tokens-4"]  # the last only


def test_chance_check_uses_the_test_set_size_not_the_seed_count():
    """BASE scored on the same 200 items in three seeds is one evaluation of 200 items: 30.5 vs chance 25 is
    5.5 / sqrt(0.25 * 0.75 / 200) = +1.8 SE, not the +3.1 SE that summing n over seeds would claim."""
    from lrmerge.findings import chance_check

    rows = pd.DataFrame([{"language": "mnx", "model": "BASE", "seed": s, "ct_tokens": None, "task": "belebele",
                          "protocol": "loglik", "score": 30.5, "n": 200} for s in range(3)])
    (line,) = chance_check(rows, {"mnx": {"belebele": 25.0, "mgsm": 0.0}}, models=("BASE",))
    assert line == "mnx BASE belebele: 30.5 vs chance 25.0 (+1.8 SE)"


def test_findings_show_math_beside_one_constant_answer():
    """The -mt finding lists each model's math by generation (Table 3's checkpoint, mean over seeds) next to what
    answering the test's most common number to every question scores."""
    from lrmerge.findings import math_lines

    rows = pd.DataFrame([("mnx", model, seed, tokens, "mgsm", "generate", score, 100)
                         for seed in range(3)
                         for model, tokens, score in (("CTSFT-X-flan", 50, 90.0), ("CTSFT-X-flan", 100, 1.0 + seed),
                                                      ("CTSFT-X-mt", 100, 12.0))],
                        columns=["language", "model", "seed", "ct_tokens", "task", "protocol", "score", "n"])
    assert math_lines(rows, ["mnx"], {"mnx": {"mgsm": 14.0}}) == [
        "mnx mgsm (generation): CTSFT-X-flan 2.0, CTSFT-X-mt 12.0; one number for every question (the test's most "
        "common answer) scores 14.0"]
    assert math_lines(rows, ["mnx"], {"mnx": {"sib200": 14.3}}) == []  # no math chance: no line
    assert math_lines(rows[rows["task"] == "sib200"], ["mnx"], {"mnx": {"mgsm": 14.0}}) == []
