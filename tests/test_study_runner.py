"""`lrmerge study` mechanics on small stand-in notebooks: order, parameters, resume, stop at the first failure,
and the paper profile's refusal on a machine without a GPU."""

import os
import subprocess
import sys

import pytest

from lrmerge import study
from notebook_stubs import write_notebook

pytestmark = pytest.mark.slow  # each notebook execution starts a kernel (~3 s)


@pytest.fixture
def fake_study(tmp_path, monkeypatch):
    """Stand-in notebooks for the first three stages; each appends its name to a log and writes its out_dir."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    log = tmp_path / "log.txt"
    body = ("from pathlib import Path\nPath(out_dir).mkdir(parents=True, exist_ok=True)\n"
            f"open({str(log)!r}, 'a').write(f'{{lang}}:{{Path(out_dir).name}}:{{seed}}\\n')\n"
            "(Path(out_dir) / 'done.txt').write_text('ok')\n"
            "(Path(out_dir) / 'outputs.json').write_text('{}')\n")
    for stage in study.STAGES[:3]:
        write_notebook(folder / stage.notebook, body)
    for var in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("LRMERGE_NOTEBOOKS", str(folder))
    return tmp_path, log


def test_stages_run_in_order_then_resume(fake_study):
    tmp_path, log = fake_study
    names = [s.name for s in study.STAGES[:3]]
    results = study.run_study(["tbx", "mnx"], "quick", names, tmp_path / "runs", log=lambda *_: None)
    assert [(r.lang, r.stage, r.status) for r in results] == [(l, s, "ran") for l in ("tbx", "mnx") for s in names]
    assert log.read_text().splitlines() == [f"{l}:{s}:0" for l in ("tbx", "mnx") for s in names]
    assert (tmp_path / "runs" / "tbx" / "data" / study.STAGES[0].notebook).exists()  # the executed copy
    # same parameters: nothing runs again
    again = study.run_study(["tbx", "mnx"], "quick", names, tmp_path / "runs", log=lambda *_: None)
    assert {r.status for r in again} == {"skipped"} and len(log.read_text().splitlines()) == 6
    # a changed parameter reruns that stage and every later stage of the language, nothing else
    study.run_study(["tbx"], "quick", names, tmp_path / "runs", overrides={"seed": 1}, log=lambda *_: None)
    assert log.read_text().splitlines()[6:] == [f"tbx:{s}:1" for s in names]


def test_first_failure_stops_and_shows_the_cell(fake_study):
    tmp_path, log = fake_study
    folder = tmp_path / "notebooks"
    write_notebook(folder / study.STAGES[1].notebook, "raise RuntimeError('boom in stage two')")
    messages = []
    results = study.run_study(["tbx", "mnx"], "quick", [s.name for s in study.STAGES[:3]], tmp_path / "runs",
                              log=messages.append)
    assert [r.status for r in results] == ["ran", "failed"]
    assert "boom in stage two" in results[-1].message and "raise RuntimeError" in results[-1].message
    assert not (tmp_path / "runs" / "tbx" / study.STAGES[1].name / study.COMPLETE).exists()
    assert log.read_text().splitlines() == [f"tbx:{study.STAGES[0].name}:0"]


def test_languages_run_at_once_with_jobs_each_chain_in_order(fake_study):
    """--jobs 2: the data stages (they build the shared demo world) run first, one language at a time with the
    parent's threads; then the two languages' chains overlap in time (each stage sleeps, and both languages'
    second stages start before either's last one ends), each chain keeps its order, kernels get cpu_count // 2
    threads."""
    tmp_path, log = fake_study
    folder = tmp_path / "notebooks"
    body = ("import os, time\nfrom pathlib import Path\nPath(out_dir).mkdir(parents=True, exist_ok=True)\n"
            f"open({str(log)!r}, 'a').write(f'{{lang}}:{{Path(out_dir).name}}:start:{{time.time()}}:"
            "{os.environ.get(\"OMP_NUM_THREADS\")}\\n')\n"
            "time.sleep(1.0)\n"
            f"open({str(log)!r}, 'a').write(f'{{lang}}:{{Path(out_dir).name}}:end:{{time.time()}}:-\\n')\n"
            "(Path(out_dir) / 'outputs.json').write_text('{}')\n")
    for stage in study.STAGES[:3]:
        write_notebook(folder / stage.notebook, body)
    names = [s.name for s in study.STAGES[:3]]
    before = os.environ.get("OMP_NUM_THREADS")
    results = study.run_study(["tbx", "mnx"], "quick", names, tmp_path / "runs", log=lambda *_: None, jobs=2)
    assert os.environ.get("OMP_NUM_THREADS") == before  # the parent's own setting comes back
    assert sorted((r.lang, r.stage, r.status) for r in results) == sorted((l, s, "ran") for l in ("tbx", "mnx")
                                                                        for s in names)
    events = [line.split(":") for line in log.read_text().splitlines()]
    for lang in ("tbx", "mnx"):
        assert [e[1] for e in events if e[0] == lang and e[2] == "start"] == names  # in order within a chain
    data_end = max(float(e[3]) for e in events if e[1] == "data" and e[2] == "end")
    rest = [e for e in events if e[1] != "data"]
    assert min(float(e[3]) for e in rest) >= data_end  # the shared builds first, alone
    assert [e[0] for e in events if e[1] == "data" and e[2] == "start"] == ["tbx", "mnx"]
    data_overlap = [e for e in events if e[1] == "data"]
    assert [e[2] for e in data_overlap] == ["start", "end", "start", "end"]  # one language at a time
    first_start = {lang: min(float(e[3]) for e in rest if e[0] == lang) for lang in ("tbx", "mnx")}
    last_end = {lang: max(float(e[3]) for e in rest if e[0] == lang) for lang in ("tbx", "mnx")}
    assert first_start["mnx"] < last_end["tbx"] and first_start["tbx"] < last_end["mnx"]  # they overlapped
    assert {e[4] for e in rest if e[2] == "start"} == {str(max(1, (os.cpu_count() or 1) // 2))}
    assert {e[4] for e in events if e[1] == "data" and e[2] == "start"} == {str(before)}
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        study.run_study(["tbx"], "quick", names, tmp_path / "runs2", log=lambda *_: None, jobs=0)


def test_stage_graph_starts_table5_once_every_language_has_merged():
    """The scheduler's graph: a stage waits for the stages it reads (its own language's; the shared data stage
    has run before); the multi-language merge for every language's merging, not for their evaluations; the
    paper stage for everything it reads."""
    stages = [s for s in study.STAGES if not s.builds_shared]
    tasks, needs = study.stage_graph(stages, ["tbx", "mnx"])
    assert tasks[-2:] == [("all", "multilingual"), ("all", "paper")]
    assert needs["tbx", "sft"] == {("tbx", "pretraining")} and needs["mnx", "pretraining"] == set()
    assert needs["mnx", "conflicts"] == {("mnx", "pretraining"), ("mnx", "sft")}  # not the merges
    assert needs["tbx", "ties_sv"] == {("tbx", s) for s in ("pretraining", "sft", "merging")}  # not the evaluation
    assert needs["all", "multilingual"] == {(l, s) for l in ("tbx", "mnx") for s in ("pretraining", "sft", "merging")}
    assert {("tbx", "evaluation"), ("mnx", "ties_sv"), ("all", "multilingual")} <= needs["all", "paper"]


def test_run_graph_runs_each_task_once_after_its_needs_and_stops_after_a_failure():
    import threading
    import time

    order, lock = [], threading.Lock()

    def run(task):
        with lock:
            order.append(("start", task))
        time.sleep(0.05)
        with lock:
            order.append(("end", task))
        return task != "bad"

    tasks = ["a", "b", "c", "d"]
    needs = {"c": {"a", "b"}, "d": {"c"}}
    assert study.run_graph(tasks, needs, 2, run)
    position = {event: i for i, event in enumerate(order)}
    assert position["start", "c"] > max(position["end", "a"], position["end", "b"])
    assert position["start", "d"] > position["end", "c"]
    assert position["start", "b"] < position["end", "a"]  # two workers: a and b side by side
    order.clear()
    assert not study.run_graph(["bad", "x", "after"], {"after": {"bad"}}, 2, run)
    assert ("start", "after") not in order


def test_unknown_stage_profile_or_language_is_refused(tmp_path):
    with pytest.raises(ValueError, match="allowed"):
        study.run_study(["tbx"], "quick", ["pretrain"], tmp_path)
    with pytest.raises(ValueError, match="allowed"):
        study.run_study(["tbx"], "huge", None, tmp_path)
    with pytest.raises(ValueError, match="--lang: tam not served by profile 'quick'"):
        study.run_study(["tam"], "quick", None, tmp_path)
    with pytest.raises(ValueError, match="--lang: tbx not served by profile 'real-cpu'"):
        study.run_study(["tbx"], "real-cpu", None, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was built


@pytest.mark.parametrize("lang", ["tam", "tel", "ory", "ben", "bod", "uig", "mvf"])
def test_paper_dry_run_plans_every_stage_without_downloading(lang, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LRMERGE_RUNS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "lrmerge.cli", "study", "--lang", lang, "--profile", "paper", "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for stage in study.STAGE_NAMES:
        assert f"[{stage}]" in proc.stdout
    assert "meta-llama/Llama-2-7b-hf" in proc.stdout and "GPU hours" in proc.stdout and "disk" in proc.stdout
    assert "steps" in proc.stdout and "checkpoints    8" in proc.stdout
    assert not any(tmp_path.iterdir())  # nothing downloaded or written


def test_paper_profile_stops_at_once_without_a_gpu(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LRMERGE_RUNS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "lrmerge.cli", "study", "--lang", "tam", "--profile", "paper"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "needs the hub and a GPU" in proc.stderr and "Traceback" not in proc.stderr
    assert "meta-llama/Llama-2-7b-hf" in proc.stderr and "uonlp/CulturaX" in proc.stderr
    assert "facebook/belebele" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


def test_set_overrides_parse_literals_and_name_bad_items():
    parsed = study.parse_overrides(["seed=3", "ties_densities=0.01,0.2,1.0", "interactive=False", "lang=tbx", "sft_lr=2e-3"])
    assert parsed == {"seed": 3, "ties_densities": "0.01,0.2,1.0", "interactive": False, "lang": "tbx", "sft_lr": 0.002}
    for bad in ("seed", "=3", "two words=1"):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            study.parse_overrides([bad])
