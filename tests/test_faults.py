"""Fault injection: one test (or a few) per numbered case of issue #14, each failing on the code before the fix.

Tiny models, planted files, killed processes and bad input; every test asserts what must (not) be left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lrmerge import study
from notebook_stubs import write_notebook
from lrmerge.errors import UserError
from lrmerge.runs import atomic_output_dir, atomic_write_text, content_identity

REPO = Path(__file__).resolve().parent.parent
LRMERGE = Path(sys.executable).with_name("lrmerge")


def _ties(base, *models, weights=None, **parameters):
    weights = weights or [1.0] * len(models)
    return {"merge_method": "ties", "base_model": str(base),
            "models": [{"model": str(m), "parameters": {"weight": w, "density": 0.5}} for m, w in zip(models, weights)],
            "parameters": parameters}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftovers(parent: Path, name: str) -> list[Path]:
    return sorted(parent.glob(f".{name}.tmp-*")) + sorted(parent.glob(f".{name}.old-*"))


@pytest.fixture
def trio(tiny_llama_factory):
    base = tiny_llama_factory("base", seed=0)
    return base, tiny_llama_factory("sft", seed=1, base=base), tiny_llama_factory("ct", seed=2, base=base)


# ------------------------------------------------------------------ 1. --overwrite never deletes an input

@pytest.mark.parametrize("where", ["base", "parent", "inside"])
def test_case01_merge_output_never_aliases_an_input(trio, tmp_path, where):
    from lrmerge.merge.engine import merge

    base, sft, ct = trio
    out = {"base": base, "parent": tmp_path, "inside": base / "merged"}[where]
    (tmp_path / "notes.txt").write_text("the user's other file")
    before = {p: _snapshot(p) for p in (base, sft, ct)}
    with pytest.raises(UserError, match="input"):
        merge(_ties(base, sft, ct), out, device="cpu", overwrite=True, progress=False)
    assert {p: _snapshot(p) for p in (base, sft, ct)} == before
    assert (tmp_path / "notes.txt").read_text() == "the user's other file"


# ------------------------------------------------------------------ 2. no NaN / inf model with exit code 0

@pytest.mark.parametrize("case", ["linear_0_0", "linear_1_minus1", "weight_inf", "weight_nan", "lambda_nan",
                                  "ties_all_zero"])
def test_case02_non_finite_or_zero_sum_parameters_are_refused(case):
    from lrmerge.merge.config import load_config

    def linear(*weights):
        return {"merge_method": "linear", "models": [{"model": f"m{i}", "parameters": {"weight": w}}
                                                     for i, w in enumerate(weights)]}

    config = {"linear_0_0": linear(0.0, 0.0), "linear_1_minus1": linear(1.0, -1.0),
              "weight_inf": linear(float("inf"), 1.0), "weight_nan": linear(float("nan"), 1.0),
              "lambda_nan": _ties("b", "m0", "m1", **{"lambda": float("nan")}),
              "ties_all_zero": _ties("b", "m0", "m1", weights=[0.0, 0.0])}[case]
    with pytest.raises(ValueError, match="finite|sum to 0|every model weight is 0"):
        load_config(config)


def test_case02_float16_overflow_is_caught_after_the_cast(tiny_llama_factory, tmp_path):
    from lrmerge.merge.engine import merge

    a, b = tiny_llama_factory("a", seed=0), tiny_llama_factory("b", seed=1)
    for folder in (a, b):
        tensors = load_file(folder / "model.safetensors")
        tensors["model.norm.weight"] = torch.full_like(tensors["model.norm.weight"], 60000.0)  # finite in float32
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = {"merge_method": "linear", "parameters": {"normalize": False}, "out_dtype": "float16",
              "models": [{"model": str(a), "parameters": {"weight": 1.0}}, {"model": str(b), "parameters": {"weight": 1.0}}]}
    with pytest.raises(UserError, match="model.norm.weight.*float16"):
        merge(config, tmp_path / "out", device="cpu", progress=False)
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path, "out")


# ------------------------------------------------------------------ 3. no stale results

def test_case03_merge_is_not_reused_after_an_input_changed_in_place(trio, tmp_path):
    from lrmerge.merge.engine import merge

    base, sft, ct = trio
    out = merge(_ties(base, sft, ct), tmp_path / "out", device="cpu", progress=False)
    first = load_file(out / "model.safetensors")
    assert merge(_ties(base, sft, ct), out, device="cpu", progress=False) == out  # same inputs: reused
    tensors = load_file(sft / "model.safetensors")
    tensors["model.norm.weight"] += 1.0  # same shapes, same header, same size: only the bytes differ
    size = (sft / "model.safetensors").stat().st_size
    save_file(tensors, str(sft / "model.safetensors"), metadata={"format": "pt"})
    assert (sft / "model.safetensors").stat().st_size == size
    stat = (sft / "model.safetensors").stat()
    os.utime(sft / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(FileExistsError, match="--overwrite"):  # not the old merge, silently
        merge(_ties(base, sft, ct), out, device="cpu", progress=False)
    merge(_ties(base, sft, ct), out, device="cpu", overwrite=True, progress=False)
    assert not torch.equal(load_file(out / "model.safetensors")["model.norm.weight"], first["model.norm.weight"])


def test_case03_eval_cache_is_keyed_on_model_content_not_path(tmp_path, monkeypatch):
    from lrmerge.eval import runner
    from lrmerge.eval.tasks import tasks_for_language

    spec = tasks_for_language("tbx")[0]
    model = tmp_path / "model"

    def write(value: float):
        model.mkdir(exist_ok=True)
        save_file({"w": torch.tensor([value])}, str(model / "model.safetensors"))
        (model / "config.json").write_text("{}")

    def fake_load(path, device="auto"):
        return float(load_file(Path(path) / "model.safetensors")["w"]), None

    def fake_task(loaded, tokenizer, spec, items, *args, **kwargs):
        return runner.TaskResult(spec.name, loaded, 1, 0.0, 0, 0, [])

    monkeypatch.setattr(runner, "load_model", fake_load)
    monkeypatch.setattr(runner, "evaluate_task", fake_task)
    write(0.25)
    first = runner.evaluate(model, [spec], items={spec.name: ["x"]}, cache_dir=tmp_path / "parts", progress=False)
    write(0.75)  # another model written to the same path
    second = runner.evaluate(model, [spec], items={spec.name: ["x"]}, cache_dir=tmp_path / "parts", progress=False)
    assert first.tasks[spec.name].accuracy == 0.25 and second.tasks[spec.name].accuracy == 0.75


def test_case03_content_identity_sees_in_place_rewrites(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    save_file({"w": torch.zeros(4)}, str(folder / "model.safetensors"))
    before = content_identity(folder)
    save_file({"w": torch.ones(4)}, str(folder / "model.safetensors"))
    stat = (folder / "model.safetensors").stat()
    os.utime(folder / "model.safetensors", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert content_identity(folder) != before


# ------------------------------------------------------------------ study fixtures (stand-in notebooks)

BODY = ("import time\nfrom pathlib import Path\nPath(out_dir).mkdir(parents=True, exist_ok=True)\n"
        "if fail:\n    raise RuntimeError('failing on purpose')\n"
        "if seed == 7:\n    (Path(out_dir) / 'started').write_text('1')\n    time.sleep(120)\n"
        "(Path(out_dir) / 'done.txt').write_text(f'{lang} {seed}')\n"
        "(Path(out_dir) / 'outputs.json').write_text('{}')\n")
PARAMS = "lang = 'x'\nout_dir = ''\nseed = 0\nfail = 0\nties_densities = '0.2,1.0'  # a comma list\n"


@pytest.fixture
def fake_study(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for stage in study.STAGES:
        if stage.name == "paper":
            write_notebook(folder / stage.notebook,
                           "from pathlib import Path\nimport json\n"
                           "for d in (figures_dir, tables_dir):\n    Path(d).mkdir(parents=True, exist_ok=True)\n"
                           "(Path(figures_dir) / 'figure2.png').write_text(profile)\n"
                           "(Path(tables_dir) / 'table3.md').write_text(profile)\n"
                           "Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
                           "(Path(out_dir) / 'outputs.json').write_text(json.dumps({'readme': update_readme}))\n",
                           params="lang = 'all'\nout_dir = ''\nprofile = 'demo'\nfigures_dir = '../figures'\n"
                                  "tables_dir = '../tables'\nupdate_readme = False\n")
        else:
            write_notebook(folder / stage.notebook, BODY, PARAMS)
    env = {"JUPYTER_RUNTIME_DIR": tmp_path / "jr", "JUPYTER_DATA_DIR": tmp_path / "jd", "IPYTHONDIR": tmp_path / "ipy",
           "LRMERGE_NOTEBOOKS": folder}
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return tmp_path


QUIET = {"log": lambda *_: None}


# ------------------------------------------------------------------ 4. one study per run folder; complete = outputs

@pytest.mark.slow
def test_case04_a_second_study_on_the_same_run_folder_is_refused(fake_study):
    root = fake_study / "runs"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from lrmerge.study import run_folder_lock
            with run_folder_lock({str(root)!r}):
                print("held", flush=True)
                time.sleep(60)
            """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=r"in use by another `lrmerge study` \(pid \d+\)"):
            study.run_study(["tbx"], "quick", ["data"], root, **QUIET)
        assert not (root / "tbx").exists()  # nothing was touched
    finally:
        holder.kill()
        holder.wait()
    assert [r.status for r in study.run_study(["tbx"], "quick", ["data"], root, **QUIET)] == ["ran"]


@pytest.mark.slow
def test_case04_a_stage_without_its_outputs_is_never_complete(fake_study):
    root = fake_study / "runs"
    study.run_study(["tbx"], "quick", ["data"], root, **QUIET)
    (root / "tbx" / "data" / "outputs.json").unlink()  # what run 1 left in run 2's half-built folder
    again = study.run_study(["tbx"], "quick", ["data"], root, **QUIET)
    assert [r.status for r in again] == ["ran"] and (root / "tbx" / "data" / "outputs.json").exists()


@pytest.mark.slow
def test_case04_a_killed_study_resumes_and_never_lies(fake_study):
    """SIGKILL in the middle of a rerun: the rerun's half-built folder is set aside, the complete old one comes
    back, and the next run skips exactly what is complete."""
    root = fake_study / "runs"
    stages = ["data", "pretraining"]
    study.run_study(["tbx"], "quick", stages, root, **QUIET)
    script = (f"from lrmerge import study\n"
              f"study.run_study(['tbx'], 'quick', {stages!r}, {str(root)!r}, overrides={{'seed': 7}})\n")
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (root / "tbx" / "data" / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the stand-in stage never started"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for folder in (root / "tbx").iterdir():  # nothing marked complete without its outputs
        if (folder / study.COMPLETE).exists():
            assert (folder / "outputs.json").exists(), folder
    again = study.run_study(["tbx"], "quick", stages, root, **QUIET)
    assert [r.status for r in again] == ["skipped", "skipped"]
    assert (root / "tbx" / "data" / "done.txt").read_text() == "tbx 0"
    assert not list((root / "tbx").glob(".data.old-*"))


# ------------------------------------------------------------------ 5. a bad --set destroys nothing

@pytest.mark.slow
def test_case05_bad_set_is_refused_before_any_folder_is_touched(fake_study):
    root = fake_study / "runs"
    study.run_study(["tbx"], "quick", ["data"], root, **QUIET)
    done = root / "tbx" / "data" / "done.txt"
    with pytest.raises(UserError, match=r"--set seed=abc: parameter seed .* is an int"):
        study.run_study(["tbx"], "quick", ["data"], root, overrides={"seed": "abc"}, **QUIET)
    with pytest.raises(UserError, match=r"no parameter 'sede'.*did you mean 'seed'"):
        study.run_study(["tbx"], "quick", ["data"], root, overrides={"sede": 1}, **QUIET)
    with pytest.raises(UserError, match="--lang: unknown language"):
        study.run_study(["xx"], "quick", ["data"], fake_study / "elsewhere", **QUIET)
    assert not (fake_study / "elsewhere").exists()
    assert done.read_text() == "tbx 0"


@pytest.mark.slow
def test_case05_a_failing_rerun_keeps_the_completed_outputs(fake_study):
    root = fake_study / "runs"
    study.run_study(["tbx"], "quick", ["data"], root, **QUIET)
    failed = study.run_study(["tbx"], "quick", ["data"], root, overrides={"fail": 1}, **QUIET)
    assert [r.status for r in failed] == ["failed"] and "failing on purpose" in failed[0].message
    assert (root / "tbx" / "data" / "done.txt").read_text() == "tbx 0"
    assert (root / "tbx" / "data.failed" / study.STAGES[0].notebook).exists()  # the failed attempt, for a look
    assert [r.status for r in study.run_study(["tbx"], "quick", ["data"], root, **QUIET)] == ["skipped"]


@pytest.mark.slow
def test_case05_one_point_grid_stays_text_through_the_cli(fake_study):
    from lrmerge.cli import main

    root = fake_study / "runs"
    folder = fake_study / "notebooks"
    write_notebook(folder / study.STAGES[0].notebook,
                   "assert isinstance(ties_densities, str), type(ties_densities)\n" + BODY, PARAMS)
    assert main(["study", "--lang", "tbx", "--profile", "quick", "--stages", "data", "--root", str(root),
                 "--set", "ties_densities=0.2"]) == 0
    record = json.loads((root / "tbx" / "data" / study.COMPLETE).read_text())
    assert record["parameters"]["ties_densities"] == "0.2"


def test_case05_set_values_take_the_parameter_type():
    assert study.coerce_parameter("ties_densities", "0.2", "str", "04") == "0.2"
    assert study.coerce_parameter("seed", "3", "int", "02") == 3
    assert study.coerce_parameter("sft_lr", "2e-3", "float", "03") == 0.002
    assert study.coerce_parameter("interactive", "false", "bool", "06") is False
    with pytest.raises(UserError, match="--set seed=abc"):
        study.coerce_parameter("seed", "abc", "int", "02")


# ------------------------------------------------------------------ the study's declared reads

@pytest.mark.slow
def test_reads_rerun_only_the_stages_that_read_a_change(fake_study):
    root = fake_study / "runs"
    folder = fake_study / "notebooks"
    names = [s.name for s in study.STAGES if s.scope == "language"]
    study.run_study(["tbx"], "quick", names, root, **QUIET)
    evaluation = next(s for s in study.STAGES if s.name == "evaluation")
    write_notebook(folder / evaluation.notebook, BODY, PARAMS + "eval_batch = 8\n")
    again = study.run_study(["tbx"], "quick", names, root, overrides={"eval_batch": 16}, **QUIET)
    ran = [r.stage for r in again if r.status == "ran"]
    assert ran == ["evaluation"], ran  # conflicts and ties_sv do not read the evaluation


# ------------------------------------------------------------------ 6. the ledger refuses what the merge refuses

def test_case06_ledger_refuses_another_architecture_or_layer_count(tiny_llama_factory, tmp_path):
    from lrmerge.conflicts.series import compute_series

    base = tiny_llama_factory("base", seed=0)
    sft = tiny_llama_factory("sft", seed=1, base=base)
    deeper = tiny_llama_factory("deeper", seed=2, layers=3)
    with pytest.raises(ValueError, match="deeper: tensor\\(s\\) absent from base"):
        compute_series(base, sft, [deeper], progress=False)
    qwen = tiny_llama_factory("qwen", seed=3, base=base)
    config = json.loads((qwen / "config.json").read_text())
    (qwen / "config.json").write_text(json.dumps({**config, "model_type": "qwen2"}))
    with pytest.raises(ValueError, match="different architectures.*model_type"):
        compute_series(base, sft, [qwen], progress=False)


def test_case06_colliding_checkpoint_labels_stay_apart(tiny_llama_factory):
    from lrmerge.conflicts.series import compute_series

    base = tiny_llama_factory("base", seed=0)
    sft = tiny_llama_factory("sft", seed=1, base=base)
    cts = [tiny_llama_factory(f"{lang}/run/ct/tokens-400000", seed=s, base=base)
           for lang, s in (("tbx", 2), ("mnx", 3))]
    table = compute_series(base, sft, cts, progress=False)
    labels = sorted(table["checkpoint"].unique())
    assert len(labels) == 2 and labels[0].startswith("mnx") and labels[1].startswith("tbx")
    numel = table.groupby("checkpoint")["numel"].sum()
    assert numel.iloc[0] == numel.iloc[1]  # each row counts one checkpoint, not a blend


# ------------------------------------------------------------------ 7. no code runs from the run folder

class _Tokenizer:
    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __len__(self):
        return 40

    def __call__(self, documents):
        return {"input_ids": [[1] + [3 + ord(c) % 37 for c in d] for d in documents]}


class _Planted:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _base_config():
    from lrmerge.demo.config import BaseModelConfig

    return BaseModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, seq_len=8, batch_size=2,
                           lr=1e-3, epochs=1)


def test_case07_planted_pickle_in_the_work_folder_never_runs(tmp_path):
    from lrmerge.demo.base import pretrain_base

    work = tmp_path / ".work-key"
    work.mkdir()
    marker = tmp_path / "code-ran"
    torch.save({"model": _Planted(str(marker)), "step": 1}, work / "pretrain_state.pt")
    (work / "pretrain_state.json").write_text(json.dumps({"step": 1, "schedule": {}}))
    with pytest.raises(UserError, match="pretrain_state.pt"):
        pretrain_base(["abcdefgh" * 8] * 4, _Tokenizer(), _base_config(), 0, work, progress=False)
    assert not marker.exists()


def test_case07_resume_still_works_weights_only(tmp_path):
    from lrmerge.demo.base import pretrain_base

    docs = ["abcdefgh" * 8] * 4
    first, stats = pretrain_base(docs, _Tokenizer(), _base_config(), 0, tmp_path, save_every=1, progress=False)
    assert (tmp_path / "pretrain_state.pt").exists() and (tmp_path / "pretrain_state.json").exists()
    saved = json.loads((tmp_path / "pretrain_state.json").read_text())["step"]
    assert 0 < saved < stats["steps"]
    resumed, _ = pretrain_base(docs, _Tokenizer(), _base_config(), 0, tmp_path, save_every=1, progress=False)
    for (name, a), (_, b) in zip(first.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name  # the last step replayed from the saved state


# ------------------------------------------------------------------ 8. the browser test's JupyterLab has a token

@pytest.mark.slow
def test_case08_test_jupyterlab_refuses_requests_without_its_token(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_browser_explorer import lab_command, lab_env, start_lab, stop_lab

    command = lab_command(1234, tmp_path, "t0k")
    empty_token = "--IdentityProvider.token" + "="  # the flag with no value: no token at all
    assert "--IdentityProvider.token=t0k" in command and empty_token not in command
    root = tmp_path / "root"
    root.mkdir()
    server, url, token = start_lab(tmp_path, root, lab_env(tmp_path))
    try:
        assert len(token) >= 24
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/api/kernels", timeout=10)
        assert refused.value.code == 403
        with urllib.request.urlopen(urllib.request.Request(f"{url}/api/kernels",
                                                           headers={"Authorization": f"token {token}"}),
                                    timeout=10) as answer:
            assert answer.status == 200
    finally:
        stop_lab(server)


# ------------------------------------------------------------------ 9. temp folders never leak

HOLD = textwrap.dedent("""
    import sys, time
    from lrmerge.runs import atomic_output_dir
    with atomic_output_dir(sys.argv[1]) as tmp:
        (tmp / "model.safetensors").write_bytes(b"0" * 1_000_000)
        print("ready", flush=True)
        time.sleep(60)
    """)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_case09_interrupted_output_leaves_nothing_a_rerun_does_not_clean(tmp_path, how):
    out = tmp_path / "OUT"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    assert _leftovers(tmp_path, "OUT")  # the temp folder exists while it works
    proc.send_signal(how)
    proc.wait(timeout=30)
    assert proc.returncode != 0 and not out.exists()
    if how == signal.SIGTERM:
        assert not _leftovers(tmp_path, "OUT"), "SIGTERM removes the temp folder"
    with atomic_output_dir(out) as tmp:  # the rerun sweeps what a SIGKILL left
        (tmp / "x").write_text("ok")
    assert not _leftovers(tmp_path, "OUT") and (out / "x").read_text() == "ok"


SLOW_MERGE = textwrap.dedent("""
    import json, sys, time
    from lrmerge.merge import engine

    close = engine.ShardedWriter.close

    def slow_close(self):  # every shard written, the run record not yet: the merge is interrupted here
        paths = close(self)
        print("ready", flush=True)
        time.sleep(60)
        return paths

    engine.ShardedWriter.close = slow_close
    engine.merge(json.loads(sys.argv[1]), sys.argv[2], device="cpu", progress=False)
    """)


def test_case09_sigterm_during_a_merge_removes_its_temp_folder(trio, tmp_path):
    base, sft, ct = trio
    out = tmp_path / "merged"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_MERGE, json.dumps(_ties(base, sft, ct)), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "ready"
    tmp = _leftovers(tmp_path, "merged")
    assert tmp and (tmp[0] / "model.safetensors").exists()  # the complete merge, still in its temp folder
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not out.exists() and not _leftovers(tmp_path, "merged")


def test_case09_failed_final_rename_leaves_no_temp_folder(tmp_path, monkeypatch):
    link = tmp_path / "OUT"
    link.symlink_to(tmp_path / "missing")  # a dangling symlink
    with pytest.raises((OSError, ValueError)):
        with atomic_output_dir(link, overwrite=True) as tmp:
            (tmp / "model.safetensors").write_bytes(b"0" * 1000)
    assert not _leftovers(tmp_path, "OUT")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    with pytest.raises((OSError, ValueError)):
        with atomic_output_dir(".", overwrite=True) as tmp:
            (tmp / "model.safetensors").write_bytes(b"0" * 1000)
    assert not [p for p in list(here.iterdir()) + list(tmp_path.iterdir()) if ".tmp-" in p.name]


def test_case09_rename_failure_is_inside_the_cleanup(tmp_path, monkeypatch):
    final = tmp_path / "OUT"
    real_rename = Path.rename

    def failing(self, target):
        if Path(target) == final:
            raise OSError(18, "Invalid cross-device link")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError, match="cross-device"):
        with atomic_output_dir(final) as tmp:
            (tmp / "model.safetensors").write_bytes(b"0" * 1000)
    assert not final.exists() and not _leftovers(tmp_path, "OUT")


def test_case09_stale_old_folder_is_swept(tmp_path):
    stale = tmp_path / ".OUT.old-999999999-abc"  # what a failed --overwrite (read-only old OUT) left behind
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"0")
    with atomic_output_dir(tmp_path / "OUT") as tmp:
        (tmp / "x").write_text("ok")
    assert not stale.exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores read-only folders")
def test_case09_overwrite_of_a_read_only_output_leaves_no_old_folder(tmp_path):
    out = tmp_path / "OUT"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"0")
    out.chmod(0o555)
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "x").write_text("new")
    assert (out / "x").read_text() == "new" and not _leftovers(tmp_path, "OUT")


# ------------------------------------------------------------------ 10. outputs follow the umask

def test_case10_outputs_respect_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        with atomic_output_dir(tmp_path / "model") as tmp:
            (tmp / "model.safetensors").write_bytes(b"0")
        table = atomic_write_text(tmp_path / "table.csv", "a,b\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
    assert table.stat().st_mode & 0o777 == 0o644


def test_case10_figures_respect_the_umask(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lrmerge.plots.style import save_figure

    fig = plt.figure()
    previous = os.umask(0o022)
    try:
        paths = save_figure(fig, "figure2", tmp_path, formats=["png"])
    finally:
        os.umask(previous)
        plt.close(fig)
    assert [p.stat().st_mode & 0o777 for p in paths] == [0o644]


# ------------------------------------------------------------------ 11. exports belong to their run

@pytest.mark.slow
def test_case11_exports_go_under_the_run_not_the_checkout(fake_study):
    root = fake_study / "runs"
    results = study.run_study(["tbx"], "demo", ["paper"], root, **QUIET)
    assert [r.status for r in results] == ["ran"], results[0].message
    assert (root / "exports" / "figures" / "figure2.png").read_text() == "demo"
    assert (root / "exports" / "tables" / "table3.md").read_text() == "demo"
    assert not (fake_study / "figures").exists() and not (fake_study / "tables").exists()
    assert json.loads((root / "all" / "paper" / "outputs.json").read_text()) == {"readme": False}  # not asked
    elsewhere = fake_study / "export"
    study.run_study(["tbx"], "quick", ["paper"], fake_study / "quick", export_dir=elsewhere, **QUIET)
    assert (elsewhere / "tables" / "table3.md").read_text() == "quick"
    assert (root / "exports" / "tables" / "table3.md").read_text() == "demo"  # the demo run's export is intact


# ------------------------------------------------------------------ user errors through the console script

def _merge_yaml(tmp_path, base, sft, ct, **changes) -> Path:
    import yaml

    config = _ties(base, sft, ct)
    config.update(changes)
    path = tmp_path / f"cfg{len(list(tmp_path.glob('cfg*')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_user_errors_print_one_line_and_exit_2(trio, tmp_path):
    base, sft, ct = trio
    bad_utf8 = tmp_path / "latin1.yaml"
    bad_utf8.write_bytes("merge_method: ties  # caf\xe9\n".encode("latin-1"))
    typo = tmp_path / "typo.yaml"
    typo.write_text(_merge_yaml(tmp_path, base, sft, ct).read_text().replace("density", "densty"))
    nan = tmp_path / "nan.yaml"
    nan.write_text(_merge_yaml(tmp_path, base, sft, ct).read_text().replace("weight: 1.0", "weight: .nan", 1))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    index = tmp_path / "index"
    index.mkdir()
    (index / "model.safetensors.index.json").write_text("{not json")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save({"w": torch.zeros(1)}, pickled / "pytorch_model.bin")
    no_tok = tmp_path / "no_tokenizer"
    no_tok.mkdir()
    (no_tok / "config.json").write_text("{}")
    train_bad = tmp_path / "train.yaml"
    train_bad.write_text("ct:\n  lang: tam\n  x_tokens: 0\n")
    good = _merge_yaml(tmp_path, base, sft, ct)
    cases = [
        (["merge", str(tmp_path / "nope.yaml"), str(tmp_path / "o1")], "nope.yaml"),
        (["merge", str(typo), str(tmp_path / "o2")], "did you mean 'density'"),
        (["merge", str(nan), str(tmp_path / "o3")], "finite"),
        (["merge", str(bad_utf8), str(tmp_path / "o4")], "latin1.yaml: not UTF-8"),
        (["merge", str(good), str(base), "--overwrite"], "is the input"),
        (["merge", str(_merge_yaml(tmp_path, base, sft, broken)), str(tmp_path / "o5")], "broken/model.safetensors"),
        (["merge", str(_merge_yaml(tmp_path, base, sft, index)), str(tmp_path / "o6")], "model.safetensors.index.json"),
        (["merge", str(_merge_yaml(tmp_path, base, sft, pickled)), str(tmp_path / "o7")], "--allow-pickle"),
        (["study", "--lang", "xx", "--root", str(tmp_path / "r")], "--lang"),
        (["study", "--lang", "tbx", "--root", str(tmp_path / "r"), "--set", "sede=1"], "did you mean 'seed'"),
        (["study", "--lang", "tbx", "--root", str(tmp_path / "r"), "--set", "seed=abc"], "--set seed=abc"),
        (["study", "--lang", "tbx", "--root", str(tmp_path / "r"), "--set", "seed"], "NAME=VALUE"),
        (["eval", "--model", str(no_tok), "--lang", "tbx", "--tasks", "sib200", "--source", str(tmp_path / "nodata"),
          "--out", str(tmp_path / "e")], "nodata"),
        (["conflicts", "--base", str(base), "--sft", str(sft), "--ct", str(tmp_path / "no_ct"), "--out",
          str(tmp_path / "t.csv"), "--cache-dir", str(tmp_path / "c")], "no_ct"),
        (["train", "ct", "--config", str(train_bad)], "train.yaml"),
        (["world", "--profile", "quick", "--root", str(typo)], "typo.yaml"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LRMERGE_RUNS": str(tmp_path / "runs")}
    env.pop("LRMERGE_TRACEBACK", None)
    for argv, culprit in cases:
        proc = subprocess.run([str(LRMERGE), *argv], capture_output=True, text=True, env=env, timeout=300)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode == 2, (argv, proc.stderr[-2000:])
        assert len(errors) == 1 and culprit in errors[0], (argv, proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, (argv, proc.stderr[-2000:])
    assert not (tmp_path / "r").exists()  # the study's checks come before its run folder
    traced = subprocess.run([str(LRMERGE), "merge", str(typo), str(tmp_path / "o8"), "--traceback"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert traced.returncode != 0 and "Traceback" in traced.stderr
    traced = subprocess.run([str(LRMERGE), "merge", str(typo), str(tmp_path / "o8")], capture_output=True, text=True,
                            env={**env, "LRMERGE_TRACEBACK": "1"}, timeout=300)
    assert "Traceback" in traced.stderr
