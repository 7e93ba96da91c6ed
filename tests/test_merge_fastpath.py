"""Generated: every combination of method options; the fast path (where ``fastpath.fast_path`` lets one serve) equals
the reference (``general.general_merge``) bit for bit, and the reference equals a brute-force Python loop.

Axes: election, divide, weights (equal / unequal), normalize, lambda, slack, number of models, density 1 and < 1,
chunk size, and the device (CPU, and CUDA where available); scope "global" and the weighted-sum methods separately.
"""

import itertools

import pytest
import torch

from lrmerge.merge import fastpath, kernels, select
from lrmerge.merge.fastpath import fast_path, ties_chunked
from lrmerge.merge.general import general_merge
from lrmerge.merge.methods import get_method
from lrmerge.merge.primitives import DIVIDES, ELECTIONS

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def tied_case(seed, n, shape=(7, 11)):
    """Few distinct magnitudes: exact ties at the trim threshold, equal-magnitude opposite signs, zeros."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=g)
    return base, [base + torch.randint(-3, 4, shape, generator=g).float() * 0.25 for _ in range(n)]


def brute_keep(tau, density):
    flat = [abs(v) for v in tau]
    k = max(1, int(density * len(flat)))
    order = sorted(range(len(flat)), key=lambda i: (-flat[i], i))
    keep = set(order[:k])
    return [i in keep for i in range(len(flat))]


def brute_merge(base, fts, weights, densities, election, weighted, divide, normalize, lambda_, slack, slack_of="kept"):
    """The paper's TIES / TIES-SV written as plain loops over entries (priority model 0 when slack > 0)."""
    b = base.reshape(-1).tolist()
    n = len(fts)
    trimmed = []
    for f, d in zip(fts, densities):
        tau = [float(torch.tensor(x, dtype=torch.float32)) for x in (f.reshape(-1) - base.reshape(-1)).tolist()]
        keep = brute_keep(tau, d)
        trimmed.append([t if k else 0.0 for t, k in zip(tau, keep)])
    scale = [weights[i] if weighted else 1.0 for i in range(n)]
    signs = []
    for j in range(len(b)):
        vals = [scale[i] * trimmed[i][j] for i in range(n)]
        score = sum(vals) if election == "sum" else sum((v > 0) - (v < 0) for v in vals)
        signs.append(1.0 if score >= 0 else -1.0)
    if slack > 0:
        prio = trimmed[0]
        losing = [j for j in range(len(b)) if prio[j] != 0 and (prio[j] > 0) != (signs[j] > 0)]
        n_kept = sum(1 for v in prio if v != 0)
        budget = min(int(slack * (n_kept if slack_of == "kept" else len(losing))), len(losing))

        def gap(j):
            return sum(abs(scale[i] * trimmed[i][j]) * (1 if trimmed[i][j] * signs[j] > 0 else
                                                        -1 if trimmed[i][j] * signs[j] < 0 else 0) for i in range(n))

        for j in sorted(losing, key=lambda j: (gap(j), j))[:budget]:
            signs[j] = 1.0 if prio[j] > 0 else -1.0
    out = []
    for j, bj in enumerate(b):
        agree = [trimmed[i][j] * signs[j] > 0 for i in range(n)]
        num = sum(weights[i] * trimmed[i][j] for i in range(n) if agree[i])
        if not normalize or divide == "none":
            den = 1.0
        elif divide == "weight_sum":
            den = sum(weights[i] for i in range(n) if agree[i]) or 1.0
        else:
            den = sum(agree) or 1.0
        out.append(bj + lambda_ * num / den)
    return torch.tensor(out).reshape(base.shape)


WEIGHTS = {(2, "equal"): [1.0, 1.0], (2, "unequal"): [0.6, 1.7], (3, "equal"): [1.0, 1.0, 1.0],
           (3, "unequal"): [0.5, 1.0, 2.0]}
COMBOS = list(itertools.product(ELECTIONS, DIVIDES, ("equal", "unequal"), (True, False), (1.0, 0.7), (0.0, 0.1),
                                (2, 3), ("one", "sparse"), (True, False)))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("election,divide,equal,normalize,lambda_,slack,n,density,weighted", COMBOS,
                         ids=["-".join(map(str, c)) for c in COMBOS])
def test_fast_equals_reference_equals_brute_force(device, election, divide, equal, normalize, lambda_, slack, n,
                                                  density, weighted, monkeypatch):
    weights = WEIGHTS[(n, equal)]
    densities = [1.0] * n if density == "one" else [0.3, 1.0, 0.55][:n]
    base, fts = tied_case(hash((election, divide, equal, n, density)) % 1000, n)
    base, fts = base.to(device), [f.to(device) for f in fts]
    options = dict(lambda_=lambda_, normalize=normalize, election=election, weighted_election=weighted, divide=divide)
    method = "ties_sv" if slack else "ties"
    priority = 0 if slack else None
    reference, masks = general_merge(base, fts, weights, densities, sparsify="magnitude", consensus=election,
                                     slack=slack, priority=priority, keep_masks=True,
                                     **{k: v for k, v in options.items() if k != "election"})
    want = brute_merge(base.cpu(), [f.cpu() for f in fts], weights, densities, election, weighted, divide, normalize,
                       lambda_, slack)
    torch.testing.assert_close(reference.cpu(), want, atol=1e-5, rtol=0)
    assert masks is not None and int(masks.kept[0].sum()) == select.kept_count(base.numel(), densities[0])
    kind = fast_path(method, {**options, "slack": slack, "priority": priority}, weights)
    assert kind == (None if slack else "ties")
    if kind is None:
        return
    for chunk in (5, 1 << 15):  # thresholds, ties and offsets across chunk boundaries, and whole chunks
        for module in (select, fastpath):
            monkeypatch.setattr(module, "CPU_CHUNK", chunk)
        fast = ties_chunked(base, fts, weights, densities, **options)
        assert torch.equal(fast, reference), f"chunk {chunk}"
    if device == "cpu" and kernels.available() and n == 2 and fastpath.closed_form(weights, election):
        b, f0, f1 = base.reshape(-1), fts[0].reshape(-1), fts[1].reshape(-1)
        trims = [None if d >= 1 else select.magnitude_threshold(lambda f=f: select.tau_chunks(f, b),
                                                                 select.kept_count(b.numel(), d))
                 for f, d in zip((f0, f1), densities)]
        out = torch.empty_like(b)
        kernels.ties_two_models(b, [f0, f1], [False, False], trims, 0, out, normalize and divide != "none", lambda_)
        assert torch.equal(out.reshape(base.shape), reference)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("equal", ["equal", "unequal"])
def test_global_scope_fast_equals_reference(n, equal):
    weights = WEIGHTS[(n, equal)]
    tensors = [tied_case(s, n, shape) for s, shape in ((1, (6, 5)), (2, (13,)), (3, (4, 4, 3)))]
    densities = [0.2, 0.7, 0.45][:n]
    masks = [[] for _ in tensors]  # masks[t][i]: model i's whole-model trim restricted to tensor t
    total = sum(b.numel() for b, _ in tensors)
    for i, d in enumerate(densities):  # the whole-model threshold, then per-tensor masks in stream order
        threshold = select.global_threshold(lambda i=i: (select.magnitude_keys(f[i] - b) for b, f in tensors),
                                            select.kept_count(total, d))
        budget = threshold.tie_budget
        for t, (b, f) in enumerate(tensors):
            mask, used = select.threshold_mask(select.magnitude_keys(f[i] - b), threshold.key, budget)
            budget -= used
            masks[t].append(mask.reshape(b.shape))
    for i, d in enumerate(densities):
        assert sum(int(m[i].sum()) for m in masks) == select.kept_count(total, d)
    for (b, f), kept in zip(tensors, masks):
        ref, _ = general_merge(b, f, weights, densities, kept=kept)
        assert torch.equal(ties_chunked(b, f, weights, densities, kept=kept), ref)


@pytest.mark.parametrize("method", ["linear", "task_arithmetic"])
@pytest.mark.parametrize("weights", [[0.3, 0.9], [1.0, 1.0], [0.5, -0.2, 1.5]])
@pytest.mark.parametrize("normalize", [True, False])
def test_weighted_sum_streamed_by_blocks_equals_whole_and_brute_force(method, weights, normalize):
    spec = get_method(method)
    base, fts = tied_case(4, len(weights), (9, 31))
    options = {**spec.defaults(), "normalize": normalize}
    if method == "task_arithmetic":
        options["lambda_"] = 0.8
    whole, _ = spec(base if spec.needs_base else None, fts, weights, [1.0] * len(fts), **options)
    assert fast_path(method, options, weights) == "weighted_sum"
    flat_b, flats = base.reshape(-1), [f.reshape(-1) for f in fts]
    pieces = [spec(flat_b[a:a + 17] if spec.needs_base else None, [f[a:a + 17] for f in flats], weights,
                   [1.0] * len(fts), **options)[0] for a in range(0, flat_b.numel(), 17)]
    assert torch.equal(torch.cat(pieces).reshape(base.shape), whole)
    b, tuned = base.reshape(-1).tolist(), [f.reshape(-1).tolist() for f in fts]
    want = []
    for j, bj in enumerate(b):
        if method == "linear":
            total = sum(w * t[j] for w, t in zip(weights, tuned))
            want.append(total / sum(weights) if normalize else total)
        else:
            total = sum(w * (t[j] - bj) for w, t in zip(weights, tuned))
            want.append(bj + 0.8 * (total / sum(weights) if normalize else total))
    torch.testing.assert_close(whole, torch.tensor(want).reshape(base.shape), atol=1e-5, rtol=0)


def test_only_plain_ties_and_weighted_sums_take_a_fast_path():
    ties = get_method("ties").defaults()
    assert fast_path("ties", ties, [1.0, 1.0]) == "ties"
    assert fast_path("ties", ties, [1.0, 1.0], keep_masks=True) is None
    assert fast_path("ties", {**ties, "rescale": True}, [1.0, 1.0]) is None
    assert fast_path("ties_sv", get_method("ties_sv").defaults(), [1.0, 1.0]) is None
    assert fast_path("ties_sv", {**get_method("ties_sv").defaults(), "slack": 0.0}, [1.0, 1.0]) == "ties"
    for name in ("dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear",
                 "layer_swap"):
        assert fast_path(name, get_method(name).defaults(), [1.0, 1.0]) is None, name
    assert fast_path("linear", {"normalize": True}, [0.3, 0.7]) == "weighted_sum"
    assert fast_path("ties", ties, [1.0, 0.5], purpose="ledger") is None
    assert fast_path("ties", {**ties, "election": "count"}, [1.0, 1.0], purpose="ledger") is None
    assert fast_path("ties", ties, [1.0, 1.0, 1.0], purpose="ledger") == "ties"


ENGINE_CASES = {
    "ties-paper": ("ties", {}, (1.0, 1.0), (0.2, 1.0)),
    "ties-unequal-count": ("ties", {"election": "count", "divide": "count", "lambda": 0.8}, (0.6, 1.4), (0.3, 0.5)),
    "ties-none": ("ties", {"divide": "none"}, (1.0, 1.0), (0.3, 0.7)),
    "ties_sv-slack0": ("ties_sv", {"slack": 0.0}, (1.0, 1.0), (0.2, 1.0)),
    "linear": ("linear", {}, (0.3, 0.7), None),
    "task_arithmetic": ("task_arithmetic", {"lambda": 0.6, "normalize": True}, (0.5, 1.2), None),
}


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("case", sorted(ENGINE_CASES))
def test_engine_streamed_fast_path_equals_the_registry_reference(case, workers, tiny_llama_factory, tmp_path,
                                                                  monkeypatch):
    """The engine's streamed fast path against the same config merged through the registry function (asking for
    masks forces the reference path), bit for bit, with small blocks and several worker threads."""
    from safetensors.torch import load_file

    from lrmerge.merge import engine, merge

    base = tiny_llama_factory("base", seed=0)
    sft, ct = tiny_llama_factory("sft", seed=1, base=base), tiny_llama_factory("ct", seed=2, base=base, scale=0.03)
    method, params, weights, densities = ENGINE_CASES[case]
    models = [{"model": str(p), "parameters": {"weight": w, **({"density": d} if densities else {})}}
              for p, w, d in zip((sft, ct), weights, densities or (None, None))]
    config = {"merge_method": method, "models": models, "parameters": params, "dtype": "float32"}
    if get_method(method).needs_base:
        config["base_model"] = str(base)
    monkeypatch.setattr(engine, "CPU_WORKERS", workers)
    monkeypatch.setattr(engine, "STREAM_BLOCK", 1000)
    fast = load_file(str(merge(config, tmp_path / "fast", device="cpu", progress=False) / "model.safetensors"))
    seen = []
    ref_dir = merge(config, tmp_path / "ref", device="cpu", progress=False, collect_masks=lambda *a: seen.append(a))
    reference = load_file(str(ref_dir / "model.safetensors"))
    assert set(fast) == set(reference)
    for name in fast:
        assert torch.equal(fast[name], reference[name]), name
    assert bool(seen) == get_method(method).uses_masks  # the reference path ran (and returned masks where it elects)


@pytest.mark.parametrize("method,params", [("ties", {}), ("ties", {"election": "count", "lambda": 0.5}),
                                           ("ties_sv", {"slack": 0.1})])
def test_engine_global_scope_with_ties_across_tensors_equals_brute_force(method, params, tmp_path):
    """scope: global with many exact ties at the whole-model threshold: exactly k kept over the model, ties by
    lowest index in tensor order (a stable sort of the concatenated task vector)."""
    from safetensors.torch import load_file
    from test_conflicts_series import SHAPES, write_model

    from lrmerge.merge import merge

    g = torch.Generator().manual_seed(1)
    base = {k: torch.randn(s, generator=g) for k, s in SHAPES.items()}
    tuned = [{k: v + torch.randint(-2, 3, v.shape, generator=g).float() * 0.5 for k, v in base.items()}
             for _ in range(2)]
    paths = [write_model(tmp_path / name, t) for name, t in (("base", base), ("a", tuned[0]), ("b", tuned[1]))]
    config = {"merge_method": method, "base_model": str(paths[0]), "dtype": "float32",
              "parameters": {"scope": "global", **params},
              "models": [{"model": str(p), "parameters": {"weight": 1.0, "density": d}}
                         for p, d in zip(paths[1:], (0.3, 0.6))]}
    out = load_file(str(merge(config, tmp_path / "out", device="cpu", progress=False) / "model.safetensors"))
    names = list(load_file(str(paths[0] / "model.safetensors")))  # the stream order: the file's tensor order
    keeps = []
    for t, d in zip(tuned, (0.3, 0.6)):
        flat = torch.cat([(t[n] - base[n]).reshape(-1) for n in names])
        keep = torch.zeros(flat.numel(), dtype=torch.bool)
        keep[torch.argsort(flat.abs(), descending=True, stable=True)[:select.kept_count(flat.numel(), d)]] = True
        keeps.append(keep)
    start = 0
    spec = get_method(method)
    options = {**spec.defaults(), **{("lambda_" if k == "lambda" else k): v for k, v in params.items()}}
    options.pop("election", None)
    for n in names:
        numel = base[n].numel()
        kept = [k[start:start + numel].reshape(base[n].shape) for k in keeps]
        start += numel
        want, _ = general_merge(base[n], [t[n] for t in tuned], [1.0, 1.0], [0.3, 0.6], kept=kept,
                                consensus=params.get("election", "sum"), **options)
        assert torch.equal(out[n], want), n
