"""experiments/retrieval_vs_tokenization.py end to end on the quick world (two vocabulary sizes), and the
kernel-start stress probe."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "retrieval_vs_tokenization.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("retrieval_vs_tokenization", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_vocab_sizes_are_rejected_naming_the_flag(capsys):
    script = _load_script()
    with pytest.raises(SystemExit):
        script.parse_args(["--vocab-sizes", "2000,big"])
    assert "--vocab-sizes" in capsys.readouterr().err
    assert script.parse_args(["--vocab-sizes", "2000,900"]).vocab_sizes == [2000, 900]


@pytest.mark.slow
def test_smaller_vocabulary_spells_fewer_tbx_words_whole(tmp_path):
    script = _load_script()
    out = tmp_path / "rvt"
    assert script.main(["--profile", "quick", "--lang", "tbx", "--vocab-sizes", "1200,600",
                        "--world-root", str(tmp_path / "worlds"), "--out", str(out)]) == 0
    with open(out / "retrieval.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["vocab_size"], r["pooling"]) for r in rows] == [("1200", "mean"), ("1200", "last"),
                                                               ("600", "mean"), ("600", "last")]
    single = {r["vocab_size"]: int(r["single_token_queries"]) for r in rows}
    assert single["1200"] > single["600"]  # fewer merges: more tbx words spelled in pieces
    for r in rows:
        assert int(r["n_queries"]) > 0 and 0.0 <= float(r["top1"]) <= 1.0
        assert float(r["top1"]) == pytest.approx(max(json.loads(r["per_layer"])), abs=1e-4)
    record = json.loads((out / "lrmerge_run.json").read_text())
    assert record["seed"] == 0 and record["config"]["ct_recipe"]["ct_lr"] == 1e-3
    assert not list(tmp_path.glob(".rvt.tmp-*"))  # nothing half-written left beside the output


PROBE = Path(__file__).resolve().parents[1] / "experiments" / "task_probe.py"


@pytest.mark.slow
def test_task_probe_trains_and_scores_each_variant(tmp_path, quick_world_source):
    """The learnability probe on the quick world: it writes the SFT mix with the asked answer format, fine-tunes
    BASE, and reports every task under its protocols for BASE and SFT-flan."""
    spec = importlib.util.spec_from_file_location("task_probe", PROBE)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    out = tmp_path / "probe"
    args = ["--world", str(quick_world_source.world_root), "--items", "topic=6,reading=6,selection=6,math=6",
            "--dev", "4", "--epochs", "1", "--variant", "answer=letter_text", "--out", str(out), "--langs", "eng,tbx"]
    assert probe.main(args) == 0
    (folder,) = out.iterdir()
    report = json.loads((folder / "report.json").read_text())
    assert set(report["scores"]) == {f"{m}/{l}/{t}" for m in ("BASE", "SFT-flan") for l in ("eng", "tbx")
                                     for t in ("topic", "reading", "selection", "math")}
    assert set(report["scores"]["SFT-flan/eng/reading"]) == {"loglik", "loglik_text", "generate"}
    assert set(report["scores"]["SFT-flan/eng/math"]) == {"generate"}
    rows = [json.loads(line) for line in (folder / "sft.jsonl").read_text().splitlines()]
    reading = [r["response"] for r in rows if r["task"] == "reading"]
    assert len(rows) == 24 and all(len(r) > 4 and r[2:4] == ". " for r in reading)  # " B. <option>"


KERNEL_STRESS = Path(__file__).resolve().parents[1] / "experiments" / "kernel_start_stress.py"


def test_kernel_stress_refuses_a_zero_count_naming_the_flag():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(KERNEL_STRESS), "--runs", "0"], capture_output=True, text=True)
    assert result.returncode == 2 and "--runs: 0" in result.stderr


@pytest.mark.slow
def test_kernel_stress_runs_kernels_side_by_side(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(KERNEL_STRESS), "--processes", "2", "--runs", "2", "--timeout", "120",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("process")] == ["process 0", "process 1"]
    assert all(" 2 of 2 finished" in line and " 0 failed" in line for line in lines if line.startswith("process"))
    assert lines[-1].endswith("0 failed or missing") and (tmp_path / "two_cells.ipynb").exists()
