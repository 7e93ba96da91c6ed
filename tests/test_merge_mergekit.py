"""Parity with mergekit 0.1.5 on the same tiny Llama checkpoints (inputs are random floats: no threshold ties)."""

import pytest
import torch
from safetensors.torch import load_file

from lrmerge.merge import merge

mergekit_merge = pytest.importorskip("mergekit.merge")  # one ~7 s import for the module
from mergekit.config import MergeConfiguration  # noqa: E402
from mergekit.options import MergeOptions  # noqa: E402


def _load_folder(folder):
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    return tensors


def _run_mergekit(config, out):
    options = MergeOptions(copy_tokenizer=False, quiet=True, write_model_card=False, device="cpu")
    mergekit_merge.run_merge(MergeConfiguration.model_validate(config), str(out), options)
    return _load_folder(out)


@pytest.fixture
def trio(tiny_llama_factory):
    base = tiny_llama_factory("base", seed=0)
    return base, tiny_llama_factory("sft", seed=1, base=base), tiny_llama_factory("ct", seed=2, base=base, scale=0.03)


CASES = {
    "linear": {"merge_method": "linear", "parameters": {},
               "weights": (0.3, 0.9), "densities": None},
    "task_arithmetic": {"merge_method": "task_arithmetic", "parameters": {"lambda": 0.7},
                        "weights": (0.6, 1.3), "densities": None},
    "task_arithmetic_normalized": {"merge_method": "task_arithmetic", "parameters": {"normalize": True},
                                   "weights": (0.6, 1.3), "densities": None},
    "ties": {"merge_method": "ties", "parameters": {}, "weights": (1.0, 0.7), "densities": (0.2, 1.0)},
    "ties_unnormalized": {"merge_method": "ties", "parameters": {"normalize": False, "lambda": 1.4},
                          "weights": (0.5, 1.5), "densities": (0.35, 0.8)},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_equal_mergekit(case, trio, tmp_path):
    base, sft, ct = trio
    spec = CASES[case]
    models = []
    for path, w, i in zip((sft, ct), spec["weights"], range(2)):
        params = {"weight": w}
        if spec["densities"]:
            params["density"] = spec["densities"][i]
        models.append({"model": str(path), "parameters": params})
    config = {"merge_method": spec["merge_method"], "models": models, "parameters": spec["parameters"], "dtype": "float32"}
    if spec["merge_method"] != "linear":
        config["base_model"] = str(base)
    theirs = _run_mergekit(config, tmp_path / "mergekit")
    ours = _load_folder(merge(config, tmp_path / "ours", device="cpu", progress=False))
    assert set(ours) == set(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-6, rtol=0, msg=lambda m: f"{case} {name}: {m}")
    assert any(not torch.equal(ours[n], load_file(str(base / "model.safetensors"))[n]) for n in ours)


def test_ties_sv_through_mergekit_registry_equals_ours(trio, tmp_path):
    from lrmerge.merge import mergekit_plugin

    mergekit_plugin.register()
    mergekit_plugin.register()  # idempotent
    base, sft, ct = trio
    models = [{"model": str(sft), "parameters": {"weight": 1.0, "density": 0.2}},
              {"model": str(ct), "parameters": {"weight": 1.0, "density": 1.0}}]
    mk = {"merge_method": "ties_sv", "base_model": str(base), "models": models, "dtype": "float32",
          "parameters": {"slack": 0.1, "priority": 0}}
    theirs = _run_mergekit(mk, tmp_path / "mergekit")
    ours_cfg = {**mk, "parameters": {"slack": 0.1, "priority": str(sft)}}
    ours = _load_folder(merge(ours_cfg, tmp_path / "ours", device="cpu", progress=False))
    plain = _load_folder(merge({**mk, "merge_method": "ties", "parameters": {}}, tmp_path / "ties", device="cpu",
                               progress=False))
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-6, rtol=0)
    assert any(not torch.equal(ours[n], plain[n]) for n in ours)  # the slack changed something


def test_plugin_cli_wrapper_runs_mergekit_yaml(trio, tmp_path):
    import yaml

    from lrmerge.merge import mergekit_plugin

    base, sft, ct = trio
    config = {"merge_method": "ties_sv", "base_model": str(base), "dtype": "float32",
              "models": [{"model": str(sft), "parameters": {"weight": 1.0, "density": 0.3}},
                         {"model": str(ct), "parameters": {"weight": 1.0}}]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    mergekit_plugin.main([str(path), str(out), "--no-copy-tokenizer", "--quiet"])
    ours = _load_folder(merge(config, tmp_path / "ours", device="cpu", progress=False))
    theirs = _load_folder(out)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-6, rtol=0)
