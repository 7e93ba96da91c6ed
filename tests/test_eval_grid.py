"""Grid search of merges: resume after an interruption, best-by-dev choice, merged weights cleaned up."""

import json

import pytest
import torch
from safetensors.torch import load_file

from lrmerge.eval.grid import MergeCandidate, grid_search, slack_sweep, ties_grid, wavg_grid


def weight_evaluator(calls):
    """Scores a merged folder by two deterministic functions of its weights (stands in for dev accuracy)."""

    def evaluate(folder):
        calls.append(folder.name)
        state = load_file(str(folder / "model.safetensors"))
        flat = torch.cat([t.flatten() for t in state.values()])
        return {"task_a": float(torch.sigmoid(flat.mean() * 100)), "task_b": float(torch.sigmoid(flat.std() - 0.02))}

    return evaluate


@pytest.fixture
def trio(tiny_llama_factory):
    base = tiny_llama_factory("base", seed=0)
    sft = tiny_llama_factory("sft", seed=1, base=base, scale=0.02)
    ct = tiny_llama_factory("ct", seed=2, base=base, scale=0.05)
    return str(base), str(sft), str(ct)


def test_grid_definitions_follow_appendix_b():
    grid = ties_grid()
    assert len(grid) == 36 and {c.density_sft for c in grid} == {0.01, 0.2, 0.4, 0.6, 0.8, 1.0}
    assert all(abs(c.weight_sft + c.weight_ct - 1) < 1e-12 for c in wavg_grid())
    sweep = slack_sweep(0.2, 1.0)
    assert [c.slack for c in sweep][0] == 0.0 and 0.04 in [c.slack for c in sweep]
    config = MergeCandidate("ties_sv", 0.2, 1.0, slack=0.04).to_config("B", "S", ["C"])
    assert config["models"][0] == {"model": "S", "parameters": {"weight": 1.0, "density": 0.2}}
    assert config["parameters"] == {"normalize": True, "slack": 0.04, "priority": 0}
    assert "base_model" not in MergeCandidate("linear", weight_sft=0.3, weight_ct=0.7).to_config("B", "S", ["C"])


def test_interrupted_search_resumes_without_recomputing(trio, tmp_path):
    base, sft, ct = trio
    candidates = ties_grid((0.2, 1.0)) + wavg_grid((0.3, 0.7))
    work = tmp_path / "grid"
    calls: list[str] = []
    evaluate = weight_evaluator(calls)
    k = 3

    def killed_after_k(folder):
        if len(calls) == k:
            raise KeyboardInterrupt("simulated kill")
        return evaluate(folder)

    with pytest.raises(KeyboardInterrupt):
        grid_search(candidates, base, sft, [ct], killed_after_k, work, {"tasks": ["a", "b"]}, progress=False)
    first_scores = sorted((work / "scores").glob("*.json"))
    assert len(first_scores) == k
    stamps = {p.name: p.stat().st_mtime_ns for p in first_scores}
    calls.clear()
    result = grid_search(candidates, base, sft, [ct], evaluate, work, {"tasks": ["a", "b"]}, progress=False)
    assert len(calls) == len(candidates) - k  # the first k were read from the cache
    assert len(result.computed) == len(candidates) - k
    assert {p.name: p.stat().st_mtime_ns for p in first_scores} == stamps
    # the choice is the argmax of the dev average, recomputed here by hand from the cached records
    records = [json.loads(p.read_text()) for p in (work / "scores").glob("*.json")]
    best = max(records, key=lambda r: sum(r["scores"].values()) / 2)
    assert MergeCandidate(**best["candidate"]) == result.best
    assert not any((work / "models").iterdir())  # merged weights deleted after scoring
    # a different evaluation (other tasks) does not reuse these scores
    calls.clear()
    grid_search(candidates[:2], base, sft, [ct], evaluate, work, {"tasks": ["c"]}, progress=False)
    assert len(calls) == 2


def test_keep_models_keeps_loadable_merges(trio, tmp_path):
    from transformers import AutoModelForCausalLM

    base, sft, ct = trio
    result = grid_search([MergeCandidate("ties", 0.2, 1.0)], base, sft, [ct], weight_evaluator([]), tmp_path,
                         {"tasks": ["a"]}, keep_models=True, progress=False)
    kept = tmp_path / "models" / result.table["key"].iloc[0]
    assert AutoModelForCausalLM.from_pretrained(kept).num_parameters() > 0


def test_method_grid_builds_candidates_of_any_registered_method():
    from lrmerge.eval.grid import candidate_record, method_grid
    from lrmerge.merge.config import load_config
    from lrmerge.merge.methods import MERGE_METHODS

    grid = method_grid("dare_ties", density_sft=[0.2, 0.4], density_ct=[1.0, 0.6], random_seed=3)
    assert [(c.density_sft, c.density_ct) for c in grid] == [(0.2, 1.0), (0.2, 0.6), (0.4, 1.0), (0.4, 0.6)]
    assert grid[0].label == "DARE-TIES k_sft=0.2 k_ct=1 seed=3"
    config = grid[1].to_config("B", "S", ["C"])
    assert config["merge_method"] == "dare_ties" and config["base_model"] == "B"
    assert config["models"][1] == {"model": "C", "parameters": {"weight": 1.0, "density": 0.6}}
    swaps = method_grid("layer_swap", bottom=[1, 2], top=1)
    assert [c.label for c in swaps] == ["Layer swap bottom=1 top=1", "Layer swap bottom=2 top=1"]
    assert swaps[1].to_config("B", "S", ["C"]) == {"merge_method": "layer_swap", "models": [{"model": "S"}, {"model": "C"}],
                                                   "parameters": {"bottom": 2, "top": 1}, "dtype": "float32"}
    crumbs = method_grid("breadcrumbs_ties", density_sft=0.3, gamma=[0.01, 0.05], **{"lambda": 1.2})
    assert crumbs[1].to_config("B", "S", ["C"])["parameters"] == {"gamma": 0.05, "lambda": 1.2}
    wavg = method_grid("linear", weight_sft=[0.1, 0.3], weight_ct=None)
    assert wavg == wavg_grid((0.1, 0.3)) and wavg[0].label == "WAVG w_sft=0.1"
    assert method_grid("ties", density_sft=[0.2], density_ct=[1.0]) == [MergeCandidate("ties", 0.2, 1.0)]
    for name in MERGE_METHODS:  # every method's grid point is a config the merge accepts
        density = {"density_sft": 0.5} if "density" in MERGE_METHODS[name].model_params else {}
        for candidate in method_grid(name, **density):
            load_config(candidate.to_config("B", "S", ["C"]))
    with pytest.raises(ValueError, match="unknown parameter"):
        method_grid("dare_ties", gamma=[0.1])
    with pytest.raises(ValueError, match="has no density"):
        method_grid("layer_swap", density_sft=[0.2])
    with pytest.raises(ValueError, match="unknown merge method"):
        MergeCandidate("dare")
    # records of older code round-trip and keep their cache keys; new fields only where they say something
    old = {"method": "ties", "density_sft": 0.2, "density_ct": 1.0, "weight_sft": 1.0, "weight_ct": 1.0, "slack": 0.0}
    assert candidate_record(MergeCandidate(**old)) == old
    record = candidate_record(crumbs[1])
    assert MergeCandidate(**json.loads(json.dumps(record))) == crumbs[1]
    assert "random_seed" in candidate_record(grid[0]) and "random_seed" not in record


def test_grid_search_over_new_methods_names_them(trio, tmp_path):
    base, sft, ct = trio
    from lrmerge.eval.grid import method_grid

    candidates = method_grid("dare_ties", density_sft=[0.5], density_ct=[1.0]) + method_grid("layer_swap", bottom=1, top=1)
    result = grid_search(candidates, base, sft, [ct], weight_evaluator([]), tmp_path, {"tasks": ["a"]}, progress=False)
    assert list(result.table["label"]) == ["DARE-TIES k_sft=0.5 k_ct=1", "Layer swap bottom=1 top=1"]
    assert list(result.table["method"]) == ["dare_ties", "layer_swap"]
