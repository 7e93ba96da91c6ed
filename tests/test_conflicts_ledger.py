"""The sign-conflict ledger against brute-force loops, its identities, and the tensor-name parser."""

from __future__ import annotations

import pytest
import torch

from lrmerge.conflicts.ledger import LEDGER_FIELDS, ledger_from_masks, tensor_ledger
from lrmerge.conflicts.names import MODULES, parse_tensor_name
from lrmerge.merge.primitives import kept_count, ties_merge_tensor


# ------------------------------------------------------------------ brute force: plain python loops, no torch ops


def brute_ties_ledger(base, finetuned, densities, weights, slack, priority=0):
    """TIES / TIES-SV and the ledger by explicit loops over entries (lists of floats)."""
    n, size = len(finetuned), len(base)
    taus = [[f[j] - base[j] for j in range(size)] for f in finetuned]
    kept = []
    for tau, d in zip(taus, densities):
        k = max(1, int(d * size))
        order = sorted(range(size), key=lambda j: (-abs(tau[j]), j))  # ties: lowest index first
        kept.append(set(order[:k]))
    trimmed = [[taus[i][j] if j in kept[i] else 0.0 for j in range(size)] for i in range(n)]
    sgn = lambda x: (x > 0) - (x < 0)  # noqa: E731
    sign = [1 if sum(weights[i] * trimmed[i][j] for i in range(n)) >= 0 else -1 for j in range(size)]

    def agrees(i, j, s):
        return trimmed[i][j] != 0 and sgn(trimmed[i][j]) == s[j]

    losing = [j for j in range(size) if trimmed[priority][j] != 0 and not agrees(priority, j, sign)]
    nonzero_kept = sum(1 for j in range(size) if trimmed[priority][j] != 0)
    budget = min(int(slack * nonzero_kept), len(losing))

    def gap(j):  # mass of the elected side minus the other side
        return sum(weights[i] * abs(trimmed[i][j]) * sgn(trimmed[i][j]) * sign[j] for i in range(n))

    restored = set(sorted(losing, key=lambda j: (gap(j), j))[:budget])
    final = [sgn(trimmed[priority][j]) if j in restored else sign[j] for j in range(size)]
    merged = []
    for j in range(size):
        num = sum(weights[i] * trimmed[i][j] for i in range(n) if agrees(i, j, final))
        den = sum(weights[i] for i in range(n) if agrees(i, j, final))
        merged.append(base[j] + (num / den if den else 0.0))
    rest = [i for i in range(n) if i != priority]
    led = dict.fromkeys(LEDGER_FIELDS, 0)
    led["numel"] = size
    for j in range(size):
        s_kept = j in kept[priority]
        c_kept = any(j in kept[i] for i in rest)
        sft = taus[priority][j]
        live = s_kept and sft != 0
        conflict = live and any(j in kept[i] and sgn(taus[i][j]) == -sgn(sft) for i in rest)
        discarded = live and not agrees(priority, j, final)
        led["sft_kept"] += s_kept
        led["ct_kept"] += c_kept
        led["both_kept"] += s_kept and c_kept
        led["conflicts"] += conflict
        led["elect_sft"] += conflict and final[j] == sgn(sft)
        led["elect_ct"] += conflict and final[j] != sgn(sft)
        led["sft_discarded"] += discarded
        led["slack_restored"] += j in restored
        led["sft_kept_l1"] += abs(sft) if s_kept else 0.0
        led["sft_discarded_l1"] += abs(sft) if discarded else 0.0
    return merged, led


def grid_tensor(gen, shape, scale=4):
    """Values on a coarse grid (multiples of 1/4, many zeros and exact ties): float sums stay exact."""
    return torch.randint(-scale, scale + 1, shape, generator=gen).float() / 4


def as_lists(base, finetuned):
    return base.reshape(-1).tolist(), [f.reshape(-1).tolist() for f in finetuned]


# ------------------------------------------------------------------ ledger == brute force


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_models", [2, 3])
@pytest.mark.parametrize("slack", [0.0, 0.1, 0.5])
def test_ledger_matches_brute_force_on_tied_grid_values(seed, n_models, slack):
    gen = torch.Generator().manual_seed(seed)
    shape = (7, 9)
    base = grid_tensor(gen, shape)
    finetuned = [base + grid_tensor(gen, shape, scale=3 + i) for i in range(n_models)]
    densities = [0.2] + [1.0, 0.6][: n_models - 1]
    weights = [1.0] * n_models
    merged, led = tensor_ledger(base, finetuned, densities, slack=slack)
    ref_merged, ref = brute_ties_ledger(*as_lists(base, finetuned), densities, weights, slack)
    for name in LEDGER_FIELDS:
        assert led[name] == pytest.approx(ref[name]), name
    assert torch.allclose(merged.reshape(-1), torch.tensor(ref_merged), atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_ledger_matches_brute_force_on_random_normals(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    base = torch.randn(5, 11, generator=gen)
    finetuned = [base + 0.1 * torch.randn(5, 11, generator=gen), base + 0.2 * torch.randn(5, 11, generator=gen)]
    merged, led = tensor_ledger(base, finetuned, [0.2, 1.0])
    ref_merged, ref = brute_ties_ledger(*as_lists(base, finetuned), [0.2, 1.0], [1.0, 1.0], 0.0)
    assert {k: led[k] for k in LEDGER_FIELDS if "l1" not in k} == {k: ref[k] for k in LEDGER_FIELDS if "l1" not in k}
    assert led["sft_kept_l1"] == pytest.approx(ref["sft_kept_l1"], rel=1e-5)
    assert torch.allclose(merged.reshape(-1), torch.tensor(ref_merged), atol=1e-6)


# ------------------------------------------------------------------ identities


def random_pair(seed, shape=(64, 48), ct_scale=1.5):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=gen)
    return base, [base + torch.randn(shape, generator=gen), base + ct_scale * torch.randn(shape, generator=gen)]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("slack", [0.0, 0.04])
def test_identities_two_models(seed, slack):
    base, finetuned = random_pair(seed)
    _, led = tensor_ledger(base, finetuned, [0.2, 1.0], slack=slack)
    assert led["sft_kept"] == kept_count(led["numel"], 0.2)
    assert led["ct_kept"] == led["numel"]
    assert led["conflicts"] == led["elect_sft"] + led["elect_ct"]
    assert led["sft_discarded"] == led["elect_ct"]
    assert led["both_kept"] <= min(led["sft_kept"], led["ct_kept"])
    assert 0 < led["sft_discarded_l1"] < led["sft_kept_l1"]
    assert led["conflicts"] > 0 and led["elect_ct"] > 0  # the random case is not trivially conflict-free


def test_slack_restores_the_rule_amount_and_moves_entries_from_elect_ct_to_elect_sft():
    base, finetuned = random_pair(7)
    _, plain = tensor_ledger(base, finetuned, [0.2, 1.0], slack=0.0)
    for slack in (0.01, 0.04, 0.2, 1.0):
        _, sv = tensor_ledger(base, finetuned, [0.2, 1.0], slack=slack)
        expected = min(int(slack * plain["sft_kept"]), plain["sft_discarded"])  # no kept zeros in random normals
        assert sv["slack_restored"] == expected
        assert sv["sft_discarded"] == plain["sft_discarded"] - expected
        assert sv["elect_sft"] == plain["elect_sft"] + expected
        assert sv["conflicts"] == plain["conflicts"]
    assert sv["sft_discarded"] == 0  # slack 1.0 restores every losing entry


def test_three_models_sft_vs_the_rest_identities():
    gen = torch.Generator().manual_seed(3)
    base = torch.randn(40, 30, generator=gen)
    finetuned = [base + torch.randn(40, 30, generator=gen) for _ in range(3)]
    _, led = tensor_ledger(base, finetuned, [0.2, 1.0, 0.5], slack=0.02)
    assert led["conflicts"] == led["elect_sft"] + led["elect_ct"]
    assert led["sft_discarded"] == led["elect_ct"]


def test_zero_sum_elects_plus_one():
    base = torch.zeros(6)
    sft = torch.tensor([1.0, -1.0, 2.0, -2.0, 3.0, -3.0])
    _, led = tensor_ledger(base, [sft, -sft], [1.0, 1.0])
    # every entry is an exactly balanced conflict; +1 wins, so SFT keeps its positive half only
    assert led["conflicts"] == 6
    assert led["elect_sft"] == 3 and led["elect_ct"] == 3 and led["sft_discarded"] == 3
    assert led["sft_discarded_l1"] == 6.0


def test_ties_at_the_trim_threshold_keep_lowest_indices():
    base = torch.zeros(10)
    sft = torch.tensor([1.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    ct = torch.tensor([0.0, 0.0, 0.0, -1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    # k_sft = int(0.3 * 10) = 3: entries 0, 1, 2 (1 and 2 win the tie among 1..4), so 3 and 4 never conflict
    _, led = tensor_ledger(base, [sft, ct], [0.3, 1.0])
    assert led["sft_kept"] == 3 and led["conflicts"] == 0 and led["sft_discarded"] == 0
    ct2 = torch.tensor([0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    _, led2 = tensor_ledger(base, [sft, ct2], [0.3, 1.0])
    assert led2["conflicts"] == 1 and led2["elect_ct"] == 1 and led2["sft_discarded_l1"] == 0.5


def test_kept_zero_is_neither_conflict_nor_discarded():
    base = torch.zeros(4)
    sft = torch.tensor([2.0, 0.0, 0.0, 0.0])
    ct = torch.tensor([-3.0, -1.0, 1.0, -1.0])
    _, led = tensor_ledger(base, [sft, ct], [0.75, 1.0])  # keeps 3 of sft: 2.0 and two exact zeros
    assert led["sft_kept"] == 3
    assert led["conflicts"] == 1 and led["sft_discarded"] == 1 and led["elect_ct"] == 1


def test_merged_tensor_equals_the_value_implied_by_the_masks():
    base, finetuned = random_pair(11, shape=(33, 17))
    merged, masks = ties_merge_tensor(base, finetuned, [1.0, 1.0], [0.2, 1.0], slack=0.04, priority=0, keep_masks=True)
    taus = torch.stack([f - base for f in finetuned])  # (2, *shape)
    led = ledger_from_masks(taus, masks)
    trimmed = taus * masks.kept  # (2, *shape)
    agree = masks.agree.float()
    expected = base + (trimmed * agree).sum(0) / agree.sum(0).clamp_min(1)
    assert torch.allclose(merged, expected, atol=1e-6)
    # the ledger reads the same masks: SFT contributes exactly where it is kept and not discarded
    sft_contributes = masks.agree[0]
    assert int(sft_contributes.sum()) == led["sft_kept"] - led["sft_discarded"]
    assert torch.equal(masks.sign[masks.restored], torch.sign(taus[0])[masks.restored])


def test_bad_inputs_raise_clear_errors():
    base, finetuned = random_pair(0, shape=(4, 4))
    _, masks = ties_merge_tensor(base, finetuned, [1.0, 1.0], [0.2, 1.0], keep_masks=True)
    with pytest.raises(ValueError, match="at least one CT"):
        ledger_from_masks([finetuned[0] - base], masks)
    with pytest.raises(ValueError, match="masks.kept has shape"):
        ledger_from_masks([torch.zeros(3), torch.zeros(3)], masks)
    with pytest.raises(ValueError, match="priority index 5"):
        ledger_from_masks([finetuned[0] - base, finetuned[1] - base], masks, priority=5)


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "name, layer, module",
    [
        ("model.layers.3.self_attn.q_proj.weight", 3, "q"),
        ("model.layers.12.self_attn.k_proj.weight", 12, "k"),
        ("model.layers.0.self_attn.v_proj.weight", 0, "v"),
        ("model.layers.31.self_attn.o_proj.weight", 31, "o"),
        ("model.layers.2.mlp.gate_proj.weight", 2, "gate"),
        ("model.layers.2.mlp.up_proj.weight", 2, "up"),
        ("model.layers.2.mlp.down_proj.weight", 2, "down"),
        ("model.layers.2.input_layernorm.weight", 2, "norm"),
        ("model.layers.2.post_attention_layernorm.weight", 2, "norm"),
        ("model.norm.weight", None, "norm"),
        ("model.embed_tokens.weight", None, "embed"),
        ("lm_head.weight", None, "lm_head"),
        ("model.rotary_emb.inv_freq", None, "other"),
        ("model.layers.4.self_attn.q_proj.bias", 4, "q"),
    ],
)
def test_parse_tensor_name(name, layer, module):
    assert parse_tensor_name(name) == (layer, module)
    assert module in MODULES


def test_parse_tensor_name_rejects_empty():
    with pytest.raises(ValueError, match="non-empty"):
        parse_tensor_name("")

