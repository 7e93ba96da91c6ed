"""The streamed (chunked) ledger equals the full-tensor ledger exactly, and reads the merge's own election."""

from __future__ import annotations

import pytest
import torch
from test_conflicts_ledger import as_lists, brute_ties_ledger, grid_tensor

from lrmerge.conflicts.chunked import chunked_ledger, fast_path, streamed_ledgers
from lrmerge.conflicts.ledger import LEDGER_FIELDS, tensor_ledger
from lrmerge.merge import primitives as P

COUNTS = [f for f in LEDGER_FIELDS if not f.endswith("_l1")]


def full_ledger(base, finetuned, densities):
    return tensor_ledger(base, finetuned, densities)[1]


# ------------------------------------------------------------------ chunked == full tensor == brute force


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("densities", [[0.2, 1.0], [0.3, 0.5], [1.0, 1.0], [1.0, 0.4], [0.2, 1.0, 0.6],
                                       [0.4, 0.3, 1.0, 0.5]])
@pytest.mark.parametrize("chunk", [1, 3, 8, 64])
def test_chunked_equals_full_tensor_ledger_on_tied_grid_values(seed, densities, chunk):
    # grid values (multiples of 1/4): many exact zeros, exact ties at every trim threshold, exact zero sums, and
    # sums of |tau| that float32 and float64 hold exactly, so every field must match to the bit
    gen = torch.Generator().manual_seed(seed)
    shape = (9, 11)
    base = grid_tensor(gen, shape)
    finetuned = [base + grid_tensor(gen, shape, scale=2 + i) for i in range(len(densities))]
    expected = full_ledger(base, finetuned, densities)
    got = chunked_ledger(base, finetuned, densities, chunk=chunk, block=5 * chunk)  # blocks not a chunk multiple
    assert got == expected
    if len(densities) == 2:
        assert got == pytest.approx(brute_ties_ledger(*as_lists(base, finetuned), densities, [1.0, 1.0], 0.0)[1])


@pytest.mark.parametrize("seed", range(3))
def test_chunked_equals_full_tensor_ledger_on_random_normals(seed):
    gen = torch.Generator().manual_seed(50 + seed)
    base = torch.randn(70, 40, generator=gen)
    finetuned = [base + 0.1 * torch.randn(70, 40, generator=gen), base + 0.3 * torch.randn(70, 40, generator=gen)]
    expected = full_ledger(base, finetuned, [0.2, 1.0])
    for chunk in (100, 1024, None):
        got = chunked_ledger(base, finetuned, [0.2, 1.0], chunk=chunk)
        assert {f: got[f] for f in COUNTS} == {f: expected[f] for f in COUNTS}
        for field in ("sft_kept_l1", "sft_discarded_l1"):  # float64 sums in another order
            assert got[field] == pytest.approx(expected[field], rel=1e-12)
    assert expected["conflicts"] > 100 and expected["elect_ct"] > 0 and expected["elect_sft"] > 0


def test_threshold_ties_straddling_chunk_boundaries():
    # |tau_sft| = 1 at 3 places, then a run of 0.5 across chunks 1..4 (chunk 4): k = 7 keeps 3 + the first 4 of
    # the 0.5 run (flat indices 3..6), cut inside the second chunk; CT opposes at indices 5..8
    base = torch.zeros(16)
    sft = torch.tensor([1.0, -1.0, 1.0] + [0.5, -0.5] * 4 + [0.25] * 5)
    ct = torch.zeros(16)
    ct[5:9] = torch.tensor([-1.0, 1.0, -0.25, 1.0])
    density = 7 / 16
    expected = full_ledger(base, [sft, ct], [density, 1.0])
    assert expected["sft_kept"] == 7 and expected["conflicts"] == 2  # indices 5 and 6; 7 and 8 are not kept
    for chunk in (1, 2, 3, 4, 5, 16):
        assert chunked_ledger(base, [sft, ct], [density, 1.0], chunk=chunk) == expected
    _, brute = brute_ties_ledger(*as_lists(base, [sft, ct]), [density, 1.0], [1.0, 1.0], 0.0)
    assert expected == pytest.approx(brute)


def test_kept_exact_zeros_negative_zeros_and_zero_sums():
    base = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0])
    # SFT's task vector: [3, 0, -0.0, 0, 1, -1, 1e-30, 0]; CT's: [-3, -1, 1, 0, -1, 1, -1e-30, 0]
    sft = torch.tensor([3.0, 0.0, -0.0, 1.0, 1.0, -1.0, 1e-30, 2.0])
    ct = torch.tensor([-3.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1e-30, 2.0])
    densities = [6 / 8, 1.0]  # keeps SFT's 4 nonzeros and, of the tied zero magnitudes, indices 1 and 2 (-0.0)
    expected = full_ledger(base, [sft, ct], densities)
    _, brute = brute_ties_ledger(*as_lists(base, [sft, ct]), densities, [1.0, 1.0], 0.0)
    assert expected == pytest.approx(brute)
    # kept zeros (1, 2) are no conflicts; 0, 4, 5, 6 sum to exactly zero, which elects +: only 5 (SFT -1) is
    # discarded; 6's product 1e-30 * -1e-30 underflows to -0.0 and must still count as a conflict
    assert expected["sft_kept"] == 6 and expected["conflicts"] == 4
    assert expected["elect_ct"] == expected["sft_discarded"] == 1 and expected["sft_discarded_l1"] == 1.0
    for chunk in (1, 3, 8):
        assert chunked_ledger(base, [sft, ct], densities, chunk=chunk) == expected


def test_empty_and_single_entry_tensors():
    for n in (0, 1):
        base, sft, ct = torch.zeros(n), -torch.ones(n), torch.ones(n)
        assert chunked_ledger(base, [sft, ct], [0.2, 1.0]) == full_ledger(base, [sft, ct], [0.2, 1.0])


def test_streamed_merges_reuse_one_sft_side_for_many_checkpoints():
    gen = torch.Generator().manual_seed(9)
    base = grid_tensor(gen, (40,))
    sft = base + grid_tensor(gen, (40,))
    cts = [base + grid_tensor(gen, (40,), scale=3) for _ in range(3)]
    flats = [base, sft, *cts]
    reads = []

    def read(model, a, b):
        reads.append(model)
        return flats[model][a:b]

    got = streamed_ledgers(read, 40, 0.25, [1.0, 0.5, 1.0], merges=[[0], [1], [2], [0, 2]], block=16, chunk=4)
    assert got[0] == full_ledger(base, [sft, cts[0]], [0.25, 1.0])
    assert got[1] == full_ledger(base, [sft, cts[1]], [0.25, 0.5])
    assert got[2] == full_ledger(base, [sft, cts[2]], [0.25, 1.0])
    assert got[3] == full_ledger(base, [sft, cts[0], cts[2]], [0.25, 1.0, 1.0])
    assert reads.count(1) == 3  # SFT read once per block, however many checkpoints


def test_bad_inputs_raise_clear_errors():
    x = torch.zeros(4)
    with pytest.raises(ValueError, match="at least one CT"):
        chunked_ledger(x, [x], [0.2])
    with pytest.raises(ValueError, match="one density per model"):
        chunked_ledger(x, [x, x], [0.2])
    with pytest.raises(ValueError, match=r"model 1: shape \(5,\)"):
        chunked_ledger(x, [x, torch.zeros(5)], [0.2, 1.0])
    with pytest.raises(ValueError, match=r"distinct CT indices in \[0, 1\); got \[1\]"):
        streamed_ledgers(lambda m, a, b: x[a:b], 4, 0.2, [1.0], merges=[[1]])


def test_fast_path_only_for_unit_weights_sum_election_and_no_slack():
    assert fast_path()
    assert fast_path([1.0, 1.0], 0.0, lambda_=0.5, normalize=False)
    assert not fast_path([1.0, 0.5])
    assert not fast_path(slack=0.04)
    assert not fast_path(priority=1)
    assert not fast_path(election="count")
    assert not fast_path(kept=[x for x in ()])


# ------------------------------------------------------------------ the election the ledger reads is the merge's


def tied_chunks(seed, n, size=500):
    gen = torch.Generator().manual_seed(seed)
    chunks = [torch.randint(-2, 3, (size,), generator=gen).float() for _ in range(n)]
    chunks[0][::7] = -0.0
    chunks[0][:3] = torch.tensor([1e-30, -1e-30, 5.0])
    return chunks


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("election", ["sum", "count"])
def test_election_score_elects_what_elect_sign_and_the_merge_chunk_elect(seed, n, election):
    chunks = tied_chunks(seed, n)
    weights = torch.ones(n)
    score = P.election_score(chunks, weights, election)
    sign = P.elect_sign(torch.stack(chunks), weights, election)
    assert torch.equal(torch.where(score >= 0, 1.0, -1.0), sign)
    assert torch.equal(P.election_score(torch.stack(chunks), weights, election), score) or n == 2
    if election == "sum":  # the merge chunk (closed form for n == 2) agrees with that sign's disjoint mean
        base = torch.zeros(chunks[0].numel())
        merged = P.ties_merge_chunk(base, [base + c for c in chunks], weights, [None] * n)
        trimmed = torch.stack(chunks)
        expected = P.disjoint_merge(trimmed, weights, P.agreement_mask(trimmed, sign))
        assert torch.equal(merged, expected)
    with pytest.raises(ValueError, match=r"allowed|\['sum', 'count'\]"):
        P.election_score(chunks, weights, "median")


def test_in_memory_ledger_and_streamed_series_agree_at_slack_zero(tmp_path):
    import pandas as pd
    from test_conflicts_series import make_world

    from lrmerge.conflicts.memory import InMemoryLedger
    from lrmerge.conflicts.series import compute_series

    world = make_world(tmp_path)
    key = ["checkpoint", "tensor"]
    series_table = compute_series(world["base"], world["sft"], world["ct"], density_sft=0.3, density_ct=0.6,
                                  progress=False).sort_values(key).reset_index(drop=True)
    memory_table = InMemoryLedger(world["base"], world["sft"], world["ct"]).table(0.3, 0.6, 0.0)
    pd.testing.assert_frame_equal(memory_table.sort_values(key).reset_index(drop=True), series_table)
    assert series_table["conflicts"].sum() > 0 and (series_table["ct_kept"] < series_table["numel"]).all()


def test_in_memory_table_shares_sft_across_checkpoints_and_equals_per_checkpoint_rows(tmp_path):
    import pandas as pd

    from lrmerge.conflicts.memory import InMemoryLedger
    from lrmerge.conflicts.synthetic import make_checkpoint_series

    series = make_checkpoint_series(tmp_path / "s", n=3, hidden_size=32, intermediate_size=64, vocab_size=128)
    together = InMemoryLedger(series["base"], series["sft"], series["ct"]).table(0.3, 1.0, 0.0)
    one_by_one = InMemoryLedger(series["base"], series["sft"], series["ct"])
    rows = pd.DataFrame([r for label in one_by_one.labels for r in one_by_one.rows(label, 0.3, 1.0, 0.0)])
    for column in ("sft_kept", "ct_kept", "both_kept", "conflicts", "elect_sft", "elect_ct", "sft_discarded",
                   "sft_kept_l1", "sft_discarded_l1"):
        assert together[column].tolist() == rows[column].tolist(), column
