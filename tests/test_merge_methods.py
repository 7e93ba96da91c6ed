"""Every registered method through ``lrmerge merge`` (mergekit YAML): parity with mergekit 0.1.5 where it has the
method (same tensors for the deterministic ones, same distribution for the random ones), seeds, layer swapping,
and config errors."""

import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lrmerge.merge import merge
from lrmerge.merge.checkpoint import CheckpointReader
from lrmerge.merge.methods import MERGE_METHODS, TensorContext, get_method, tensor_seeds

mergekit_merge = pytest.importorskip("mergekit.merge")
from mergekit.config import MergeConfiguration  # noqa: E402
from mergekit.options import MergeOptions  # noqa: E402


def _load(folder):
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    return tensors


def _mergekit(config, out, seed=None):
    options = MergeOptions(copy_tokenizer=False, quiet=True, write_model_card=False, device="cpu", random_seed=seed)
    mergekit_merge.run_merge(MergeConfiguration.model_validate(config), str(out), options)
    return _load(out)


@pytest.fixture
def trio(tiny_llama_factory):
    base = tiny_llama_factory("base", seed=0)
    return base, tiny_llama_factory("sft", seed=1, base=base), tiny_llama_factory("ct", seed=2, base=base, scale=0.03)


def _config(method, trio, weights=(1.0, 1.0), densities=(0.3, 0.6), parameters=None, per_model=None, base=True):
    b, sft, ct = trio
    models = []
    for i, path in enumerate((sft, ct)):
        params = {"weight": weights[i]}
        if densities is not None:
            params["density"] = densities[i]
        params.update((per_model or [{}, {}])[i])
        models.append({"model": str(path), "parameters": params})
    config = {"merge_method": method, "models": models, "parameters": parameters or {}, "dtype": "float32"}
    if base:
        config["base_model"] = str(b)
    return config


DETERMINISTIC = {
    "breadcrumbs": dict(parameters={"lambda": 0.8}, per_model=[{"gamma": 0.05}, {"gamma": 0.02}]),
    "breadcrumbs_ties": dict(parameters={"normalize": True}, per_model=[{"gamma": 0.05}, {"gamma": 0.1}]),
    "ties_rescaled": dict(method="ties", parameters={"rescale": True}, weights=(1.0, 0.6)),
}


@pytest.mark.parametrize("case", sorted(DETERMINISTIC))
def test_deterministic_new_methods_equal_mergekit(case, trio, tmp_path):
    spec = dict(DETERMINISTIC[case])
    method = spec.pop("method", case)
    config = _config(method, trio, **spec)
    theirs = _mergekit(config, tmp_path / "mergekit")
    ours = _load(merge(config, tmp_path / "ours", device="cpu", progress=False))
    assert set(ours) == set(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-6, rtol=0, msg=lambda m: f"{case} {name}: {m}")


@pytest.mark.parametrize("method,extra", [("dare_linear", {}), ("della_linear", {"epsilon": 0.1})])
def test_random_methods_match_mergekit_in_distribution(method, extra, trio, tmp_path):
    """One model, weight 1: the kept share is density within binomial error for both tools, and rescale keeps
    every tensor's L1 mass of the task vector exactly (up to float rounding) in both."""
    b, sft, _ = trio
    config = {"merge_method": method, "base_model": str(b), "dtype": "float32",
              "models": [{"model": str(sft), "parameters": {"weight": 1.0, "density": 0.4, **extra}}]}
    theirs = _mergekit(config, tmp_path / "mergekit", seed=7)
    ours = _load(merge(config, tmp_path / "ours", device="cpu", progress=False, random_seed=7))
    base, tuned = _load(b), _load(sft)
    kept = {"ours": [0, 0], "theirs": [0, 0]}
    for name in ours:
        tau = tuned[name] - base[name]
        for who, merged in (("ours", ours[name]), ("theirs", theirs[name])):
            delta = merged - base[name]
            kept[who][0] += int((delta != 0).sum())
            kept[who][1] += delta.numel()
            torch.testing.assert_close(delta.abs().sum(), tau.abs().sum(), rtol=1e-4, atol=1e-6)
    for who, (k, n) in kept.items():
        assert abs(k / n - 0.4) < 5 * (0.4 * 0.6 / n) ** 0.5, who


def test_dare_ties_seed_reproducible_and_equals_the_registry_function(trio, tmp_path):
    config = _config("dare_ties", trio, weights=(1.0, 0.7), densities=(0.5, 0.5))
    a = _load(merge(config, tmp_path / "a", device="cpu", progress=False, random_seed=3))
    again = _load(merge(config, tmp_path / "again", device="cpu", progress=False, random_seed=3, overwrite=True))
    other = _load(merge(config, tmp_path / "other", device="cpu", progress=False, random_seed=4))
    assert all(torch.equal(a[n], again[n]) for n in a)
    assert any(not torch.equal(a[n], other[n]) for n in a)
    b, sft, ct = (CheckpointReader(p) for p in trio)
    spec = get_method("dare_ties")
    name = "model.layers.1.mlp.up_proj.weight"
    want, _ = spec(b.get(name), [sft.get(name), ct.get(name)], [1.0, 0.7], [0.5, 0.5],
                   context=TensorContext(name, 2, tensor_seeds(3, name, 2)), **spec.defaults())
    assert torch.equal(a[name], want)


def test_cli_random_seed(trio, tmp_path):
    config = _config("dare_linear", trio)
    path = tmp_path / "dare.yaml"
    path.write_text(yaml.safe_dump(config))
    outs = []
    for seed, out in ((1, "one"), (1, "one-again"), (2, "two")):
        subprocess.run([sys.executable, "-m", "lrmerge.cli", "merge", str(path), str(tmp_path / out), "--device", "cpu",
                        "--random-seed", str(seed)], check=True, capture_output=True)
        outs.append(_load(tmp_path / out))
    assert all(torch.equal(outs[0][n], outs[1][n]) for n in outs[0])
    assert any(not torch.equal(outs[0][n], outs[2][n]) for n in outs[0])


@pytest.mark.parametrize("bottom,top", [(1, 0), (0, 1), (1, 1), (0, 0)])
def test_layer_swap_takes_blocks_embeddings_and_head_from_the_right_model(trio, tmp_path, bottom, top):
    _, sft, ct = trio
    config = {"merge_method": "layer_swap", "dtype": "float32", "parameters": {"bottom": bottom, "top": top},
              "models": [{"model": str(sft)}, {"model": str(ct)}]}
    out = _load(merge(config, tmp_path / "swap", device="cpu", progress=False))
    task, language = _load(sft), _load(ct)
    for name, tensor in out.items():
        if "layers.0." in name:
            source = language if bottom >= 1 else task
        elif "layers.1." in name:  # the last of 2 blocks
            source = language if top >= 1 else task
        elif "embed_tokens" in name:
            source = language if bottom >= 1 else task
        else:  # final norm, lm_head
            source = language if top >= 1 else task
        assert torch.equal(tensor, source[name]), name


def test_layer_swap_outer_by_path_and_errors(trio, tmp_path):
    _, sft, ct = trio
    config = {"merge_method": "layer_swap", "parameters": {"bottom": 1, "top": 0, "outer": str(sft)},
              "models": [{"model": str(sft)}, {"model": str(ct)}]}
    out = _load(merge(config, tmp_path / "swap", device="cpu", progress=False))
    assert torch.equal(out["model.layers.0.mlp.up_proj.weight"], _load(sft)["model.layers.0.mlp.up_proj.weight"])
    assert torch.equal(out["model.layers.1.mlp.up_proj.weight"], _load(ct)["model.layers.1.mlp.up_proj.weight"])
    with pytest.raises(ValueError, match="exactly two"):
        merge({"merge_method": "layer_swap", "models": [{"model": str(sft)}]}, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="bottom"):
        merge({**config, "parameters": {"bottom": -1}}, tmp_path / "x", progress=False)


def test_config_rules_follow_the_registry(trio, tmp_path):
    with pytest.raises(ValueError, match="unknown parameter for dare_ties 'scope'"):
        merge(_config("dare_ties", trio, parameters={"scope": "global"}), tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        merge(_config("dare_ties", trio, weights=(1.0, -0.5)), tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="did you mean 'gamma'"):
        merge(_config("breadcrumbs", trio, parameters={"gama": 0.1}), tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="epsilon"):
        merge(_config("ties", trio, per_model=[{"epsilon": 0.1}, {}]), tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="rescale must be true or false"):
        merge(_config("dare_linear", trio, parameters={"rescale": "yes"}), tmp_path / "x", progress=False)
    out = _load(merge(_config("dare_linear", trio, weights=(1.0, -0.5)), tmp_path / "neg", progress=False))
    assert out  # negative weights are fine without a sign consensus
    none = _load(merge(_config("ties", trio, parameters={"divide": "none"}), tmp_path / "none", progress=False))
    unnormalized = _load(merge(_config("ties", trio, parameters={"normalize": False}), tmp_path / "un",
                               progress=False))
    assert all(torch.equal(none[n], unnormalized[n]) for n in none)  # divide none = the disjoint sum


def test_every_registered_method_merges_through_the_engine(trio, tmp_path):
    for name, spec in MERGE_METHODS.items():
        if name == "layer_swap":
            continue
        densities = (0.5, 0.6) if "density" in spec.model_params else None
        config = _config(name, trio, densities=densities, base=spec.needs_base)
        out = _load(merge(config, tmp_path / name, device="cpu", progress=False))
        assert all(torch.isfinite(t).all() for t in out.values()), name
