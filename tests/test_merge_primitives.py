"""Primitives against brute-force Python loops on small tensors, plus the TIES / TIES-SV invariants."""

import itertools

import pytest
import torch

from lrmerge.merge import fastpath, select
from lrmerge.merge import primitives as P


def brute_trim_mask(tau, density):
    flat = [abs(float(v)) for v in tau.reshape(-1)]
    k = max(1, int(density * len(flat)))
    order = sorted(range(len(flat)), key=lambda i: (-flat[i], i))  # largest first, ties by lowest index
    keep = set(order[:k])
    return torch.tensor([i in keep for i in range(len(flat))]).reshape(tau.shape)


def brute_ties(base, fts, weights, densities, election="sum", weighted=True, divide="weight_sum", normalize=True, lambda_=1.0):
    n = len(fts)
    taus = [(f - base).reshape(-1).tolist() for f in fts]
    trimmed = []
    for tau, d, f in zip(taus, densities, fts):
        m = brute_trim_mask(f - base, d).reshape(-1).tolist()
        trimmed.append([t if keep else 0.0 for t, keep in zip(tau, m)])
    out = []
    for j, b in enumerate(base.reshape(-1).tolist()):
        vals = [trimmed[i][j] for i in range(n)]
        if election == "sum":
            s = sum((weights[i] if weighted else 1.0) * vals[i] for i in range(n))
        else:
            s = sum((1 if (weights[i] if weighted else 1.0) * vals[i] > 0 else -1 if (weights[i] if weighted else 1.0) * vals[i] < 0 else 0) for i in range(n))
        sign = 1.0 if s >= 0 else -1.0
        agree = [v != 0 and (v > 0) == (sign > 0) for v in vals]
        num = sum(weights[i] * vals[i] for i in range(n) if agree[i])
        if not normalize or divide == "none":
            den = 1.0
        elif divide == "weight_sum":
            den = sum(weights[i] for i in range(n) if agree[i]) or 1.0
        else:
            den = sum(agree) or 1.0
        out.append(b + lambda_ * num / den)
    return torch.tensor(out).reshape(base.shape)


def test_kept_count_rule_and_errors():
    assert P.kept_count(10, 0.25) == 2
    assert P.kept_count(10, 0.01) == 1
    assert P.kept_count(7, 1.0) == 7
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="density"):
            P.kept_count(10, bad)


@pytest.mark.parametrize("density", [0.05, 0.2, 0.5, 0.9, 1.0])
def test_trim_mask_matches_brute_force_with_ties(density):
    g = torch.Generator().manual_seed(0)
    # few distinct magnitudes -> many ties at the threshold, both signs
    tau = (torch.randint(-3, 4, (7, 11), generator=g).float()) * 0.5
    mask = P.trim_mask(tau, density)
    assert mask.dtype == torch.bool and mask.shape == tau.shape
    assert int(mask.sum()) == P.kept_count(tau.numel(), density)
    assert torch.equal(mask, brute_trim_mask(tau, density))


def test_trim_mask_handles_wide_dynamic_range_and_zeros():
    g = torch.Generator().manual_seed(1)
    tau = torch.randn(513, generator=g) * torch.logspace(-20, 5, 513)
    tau[::7] = 0.0
    tau[::11] = -0.0
    for d in (0.01, 0.3, 0.95):
        assert torch.equal(P.trim_mask(tau, d), brute_trim_mask(tau, d))
    assert torch.equal(P.trim(tau, 0.3), torch.where(brute_trim_mask(tau, 0.3), tau, torch.zeros(())))


def test_global_threshold_equals_trim_of_concatenation():
    g = torch.Generator().manual_seed(2)
    parts = [torch.randint(-4, 5, s, generator=g).float() * 0.25 for s in [(5, 6), (17,), (3, 3, 3)]]
    flat = torch.cat([p.reshape(-1) for p in parts])
    for d in (0.1, 0.37, 0.8):
        k = P.kept_count(flat.numel(), d)
        thr = P.global_threshold(lambda: (P.magnitude_keys(p) for p in parts), k)
        budget, masks = thr.tie_budget, []
        for p in parts:
            m, used = P.threshold_mask(P.magnitude_keys(p), thr.key, budget)
            budget -= used
            masks.append(m)
        assert torch.equal(torch.cat(masks), brute_trim_mask(flat, d))


def test_order_keys_monotone():
    v = torch.tensor([3.0, -1e-30, -0.0, 0.0, -5.0, float("inf"), -float("inf"), 1e-38, 2.5])
    keys = P.order_keys(v)
    for i, j in itertools.product(range(len(v)), repeat=2):
        assert (bool(v[i] < v[j]) == bool(keys[i] < keys[j])) and (bool(v[i] == v[j]) == bool(keys[i] == keys[j]))
    rev = P.order_keys(v, largest=False)
    assert torch.equal(rev.argsort(stable=True), (-keys).argsort(stable=True))


@pytest.mark.parametrize("weighted", [True, False])
def test_elect_sign_sum_and_count(weighted):
    trimmed = torch.tensor([[1.0, -2.0, 0.0, 3.0, -1.0], [-1.0, 1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, -1.0, 2.0]])
    w = torch.tensor([1.0, 3.0, 0.5])
    ww = w if weighted else torch.ones(3)
    s = P.elect_sign(trimmed, w, "sum", weighted)
    for j in range(5):
        total = sum(float(ww[i] * trimmed[i, j]) for i in range(3))
        assert s[j] == (1.0 if total >= 0 else -1.0)
    c = P.elect_sign(trimmed, w, "count", weighted)
    for j in range(5):
        votes = sum((1 if trimmed[i, j] > 0 else -1 if trimmed[i, j] < 0 else 0) for i in range(3))
        assert c[j] == (1.0 if votes >= 0 else -1.0)
    assert s[2] == 1.0 and c[2] == 1.0  # zero sum / tie elects +1
    with pytest.raises(ValueError, match="sum"):
        P.elect_sign(trimmed, w, "median")


def test_agreement_and_disjoint_merge_brute_force():
    g = torch.Generator().manual_seed(3)
    trimmed = torch.randint(-2, 3, (3, 4, 5), generator=g).float()
    w = torch.tensor([0.5, 2.0, 1.0])
    sign = P.elect_sign(trimmed, w)
    agree = P.agreement_mask(trimmed, sign)
    for divide in ("weight_sum", "count", "none"):
        merged = P.disjoint_merge(trimmed, w, agree, divide)
        for idx in itertools.product(range(4), range(5)):
            a = [bool(trimmed[(i, *idx)] != 0 and torch.sign(trimmed[(i, *idx)]) == sign[idx]) for i in range(3)]
            assert [bool(agree[(i, *idx)]) for i in range(3)] == a
            num = sum(float(w[i] * trimmed[(i, *idx)]) for i in range(3) if a[i])
            den = {"weight_sum": sum(float(w[i]) for i in range(3) if a[i]), "count": sum(a), "none": 1.0}[divide] or 1.0
            assert merged[idx] == pytest.approx(num / den, abs=1e-6)


@pytest.mark.parametrize("election,weighted,divide,normalize", [
    ("sum", True, "weight_sum", True), ("sum", False, "count", True), ("count", True, "weight_sum", False),
])
def test_ties_merge_tensor_matches_brute_force(election, weighted, divide, normalize):
    g = torch.Generator().manual_seed(4)
    base = torch.randn(6, 7, generator=g)
    fts = [base + torch.randint(-3, 4, (6, 7), generator=g).float() * 0.125 for _ in range(3)]
    weights, densities = [1.0, 0.6, 1.7], [0.3, 1.0, 0.55]
    got, masks = P.ties_merge_tensor(base, fts, weights, densities, lambda_=0.8, normalize=normalize, election=election,
                                     weighted_election=weighted, divide=divide, keep_masks=True)
    want = brute_ties(base, fts, weights, densities, election, weighted, divide, normalize, 0.8)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert [int(m.sum()) for m in masks.kept] == [P.kept_count(42, d) for d in densities]
    assert not masks.restored.any()


def test_merging_one_model_returns_it():
    g = torch.Generator().manual_seed(5)
    base, ft = torch.randn(5, 9, generator=g), torch.randn(5, 9, generator=g)
    got, _ = P.ties_merge_tensor(base, [ft], [0.7], [1.0])
    torch.testing.assert_close(got, ft, atol=1e-6, rtol=0)


def test_density_one_without_conflicts_equals_task_arithmetic():
    g = torch.Generator().manual_seed(6)
    base = torch.randn(8, 8, generator=g)
    taus = [torch.rand(8, 8, generator=g) + 0.1 for _ in range(3)]  # all positive: no sign conflicts
    w = [0.5, 1.0, 2.0]
    got, _ = P.ties_merge_tensor(base, [base + t for t in taus], w, [1.0] * 3, normalize=False)
    torch.testing.assert_close(got, base + sum(wi * t for wi, t in zip(w, taus)), atol=1e-5, rtol=0)


def _two_model_case(seed=7, shape=(20, 30)):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=g)
    return base, [base + torch.randn(shape, generator=g), base + torch.randn(shape, generator=g)]


def test_slack_zero_equals_ties_exactly():
    base, fts = _two_model_case()
    plain, m0 = P.ties_merge_tensor(base, fts, [1, 1], [0.2, 1.0], keep_masks=True)
    sv, m1 = P.ties_merge_tensor(base, fts, [1, 1], [0.2, 1.0], slack=0.0, priority=0, keep_masks=True)
    assert torch.equal(plain, sv) and torch.equal(m0.agree, m1.agree)


@pytest.mark.parametrize("slack,slack_of", [(0.04, "kept"), (0.3, "kept"), (0.25, "discarded"), (1.0, "kept")])
def test_slack_restores_exactly_the_smallest_gaps(slack, slack_of):
    base, fts = _two_model_case()
    t_sft = P.trim(fts[0] - base, 0.2).reshape(-1)
    t_ct = (fts[1] - base).reshape(-1)
    plain, m0 = P.ties_merge_tensor(base, fts, [1, 1], [0.2, 1.0], keep_masks=True)
    merged, m = P.ties_merge_tensor(base, fts, [1, 1], [0.2, 1.0], slack=slack, priority=0, slack_of=slack_of, keep_masks=True)
    # brute force: losing entries of the SFT model, gaps |t_ct| - |t_sft|, smallest first, ties by index
    losing = [j for j in range(t_sft.numel()) if t_sft[j] != 0 and (t_sft[j] > 0) != (t_sft[j] + t_ct[j] >= 0)]
    n_kept = int((t_sft != 0).sum())
    n = min(int(slack * (n_kept if slack_of == "kept" else len(losing))), len(losing))
    gaps = {j: abs(float(t_ct[j])) - abs(float(t_sft[j])) for j in losing}
    chosen = sorted(losing, key=lambda j: (gaps[j], j))[:n]
    restored = m.restored.reshape(-1)
    assert int(restored.sum()) == n == len(chosen)
    assert set(restored.nonzero().squeeze(1).tolist()) == set(chosen)
    flat_b, flat_m, flat_p = base.reshape(-1), merged.reshape(-1), plain.reshape(-1)
    for j in chosen:  # the SFT value is kept, the conflicting CT value dropped
        assert flat_m[j] == pytest.approx(float(flat_b[j] + t_sft[j]), abs=1e-6)
        assert m.sign.reshape(-1)[j] == torch.sign(t_sft[j])
    others = ~restored
    assert torch.equal(flat_m[others], flat_p[others])


def test_slack_cap_and_gap_ties_by_lowest_index():
    # equal gaps everywhere: the restored ones must be the lowest flat indices
    base = torch.zeros(12)
    sft = torch.tensor([1.0, -1.0] * 6)
    ct = -2.0 * sft  # every SFT entry loses with gap 1
    _, m = P.ties_merge_tensor(base, [sft, ct], [1, 1], [1.0, 1.0], slack=0.25, priority=0, keep_masks=True)
    assert m.restored.nonzero().squeeze(1).tolist() == [0, 1, 2]
    # cap: slack of kept larger than the number losing
    ct2 = torch.where(torch.arange(12) < 2, -2.0 * sft, sft)
    _, m2 = P.ties_merge_tensor(base, [sft, ct2], [1, 1], [1.0, 1.0], slack=1.0, priority=0, keep_masks=True)
    assert m2.restored.nonzero().squeeze(1).tolist() == [0, 1]


def test_bad_choices_raise_naming_allowed_values():
    base, fts = _two_model_case(shape=(4, 4))
    with pytest.raises(ValueError, match="weight_sum"):
        P.ties_merge_tensor(base, fts, [1, 1], [0.5, 0.5], divide="mean")
    with pytest.raises(ValueError, match="discarded"):
        P.ties_merge_tensor(base, fts, [1, 1], [0.5, 0.5], slack=0.1, priority=0, slack_of="all")
    with pytest.raises(ValueError, match="priority"):
        P.ties_merge_tensor(base, fts, [1, 1], [0.5, 0.5], slack=0.1)
    with pytest.raises(ValueError, match="one weight"):
        P.ties_merge_tensor(base, fts, [1], [0.5, 0.5])


# ---------------------------------------------------------------- the chunked fast path (keep_masks=False)


@pytest.fixture(params=[7, 1 << 15], ids=["tiny-chunks", "default-chunks"])
def chunk(request, monkeypatch):
    """Run with chunks of 7 entries too, so thresholds, ties and offsets cross chunk boundaries."""
    for module in (select, fastpath):  # where the chunk size is read
        monkeypatch.setattr(module, "CPU_CHUNK", request.param)
    return request.param


def _tied_case(seed, shape=(9, 13), n=2):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=g)
    # few distinct magnitudes: many exact ties at the trim threshold, equal-magnitude opposite signs, zeros
    fts = [base + torch.randint(-3, 4, shape, generator=g).float() * 0.25 for _ in range(n)]
    return base, fts


@pytest.mark.parametrize("density", [0.05, 0.2, 0.5, 0.97])
def test_chunked_threshold_matches_brute_force_trim(chunk, density):
    base, (ft, _) = _tied_case(10)
    tau = ft - base
    assert torch.equal(P.trim_mask(tau, density), brute_trim_mask(tau, density))
    k = P.kept_count(tau.numel(), density)
    thr = P.magnitude_threshold(lambda: P.tau_chunks(ft, base), k)
    flat, want = tau.reshape(-1), brute_trim_mask(tau, density).reshape(-1)
    got_mask = torch.cat([P.kept_mask(flat[a:e], thr, a) for a, e in P.chunk_ranges(flat)])
    got_trim = torch.cat([P.trim_chunk(flat[a:e].clone(), thr, a) for a, e in P.chunk_ranges(flat)])
    assert torch.equal(got_mask, want)
    assert torch.equal(got_trim, torch.where(want, flat, 0.0))
    assert torch.equal(tau, ft - base)  # the stream works on scratch copies, never on the inputs


@pytest.mark.parametrize("weights,densities,election,weighted,divide,normalize,lambda_", [
    ([1.0, 1.0], [0.2, 1.0], "sum", True, "weight_sum", True, 1.0),   # the paper's setting: closed form
    ([1.0, 1.0], [0.3, 0.6], "sum", True, "count", False, 0.7),       # closed form, no normalize
    ([1.0, 2.5], [0.2, 1.0], "sum", True, "weight_sum", True, 1.0),   # general path
    ([1.0, 1.0], [0.5, 0.5], "count", True, "weight_sum", True, 1.0),  # count election: general path
    ([0.5, 1.0, 2.0], [0.25, 1.0, 0.6], "sum", False, "count", True, 1.3),
    ([1.0, 1.0], [0.3, 0.6], "sum", True, "none", True, 1.0),        # closed form: divide none is the sum
    ([1.0, 2.5], [0.3, 0.6], "sum", True, "none", True, 0.9),        # general path: divide none is the sum
])
def test_chunked_ties_equals_masks_path_and_brute_force(chunk, weights, densities, election, weighted, divide,
                                                         normalize, lambda_):
    base, fts = _tied_case(11, n=len(weights))
    opts = dict(lambda_=lambda_, normalize=normalize, election=election, weighted_election=weighted, divide=divide)
    fast, none = P.ties_merge_tensor(base, fts, weights, densities, **opts)
    slow, masks = P.ties_merge_tensor(base, fts, weights, densities, keep_masks=True, **opts)
    assert none is None and masks is not None
    if len(weights) == 2:
        assert torch.equal(fast, slow)  # same arithmetic, bit for bit
    torch.testing.assert_close(fast, slow, atol=1e-6, rtol=0)
    torch.testing.assert_close(fast, brute_ties(base, fts, weights, densities, election, weighted, divide, normalize,
                                                lambda_), atol=1e-5, rtol=0)


def test_closed_form_covers_every_sign_case():
    # zero/zero, zero/+, -/zero, same signs, opposite signs with either side larger, equal and opposite, -0.0
    t0 = torch.tensor([0.0, 0.0, -1.0, 1.0, -1.0, 2.0, -2.0, 1.5, -1.5, -0.0, 3.0])
    t1 = torch.tensor([0.0, 2.0, 0.0, 3.0, -4.0, -1.0, 1.0, -1.5, 1.5, 0.0, -0.0])
    base = torch.arange(11.0) * 0.25 - 1.25  # dyadic: every sum below is exact
    assert P.closed_form([1, 1], "sum")
    fast, _ = P.ties_merge_tensor(base, [base + t0, base + t1], [1, 1], [1.0, 1.0])
    slow, _ = P.ties_merge_tensor(base, [base + t0, base + t1], [1, 1], [1.0, 1.0], keep_masks=True)
    want = base + torch.tensor([0.0, 2.0, -1.0, 2.0, -2.5, 2.0, -2.0, 1.5, 1.5, 0.0, 3.0])  # by hand
    assert torch.equal(fast, want) and torch.equal(slow, want)


def test_chunked_ties_with_given_masks_and_shape_errors(chunk):
    base, fts = _tied_case(12)
    kept = [P.trim_mask(fts[0] - base, 0.3), torch.ones_like(base, dtype=torch.bool)]
    fast, _ = P.ties_merge_tensor(base, fts, [1, 1], [0.3, 1.0], kept=kept)
    slow, _ = P.ties_merge_tensor(base, fts, [1, 1], [0.3, 1.0], kept=kept, keep_masks=True)
    assert torch.equal(fast, slow)
    with pytest.raises(ValueError, match="shapes differ"):
        P.ties_merge_tensor(base, [fts[0], fts[1][:3]], [1, 1], [0.3, 1.0])
    with pytest.raises(ValueError, match="weight_sum"):
        P.ties_merge_tensor(base, fts, [1, 1], [0.5, 0.5], divide="mean")


def test_chunked_ties_bf16_inputs_compute_in_float32():
    base, fts = _tied_case(13, shape=(40, 50))
    b16, f16 = base.bfloat16(), [f.bfloat16() for f in fts]
    fast, _ = P.ties_merge_tensor(b16, f16, [1, 1], [0.2, 1.0])
    slow, _ = P.ties_merge_tensor(b16, f16, [1, 1], [0.2, 1.0], keep_masks=True)
    assert fast.dtype == torch.float32 and torch.equal(fast, slow)


@pytest.mark.parametrize("density", [0.1, 0.2, 0.6])
def test_sampled_window_gives_the_same_threshold_or_falls_back(monkeypatch, density):
    for module in (select, fastpath):  # where the chunk size is read
        monkeypatch.setattr(module, "CPU_CHUNK", 97)  # several chunks and groups, each window histogram is 0.5M counters
    g = torch.Generator().manual_seed(14)
    # magnitudes 1 + j * 2**-20 (j < 60): one 16-bit bin, so a sample predicts a one-bin window; many exact ties
    tau = (1 + torch.randint(0, 60, (4000,), generator=g) * 2.0**-20) * torch.randint(0, 2, (4000,), generator=g) * 2 - 1
    tau = tau * torch.where(torch.arange(4000) % 7 == 0, 0.0, 1.0)  # zeros
    flat = tau.reshape(-1)
    k = P.kept_count(flat.numel(), density)
    stream = lambda: iter([flat[:1500], flat[1500:]])  # noqa: E731  (two pieces, cut into chunks inside)
    want = P.magnitude_threshold(stream, k)
    good = flat[torch.randperm(flat.numel(), generator=g)[:500]]
    assert P._window_select(stream, k, good, flat.numel()) is not None  # the one-pass route is taken
    misleading = flat * 1e3  # predicts a window far from the real threshold: must fall back
    for sample in (good, misleading, flat[:3]):
        assert P.magnitude_threshold(stream, k, sample, flat.numel()) == want
    got = torch.cat([P.kept_mask(flat[a:e], want, a) for a, e in P.chunk_ranges(flat)])
    assert torch.equal(got, brute_trim_mask(tau, density))


def test_large_tensor_takes_the_sampled_route_and_matches_the_masks_path():
    g = torch.Generator().manual_seed(15)
    base = torch.randn(600, 1000, generator=g) * 0.02  # >= 4 * 2**17 entries: thresholds start from a sample
    fts = [base + torch.randn(600, 1000, generator=g) * s for s in (1e-3, 2e-3)]
    sample = P.sample_positions(fts[0], base)[0]
    k = P.kept_count(base.numel(), 0.2)
    assert P._window_select(lambda: P.tau_chunks(fts[0], base), k, sample, base.numel()) is not None  # one pass
    fast, _ = P.ties_merge_tensor(base, fts, [1, 1], [0.2, 1.0])
    slow, masks = P.ties_merge_tensor(base, fts, [1, 1], [0.2, 1.0], keep_masks=True)
    assert torch.equal(fast, slow)
    tau = (fts[0] - base).reshape(-1)  # reference selection: a stable full sort, ties by lowest index
    keep = torch.zeros(tau.numel(), dtype=torch.bool)
    keep[torch.argsort(tau.abs(), descending=True, stable=True)[:P.kept_count(tau.numel(), 0.2)]] = True
    assert torch.equal(masks.kept[0].reshape(-1), keep)
