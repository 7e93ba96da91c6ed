"""experiments/demo_effects.py end to end on the quick world: every model of the study, tidy scores, a run record."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "demo_effects.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("demo_effects", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_budgets_span_ten_times_and_bad_flags_name_themselves(capsys):
    script = _load_script()
    recipe = script.recipe_for("demo", {})
    budgets = script.budgets(recipe)
    assert len(budgets) >= 4 and budgets[-1] >= 10 * budgets[0] * 0.999
    with pytest.raises(SystemExit):
        script.parse_args(["--langs", "xyz"])
    assert "--langs" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--recipe"):
        script.recipe_for("quick", {"sft_lrr": 1.0})


@pytest.mark.slow
def test_quick_run_writes_every_model_and_the_comparisons(tmp_path, capsys):
    script = _load_script()
    out = tmp_path / "effects"
    assert script.main(["--profile", "quick", "--seeds", "2", "--langs", "tbx", "--world-root", str(tmp_path / "w"),
                        "--out", str(out)]) == 0
    with open(out / "scores.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["language", "model", "seed", "ct_tokens", "task", "protocol", "score", "n"]
    models = {r["model"] for r in rows}
    assert models == {"BASE", "SFT-flan", "CT-tbx", "CTSFT-tbx-flan", "TIES-tbx-flan", "CTSFT-tbx-mt", "WAVG-tbx-flan"}
    assert {r["seed"] for r in rows} == {"0", "1"}
    assert {(r["task"], r["protocol"]) for r in rows} == {("sib200", "loglik"), ("belebele", "loglik"),
                                                           ("mlic_rs", "loglik"), ("mgsm", "generate"),
                                                           ("heldout_ppl", "perplexity")}
    assert {r["language"] for r in rows if r["model"] == "SFT-flan"} == {"eng", "tbx"}
    budgets = sorted({int(r["ct_tokens"]) for r in rows if r["model"] == "TIES-tbx-flan"})
    assert len(budgets) >= 4 and budgets[-1] >= 10 * budgets[0] * 0.999
    assert all(0.0 <= float(r["score"]) <= 100.0 and int(r["n"]) > 0 for r in rows if r["protocol"] != "perplexity")
    record = json.loads((out / "lrmerge_run.json").read_text())
    assert record["config"]["seeds"] == [0, 1] and "torch" in record["versions"]
    printed = capsys.readouterr().out
    assert "TIES-tbx-flan minus CTSFT-tbx-flan" in printed and "CTSFT-flan minus CTSFT-mt" in printed
