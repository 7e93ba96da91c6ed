"""The sparsification family against brute-force loops and mergekit 0.1.5's own functions (in memory), and the
random sparsifiers' distribution (kept share within binomial error, rescale exact, seeds)."""

import math

import pytest
import torch

from lrmerge.merge import sparsify as S
from lrmerge.merge.general import general_merge
from lrmerge.merge.methods import MERGE_METHODS, TensorContext, get_method, tensor_seeds

mk_sparsify = pytest.importorskip("mergekit.sparsify")
mk_gta = pytest.importorskip("mergekit.merge_methods.generalized_task_arithmetic")


def distinct(shape, seed, scale=1.0):
    """Random floats with distinct magnitudes (no threshold ties: mergekit breaks those arbitrarily)."""
    g = torch.Generator().manual_seed(seed)
    n = math.prod(shape)
    magnitudes = (torch.randperm(n, generator=g).float() + 1) / n * scale
    signs = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    return (magnitudes * signs).reshape(shape)


def brute_outlier_mask(tau, density, gamma):
    flat = [abs(float(v)) for v in tau.reshape(-1)]
    n = len(flat)
    target, n_top = int(density * n), int(gamma * n)
    n_bot = max(0, n - target - n_top)
    ascending = sorted(range(n), key=lambda i: (flat[i], -i))  # smallest first; ties: higher index is "smaller"
    keep = set(ascending[n_bot:n_bot + target])
    return torch.tensor([i in keep for i in range(n)]).reshape(tau.shape)


@pytest.mark.parametrize("shape,density,gamma", [((40, 25), 0.3, 0.01), ((1000,), 0.1, 0.05), ((7, 9), 0.9, 0.2),
                                                 ((50, 4), 0.5, 0.0)])
def test_outlier_mask_matches_brute_force_and_mergekit(shape, density, gamma):
    tau = distinct(shape, 3)
    mask = S.outlier_mask(tau, density, gamma)
    assert torch.equal(mask, brute_outlier_mask(tau, density, gamma))
    assert int(mask.sum()) == int(density * tau.numel())
    theirs = mk_sparsify.magnitude_outliers(tau.clone(), density, gamma=gamma)
    assert torch.equal(torch.where(mask, tau, 0.0), theirs)


def test_outlier_mask_ties_by_lowest_flat_index():
    tau = torch.tensor([1.0, 2.0, 2.0, 2.0, 3.0, 0.5, 2.0, 0.1, 0.2, 0.3])
    # order |tau| desc, ties by lowest index: 4, 1, 2, 3, 6, 0, 5, 9, 8, 7; n_top = 1 drops 4, target 3 keeps 1,2,3
    assert S.outlier_mask(tau, 0.3, 0.1).nonzero().squeeze(1).tolist() == [1, 2, 3]


@pytest.mark.parametrize("rescale", [False, True])
def test_magnitude_rescale_matches_mergekit(rescale):
    tau = distinct((30, 20), 5)
    ours = S.apply_mask(tau, S.keep_mask(tau, 0.25, "magnitude"), rescale)
    norm = mk_sparsify.RescaleNorm.l1 if rescale else None
    assert torch.equal(ours, mk_sparsify.magnitude(tau.clone(), 0.25, rescale_norm=norm))


def test_della_probabilities_match_mergekit_formula():
    tau = distinct((6, 50), 8)
    probs = S.della_probabilities(tau, 0.4, 0.1)
    for r in range(6):  # brute force: rank ascending per row, linear map onto [d - e, d + e]
        row = tau[r].abs().tolist()
        order = sorted(range(50), key=lambda i: (row[i], i))
        for rank, i in enumerate(order):
            assert abs(float(probs[r, i]) - (0.3 + rank / 49 * 0.2)) < 1e-6
    assert abs(float(probs.mean()) - 0.4) < 1e-6
    with pytest.raises(ValueError, match="epsilon"):
        S.della_probabilities(tau, 0.1, 0.15)


@pytest.mark.parametrize("method,density", [("random", 0.3), ("della_magprune", 0.5), ("random", 0.9)])
def test_random_kept_share_within_binomial_error(method, density):
    tau = distinct((200, 150), 2)
    mask = S.keep_mask(tau, density, method, seed=11, epsilon=0.1)
    n = tau.numel()
    assert abs(int(mask.sum()) - density * n) < 5 * math.sqrt(n * density * (1 - density))


def test_random_masks_same_seed_same_different_seed_different_and_device_free():
    tau = distinct((64, 64), 1)
    a = S.keep_mask(tau, 0.3, "random", seed=5)
    assert torch.equal(a, S.keep_mask(tau, 0.3, "random", seed=5))
    assert not torch.equal(a, S.keep_mask(tau, 0.3, "random", seed=6))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = S.keep_mask(tau, 0.3, "random", seed=5)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(a, single)
    big = distinct((1000, 1200), 2)  # large enough for torch's parallel reductions: the rescale sums too
    spec = get_method("dare_ties")
    fts = [big * 0.5, -big * 0.25 + 0.001]
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            results.append(spec(torch.zeros_like(big), fts, [1.0, 0.8], [0.3, 0.4], context=TensorContext(seeds=(4, 9)),
                                **spec.defaults())[0])
        finally:
            torch.set_num_threads(before)
    assert torch.equal(*results)
    if torch.cuda.is_available():
        assert torch.equal(a, S.keep_mask(tau.cuda(), 0.3, "random", seed=5).cpu())
    seeds = tensor_seeds(0, "model.layers.0.mlp.up_proj.weight", 2)
    assert len(set(seeds)) == 2 and seeds == tensor_seeds(0, "model.layers.0.mlp.up_proj.weight", 2)
    assert seeds != tensor_seeds(1, "model.layers.0.mlp.up_proj.weight", 2)


@pytest.mark.parametrize("method", ["random", "della_magprune"])
def test_rescale_preserves_l1_exactly_and_expectation(method):
    tau = distinct((100, 100), 4)
    mask = S.keep_mask(tau, 0.3, method, seed=3, epsilon=0.1)
    rescaled = S.apply_mask(tau, mask, rescale=True)
    masked = torch.where(mask, tau, 0.0)
    factor = (tau.abs().double().sum() / masked.abs().double().sum()).float()
    assert torch.equal(rescaled, masked * factor)
    assert abs(float(rescaled.abs().sum()) - float(tau.abs().sum())) < 1e-3 * float(tau.abs().sum())
    assert torch.equal(rescaled != 0, mask)
    # mergekit's l1 rescale of the same mask gives the same tensor
    theirs = mk_sparsify.rescaled_masked_tensor(tau, mask.float(), mk_sparsify.RescaleNorm.l1)
    torch.testing.assert_close(rescaled, theirs, rtol=1e-6, atol=0)
    # DARE's expectation: the mean over seeds of the masked (unrescaled) / density is tau
    if method == "random":
        small = distinct((20,), 9)
        mean = torch.stack([S.apply_mask(small, S.keep_mask(small, 0.5, "random", seed=s)) for s in range(2000)]).mean(0)
        torch.testing.assert_close(mean / 0.5, small, atol=0.1 * float(small.abs().max()), rtol=0)


def _mk_merge(name, base, fts, weights, densities, params, extra=None):
    """mergekit 0.1.5's generalized task arithmetic on in-memory tensors (its own merge_group body)."""
    from mergekit.merge_methods import registry
    from mergekit.merge_methods.base import TensorEntry, TensorGroup

    method = registry.get(name)
    group = TensorGroup((TensorEntry("base", base, is_base=True), *(TensorEntry(i, t) for i, t in enumerate(fts))))
    parameters = {"int8_mask": False, "normalize": params.get("normalize"), "rescale": params.get("rescale", False),
                  "lambda": params.get("lambda", 1.0), "weight": dict(enumerate(weights)),
                  "density": dict(enumerate(densities))}
    for key, values in (extra or {}).items():
        parameters[key] = dict(enumerate(values))
    return method.merge_group(group, **parameters)


@pytest.mark.parametrize("name,params,extra", [
    ("breadcrumbs", {"normalize": False}, {"gamma": [0.02, 0.05]}),
    ("breadcrumbs", {"normalize": True, "rescale": True, "lambda": 0.7}, {"gamma": [0.01, 0.01]}),
    ("breadcrumbs_ties", {"normalize": False}, {"gamma": [0.02, 0.05]}),
    ("breadcrumbs_ties", {"normalize": True, "lambda": 1.3}, {"gamma": [0.1, 0.01]}),
    ("ties", {"normalize": True, "rescale": True}, None),
])
def test_deterministic_methods_equal_mergekit_in_memory(name, params, extra):
    base = distinct((24, 40), 0, 0.1)
    fts = [base + distinct((24, 40), 1, 0.01), base + distinct((24, 40), 2, 0.02)]
    weights, densities = [0.8, 1.3], [0.3, 0.6]
    theirs = _mk_merge(name, base, fts, weights, densities, params, extra)
    spec = get_method(name)
    options = {**spec.defaults(), **{("lambda_" if k == "lambda" else k): v for k, v in params.items()},
               **(extra or {})}
    options = {k: v for k, v in options.items() if k not in ("slack", "priority", "slack_of")}
    ours, _ = spec(base, fts, weights, densities, **options)
    torch.testing.assert_close(ours, theirs, atol=1e-7, rtol=0)


def test_registry_rows_are_data_with_references_and_parameters():
    for name, spec in MERGE_METHODS.items():
        assert spec.name == name and spec.reference and spec.pretty
        assert all(v is None or isinstance(v, (bool, int, float, str)) for v in spec.params.values())
    assert get_method("dare_ties").random and get_method("dare_ties").consensus
    assert get_method("dare_ties").params["rescale"] is True and get_method("dare_ties").params["normalize"] is False
    assert get_method("della").params["normalize"] is True and get_method("della").model_params["epsilon"] == 0.15
    assert "negative_weights" in get_method("dare_linear").supports
    assert "negative_weights" not in get_method("dare_ties").supports
    with pytest.raises(ValueError, match="allowed"):
        get_method("dare-ties")


def test_random_methods_need_seeds_and_use_them():
    base = distinct((32, 32), 0, 0.1)
    fts = [base + distinct((32, 32), 1, 0.01), base + distinct((32, 32), 2, 0.01)]
    spec = get_method("dare_ties")
    with pytest.raises(ValueError, match="seeds"):
        spec(base, fts, [1.0, 1.0], [0.5, 0.5], **spec.defaults())
    a, _ = spec(base, fts, [1.0, 1.0], [0.5, 0.5], context=TensorContext(seeds=(1, 2)), **spec.defaults())
    b, _ = spec(base, fts, [1.0, 1.0], [0.5, 0.5], context=TensorContext(seeds=(1, 2)), **spec.defaults())
    c, _ = spec(base, fts, [1.0, 1.0], [0.5, 0.5], context=TensorContext(seeds=(1, 3)), **spec.defaults())
    assert torch.equal(a, b) and not torch.equal(a, c)
    # dare_ties = the general merge with random masks, rescale, sum consensus, no normalize
    want, _ = general_merge(base, fts, [1.0, 1.0], [0.5, 0.5], sparsify="random", consensus="sum", rescale=True,
                            normalize=False, seeds=[1, 2])
    assert torch.equal(a, want)
