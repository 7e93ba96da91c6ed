"""The sign-conflict ledger for every registered method that elects signs (dare_ties, breadcrumbs_ties, della):
read off the masks of the method's own registry function, and equal to a brute-force count of those masks."""

import pytest
import torch
from safetensors.torch import load_file
from test_conflicts_series import SHAPES, make_world

from lrmerge.conflicts.columns import LEDGER_FIELDS
from lrmerge.conflicts.ledger import tensor_ledger
from lrmerge.conflicts.series import conflict_series, series_config
from lrmerge.merge.methods import MERGE_METHODS, TensorContext, get_method, tensor_seeds

SIGN_ELECTING = sorted(name for name, spec in MERGE_METHODS.items() if spec.uses_masks)


def brute_ledger(taus, kept, sign, agree):
    """Count the ledger fields by loops over entries from the merge's own decisions (priority = model 0)."""
    sgn = lambda x: (x > 0) - (x < 0)  # noqa: E731
    n, size = len(taus), taus[0].numel()
    t = [x.reshape(-1).tolist() for x in taus]
    k = [m.reshape(-1).tolist() for m in kept]
    s, a = sign.reshape(-1).tolist(), [m.reshape(-1).tolist() for m in agree]
    led = dict.fromkeys(LEDGER_FIELDS, 0)
    led["numel"] = size
    for j in range(size):
        live = k[0][j] and t[0][j] != 0
        conflict = live and any(k[i][j] and sgn(t[i][j]) == -sgn(t[0][j]) for i in range(1, n))
        led["sft_kept"] += bool(k[0][j])
        led["ct_kept"] += any(k[i][j] for i in range(1, n))
        led["both_kept"] += bool(k[0][j]) and any(k[i][j] for i in range(1, n))
        led["conflicts"] += conflict
        led["elect_sft"] += conflict and s[j] == sgn(t[0][j])
        led["elect_ct"] += conflict and s[j] != sgn(t[0][j])
        led["sft_discarded"] += live and not a[0][j]
        led["sft_kept_l1"] += abs(t[0][j]) if k[0][j] else 0.0
        led["sft_discarded_l1"] += abs(t[0][j]) if live and not a[0][j] else 0.0
    return led


@pytest.mark.parametrize("method", [m for m in SIGN_ELECTING if m not in ("ties", "ties_sv")])
def test_ledger_of_every_sign_electing_method_counts_its_own_masks(method):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(24, 30, generator=g)
    fts = [base + 0.1 * torch.randn(24, 30, generator=g) for _ in range(2)]
    spec = get_method(method)
    seeds = (5, 6)
    merged, led = tensor_ledger(base, fts, [0.3, 0.6], method=method, seeds=seeds if spec.random else None)
    want, masks = spec(base, fts, [1.0, 1.0], [0.3, 0.6], keep_masks=True, context=TensorContext(seeds=seeds),
                       **{k: v for k, v in spec.defaults().items() if k not in ("slack", "priority", "slack_of")})
    assert torch.equal(merged, want)  # the ledger's merge is the method's merge
    taus = [f - base for f in fts]
    expected = brute_ledger(taus, masks.kept, masks.sign, masks.agree)
    for field in LEDGER_FIELDS:
        assert led[field] == pytest.approx(expected[field], rel=1e-9), field
    assert led["conflicts"] == led["elect_sft"] + led["elect_ct"] and led["sft_discarded"] == led["elect_ct"]
    assert led["conflicts"] > 0


def test_methods_without_sign_election_have_no_ledger():
    base = torch.zeros(8)
    with pytest.raises(ValueError, match="elects no signs"):
        tensor_ledger(base, [base + 1, base - 1], [1.0, 1.0], method="dare_linear")


def test_series_for_dare_ties_uses_tensor_seeds_and_keeps_ties_cache_keys(tmp_path):
    world = make_world(tmp_path)
    table = conflict_series(world["base"], world["sft"], world["ct"], density_sft=0.5, density_ct=0.5, device="cpu",
                            cache_dir=tmp_path / "cache", progress=False, method="dare_ties", random_seed=3)
    base, sft = load_file(world["base"] / "model.safetensors"), load_file(world["sft"] / "model.safetensors")
    ct = load_file(world["ct"][0] / "model.safetensors")
    name = "model.layers.0.mlp.down_proj.weight"
    _, expected = tensor_ledger(base[name], [sft[name], ct[name]], [0.5, 0.5], method="dare_ties",
                                seeds=tensor_seeds(3, name, 2))
    row = table[(table.checkpoint == world["ct"][0].name) & (table.tensor == name)].iloc[0]
    assert all(row[f] == pytest.approx(expected[f], rel=1e-12) for f in LEDGER_FIELDS)
    assert len(table) == 3 * len(SHAPES)
    args = (world["base"], world["sft"], world["ct"], 0.2, 1.0, 0.0, "kept")
    assert series_config(*args) == series_config(*args, method="ties")  # TIES tables keep their cache keys
    assert series_config(*args, method="dare_ties", random_seed=3)["random_seed"] == 3
    with pytest.raises(ValueError, match="elects no signs"):
        series_config(*args, method="breadcrumbs")
