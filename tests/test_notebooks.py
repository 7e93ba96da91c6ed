"""Every study notebook executed with papermill on the quick profile (the whole study, both demo languages), its
results checked for sanity, and a second run checked to do no work again. Plus the teaching notebook."""

import json
import re
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from lrmerge import study
from lrmerge.conflicts.aggregate import check_table
from lrmerge.conflicts.series import read_table

pytestmark = pytest.mark.slow
NOTEBOOKS = sorted(study.notebooks_dir().glob("*.ipynb"))


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    env = {"JUPYTER_RUNTIME_DIR": root / "jr", "JUPYTER_DATA_DIR": root / "jd", "IPYTHONDIR": root / "ipy"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    figures, tables = root / "figures", root / "tables"
    overrides = {"figures_dir": str(figures), "tables_dir": str(tables)}
    try:
        # two workers, as `make study` runs: the languages' chains overlap, and the parallel path is what is tested
        first = study.run_study(["tbx", "mnx"], "quick", None, root / "runs", overrides=overrides, log=lambda *_: None,
                                jobs=2)
        second = study.run_study(["tbx", "mnx"], "quick", None, root / "runs", overrides=overrides, log=lambda *_: None,
                                 jobs=2)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return root / "runs", figures, tables, first, second


def test_notebooks_are_committed_clean_with_one_parameters_cell():
    assert len(NOTEBOOKS) >= 10
    for path in NOTEBOOKS:
        nb = nbformat.read(str(path), as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
        assert nb.cells[0].cell_type == "markdown", f"{path.name}: starts with its introduction"


def test_every_stage_ran_and_a_second_run_does_nothing(quick_study):
    runs, _figures, _tables, first, second = quick_study
    failed = [r.message for r in first if r.status == "failed"]
    assert not failed, failed[0]
    assert [r.status for r in first] == ["ran"] * len(first) and len(first) == 2 * 7 + 2
    assert [r.status for r in second] == ["skipped"] * len(first)


def test_scores_are_accuracies_with_counts(quick_study):
    runs = quick_study[0]
    for lang in ("tbx", "mnx"):
        scores = pd.read_csv(runs / lang / "evaluation" / "scores.csv")
        assert set(scores.model) == {"BASE", "SFT-flan", "CT-X", "CTSFT-X-mt", "CTSFT-X-flan", "WAVG-X-flan", "TIES-X-flan",
                                     "DARE-TIES-X-flan"}  # the quick profile adds DARE-TIES beside TIES
        assert set(scores.task) == {"sib200", "belebele", "mgsm", "mlic_rs"}
        # both protocols for the multiple-choice tasks, generation only for math
        assert set(scores[scores.task == "mgsm"].protocol) == {"generate"}
        assert set(scores[scores.task == "sib200"].protocol) == {"generate", "loglik"}
        assert scores.score.between(0, 100).all() and (scores.n > 0).all()
        assert (scores.n_unparsable <= scores.n).all() and (scores.n_invalid_utf8 <= scores.n).all()
        assert set(scores.seed) == {0} and scores[scores.model == "CT-X"].ct_tokens.notna().all()
        curves = pd.read_csv(runs / lang / "evaluation" / "curves.csv")
        assert set(curves.model) == {"CT-X", "CTSFT-X-flan", "TIES-X-flan"} and curves.ct_tokens.nunique() >= 2
        grid = pd.read_csv(runs / lang / "merging" / "grid.csv")
        ties = grid[grid.search == "TIES"]
        assert len(ties) == 4 and ties.dev_average.between(0, 1).all()
        english = pd.read_csv(runs / lang / "evaluation" / "english_dev.csv")
        assert set(english.language) == {"eng"} and set(english.model) == {"BASE", "SFT-flan"}


def test_ct_checkpoints_and_ledger_identities(quick_study):
    runs = quick_study[0]
    for lang in ("tbx", "mnx"):
        manifest = json.loads((runs / lang / "pretraining" / "outputs.json").read_text())["seeds"]["0"]
        assert manifest["ct_tokens"] == sorted(manifest["ct_tokens"]) and len(manifest["checkpoints"]) == 3
        table = read_table(runs / lang / "conflicts" / "sign_conflicts.csv")
        check_table(table)
        assert (table.conflicts == table.elect_sft + table.elect_ct).all()
        assert (table.both_kept <= table[["sft_kept", "ct_kept"]].min(axis=1)).all()
        assert table.checkpoint.nunique() == 3


def test_paper_exhibits_and_index(quick_study):
    _runs, figures, tables, _first, _second = quick_study
    for name in ("table3", "table5", "table4_tbx", "table4_mnx", "table_tasks_tbx"):
        for suffix in (".md", ".tex", ".csv"):
            assert (tables / f"{name}{suffix}").stat().st_size > 0
    for stem in ("figure2_scores_vs_ct_tokens", "tbx_figure3_sign_conflicts", "mnx_figure4_sft_discarded"):
        assert all((figures / f"{stem}.{ext}").stat().st_size > 0 for ext in ("pdf", "svg", "png"))
    index = (figures / "README.md").read_text()
    assert "05_evaluation.ipynb" in index and "06_sign_conflicts.ipynb" in index
    table3 = pd.read_csv(tables / "table3.csv", index_col=0)
    assert list(table3.columns)[:3] == ["tbx", "mnx", "Average"] and table3[["tbx", "mnx"]].values.min() >= 0
    seeds = pd.read_csv(tables / "seeds.csv")
    assert list(seeds.columns) == ["language", "model", "seed", "ct_tokens", "task", "protocol", "score", "n"]
    assert {"eng", "tbx", "mnx"} <= set(seeds.language) and "TIES-SV-X-flan" in set(seeds.model)
    assert not seeds.duplicated(["language", "model", "seed", "ct_tokens", "task", "protocol"]).any()
    findings = (tables / "findings.md").read_text()
    for heading in ("scarce", "Machine-translated", "near chance", "discarded", "TIES-SV", "two languages"):
        assert heading in findings
    assert findings.count("verdict:") >= 6


def test_teaching_notebook_runs(tmp_path, monkeypatch):
    import papermill

    for var in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    out = tmp_path / "teaching"
    papermill.execute_notebook(str(study.notebooks_dir() / "10_teaching_merging.ipynb"), str(tmp_path / "t.ipynb"),
                               parameters={"out_dir": str(out)}, kernel_name="python3", progress_bar=False,
                               cwd=str(study.notebooks_dir()))
    results = json.loads((out / "teaching_results.json").read_text())
    toy = pd.DataFrame(results["toy_table"])
    # the toy merge: discarded SFT entries are exactly the kept ones whose sign lost
    lost = (toy["sft trimmed"] != 0) & (toy["sft trimmed"] * toy["elected sign (TIES)"] < 0)
    assert list(lost) == [bool(v) for v in toy["sft discarded (TIES)"]]
    assert results["layer_ledger"]["conflicts"] == results["layer_ledger"]["elect_sft"] + results["layer_ledger"]["elect_ct"]


def _run_script(*args) -> str:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_sft_recipe_probe_without_changes_retrains_the_study_models(quick_study, tmp_path):
    runs = quick_study[0]
    script = study.notebooks_dir().parent / "experiments" / "sft_recipe_probe.py"
    _run_script(script, runs, "--seeds", "0", "--langs", "tbx", "--out", tmp_path / "probe")
    probe = pd.read_csv(next((tmp_path / "probe").glob("*/scores.csv")))
    table3 = pd.read_csv(runs / "tbx" / "evaluation" / "scores.csv")
    english = pd.read_csv(runs / "tbx" / "evaluation" / "english_dev.csv")
    for model, reference in (("CTSFT-X-flan", table3), ("CTSFT-X-mt", table3), ("SFT-flan", english)):
        ours = probe[probe["model"] == model].set_index(["task", "protocol"])[["score", "n"]].sort_index()
        theirs = reference[(reference["model"] == model) & (reference["seed"] == 0)]
        theirs = theirs.set_index(["task", "protocol"]).loc[ours.index, ["score", "n"]]
        assert len(ours) >= 4 and ours.equals(theirs), model  # the same recipe gives the same weights, hence scores


def test_sft_recipe_probe_trains_on_the_first_items_and_reports_math_answers(quick_study, tmp_path):
    runs = quick_study[0]
    script = study.notebooks_dir().parent / "experiments" / "sft_recipe_probe.py"
    printed = _run_script(script, runs, "--seeds", "0", "--langs", "tbx", "--items", "24", "--out", tmp_path / "probe")
    (folder,) = (tmp_path / "probe").glob("*-items24")
    copies = sorted((folder / "sft-data").glob("*.jsonl"))
    assert len(copies) == 2 and all(len(c.read_text().splitlines()) == 24 for c in copies)
    source = json.loads((runs / "tbx" / "data" / "outputs.json").read_text())["source"]
    first = Path(source["sft_flan"]).read_text().splitlines()[:24]
    flan_copy = next(c for c in copies if c.name.startswith(Path(source["sft_flan"]).stem + "-first"))
    assert flan_copy.read_text().splitlines() == first
    scores = pd.read_csv(folder / "scores.csv")
    assert {"CTSFT-X-flan", "CTSFT-X-mt", "SFT-flan"} <= set(scores["model"])
    for model in ("CTSFT-X-flan", "CTSFT-X-mt"):
        assert re.search(rf"seed 0 tbx {model} math: mgsm [\d.]+%, no number in \d+ of \d+, most common answer \S+ in \d+",
                         printed), printed[-2000:]


def test_sft_pass_benchmark_reports_a_time_and_its_baseline(quick_study):
    import re

    script = study.notebooks_dir().parent / "benchmarks" / "demo_sft_pass.py"
    line = _run_script(script, quick_study[0], "--passes", "1").strip().splitlines()[-1]
    found = re.search(r"(\d+) steps, 1 thread\): ([\d.]+) s .* baseline ([\d.]+) GFLOP/s", line)
    assert found and int(found[1]) > 0 and float(found[2]) > 0 and float(found[3]) > 0, line
