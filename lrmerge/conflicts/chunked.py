"""The sign-conflict ledger streamed chunk by chunk: counts only, no masks and no merged tensor (paper 6.1).

The fast path of ``ledger.tensor_ledger`` for plain TIES with unit weights, sum election and no slack, SFT first
(the paper's setting). Per tensor, SFT's task vector and its trim threshold are computed once and SFT's side of each
chunk is shared by every CT checkpoint; each merge (SFT with one CT, or SFT with several) then adds integer counts
and float64 L1 sums chunk by chunk. The decisions are the merge's own primitives: trim by ``trim_chunk`` /
``kept_mask`` with the same ``Threshold`` (``magnitude_threshold``: exact k, ties by lowest flat index) and the
elected sign from ``election_score`` (the total of ``ties_merge_chunk``'s closed form). The tests compare every
field with the full-tensor ledger (``ledger_from_masks`` on ``ties_merge_tensor``'s masks).

Sign tests use sign bits (int32 >> 31 is -1 or 0; on CPU a float comparison costs ten times more per element):
  conflict   s * t_ct + 0.0 is negative, s = sign(SFT's trimmed entry) in {-1, 0, +1}: both kept, nonzero and of
             opposite signs (+ 0.0 turns the -0.0 of a zero product into +0.0).
  discarded  SFT live (kept, nonzero) and s * score has its sign bit set, score = ``election_score`` (>= 0 elects
             +): the elected sign differs from SFT's. A +0.0 score elects + and -1 * +0.0 = -0.0 has the bit set;
             a -0.0 score needs every summand to be a zero, so it never occurs where SFT is live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor

from lrmerge.merge.fastpath import fast_path as merge_fast_path, serial_cpu
from lrmerge.merge.primitives import election_score
from lrmerge.merge.select import (Threshold, chunk_ranges, kept_count, kept_mask, magnitude_threshold,
                                  sample_positions, trim_chunk)

STREAM_BLOCK = 1 << 20  # elements read per model per step on CPU (4 MiB in float32), as the merge engine
# read(model, start, stop) -> flat float32 elements [start, stop) of model 0 = BASE, 1 = SFT, 2 + j = CT j
Reader = Callable[[int, int, int], Tensor]


def fast_path(weights: Sequence[float] | None = None, slack: float = 0.0, priority: int = 0, **merge_options) -> bool:
    """Whether a ledger can take the streamed path: asks ``lrmerge.merge.fastpath.fast_path`` (purpose "ledger":
    plain TIES, unit weights, sum election, no slack, SFT first). Options other than those that only scale the
    merged values or choose the election (``lambda_``, ``normalize``, ``divide``, ``election``,
    ``weighted_election``) take the full-tensor ledger."""
    if not set(merge_options) <= {"lambda_", "normalize", "divide", "election", "weighted_election"}:
        return False
    weights = [1.0, 1.0] if weights is None else list(weights)
    options = {**merge_options, "slack": slack, "priority": priority}
    return merge_fast_path("ties_sv" if slack else "ties", options, weights, purpose="ledger") == "ties"


@dataclass
class PriorityChunk:
    """SFT's side of one flat chunk, shared by every CT checkpoint's merge."""

    trimmed: Tensor  # (L,) float32 SFT task vector after trim (zeros where not kept)
    sign: Tensor  # (L,) float32 sign(trimmed): +1, -1, or 0 (not kept, or a kept exact zero)
    live: Tensor  # (L,) int32 -1 where kept and nonzero, else 0
    magnitude: Tensor  # (L,) float32 |trimmed|
    kept: Tensor | None  # (L,) bool trim mask, only when some CT is trimmed (both_kept needs it)


def priority_chunk(tau: Tensor, threshold: Threshold | None, offset: int, need_kept: bool) -> PriorityChunk:
    """SFT's trimmed chunk (``trim_chunk``, as the merge) and what every CT's counts read from it."""
    trimmed = trim_chunk(tau, threshold, offset)
    sign = torch.sign(trimmed)  # -0.0 stays a zero
    magnitude = trimmed.abs()
    live = torch.neg(magnitude.view(torch.int32)) >> 31  # magnitude bits > 0 exactly where nonzero
    kept = None
    if need_kept:
        kept = kept_mask(tau, threshold, offset) if threshold is not None else torch.ones_like(tau, dtype=torch.bool)
    return PriorityChunk(trimmed, sign, live, magnitude, kept)


def _sign_bit(x: Tensor) -> Tensor:
    """int32 -1 where the float32 sign bit of x is set, else 0."""
    return x.view(torch.int32) >> 31


class MergeSums:
    """Running sums of one merge's ledger (SFT against the CTs in ``members``)."""

    def __init__(self, members: Sequence[int]):
        self.members = list(members)
        self.conflicts = self.sft_discarded = self.elect_ct = self.ct_kept = self.both_kept = 0
        self.sft_discarded_l1 = 0.0

    def add(self, side: PriorityChunk, trimmed: Sequence[Tensor], kept: Sequence[Tensor | None],
            count_kept: bool) -> None:
        """Add one chunk: ``trimmed[j]`` / ``kept[j]`` are the chunk of member j (kept None: density 1)."""
        score = election_score([side.trimmed, *trimmed], [1.0] * (1 + len(trimmed)))  # (L,) >= 0 elects +
        conflict = None
        for t in trimmed:
            opposite = _sign_bit(torch.mul(side.sign, t).add_(0.0))  # (L,) int32
            conflict = opposite if conflict is None else conflict.bitwise_or_(opposite)
        discarded = _sign_bit(score.mul_(side.sign)).bitwise_and_(side.live)  # (L,) int32
        self.conflicts -= int(conflict.sum())
        self.sft_discarded -= int(discarded.sum())
        self.elect_ct -= int(conflict.bitwise_and_(discarded).sum())
        lost = (side.magnitude.view(torch.int32) & discarded).view(torch.float32)
        self.sft_discarded_l1 += float(lost.sum(dtype=torch.float64))
        if count_kept:  # some member is trimmed: the union of the CT trim masks, per chunk
            union = None
            for mask in kept:
                mask = mask if mask is not None else torch.ones_like(side.trimmed, dtype=torch.bool)
                union = mask.clone() if union is None else union.logical_or_(mask)
            self.ct_kept += int(union.sum())
            self.both_kept += int(union.logical_and_(side.kept).sum())


def streamed_ledgers(
    read: Reader,
    numel: int,
    density_sft: float,
    densities_ct: Sequence[float],
    merges: Sequence[Sequence[int]] | None = None,
    *,
    device: torch.device | str = "cpu",
    block: int | None = None,
    chunk: int | None = None,
) -> list[dict[str, int | float]]:
    """The ledger of each TIES merge of SFT with CTs (unit weights, sum election, no slack), streamed.

    ``read(model, start, stop)`` gives flat float32 elements (model 0 BASE, 1 SFT, 2 + j CT j; NaN checks are
    the reader's). ``merges``: the CT indices merged with SFT in each merge, in merge order after SFT (default:
    each CT alone, the series over checkpoints). Returns one ledger dict (``LEDGER_FIELDS``) per merge.
    SFT's task vector (one float32 tensor) is held; everything else is read in blocks of ``block`` elements
    (STREAM_BLOCK on CPU, the whole tensor elsewhere) and counted in chunks of ``chunk`` (CPU_CHUNK on CPU).
    Call it inside ``serial_cpu`` on CPU (as the merge engine does).
    """
    n_ct = len(densities_ct)
    merges = [[j] for j in range(n_ct)] if merges is None else [list(m) for m in merges]
    for members in merges:
        if not members or any(not 0 <= j < n_ct for j in members) or len(set(members)) != len(members):
            raise ValueError(f"each merge needs distinct CT indices in [0, {n_ct}); got {members}")
    device = torch.device(device)
    block = block or (STREAM_BLOCK if device.type == "cpu" else max(numel, 1))
    blocks = [(a, min(a + block, numel)) for a in range(0, numel, block)]

    tau_sft = torch.empty(numel, dtype=torch.float32, device=device)  # (numel,) held: its threshold reads it twice
    for a, b in blocks:
        torch.sub(read(1, a, b), read(0, a, b), out=tau_sft[a:b])
    k_sft = kept_count(numel, density_sft) if numel else 0
    sft_threshold = (magnitude_threshold(lambda: iter([tau_sft]), k_sft, *sample_positions(tau_sft), numel)
                     if k_sft < numel else None)
    used = sorted({j for members in merges for j in members})
    ct_thresholds: dict[int, Threshold | None] = {}
    for j in used:
        k = kept_count(numel, densities_ct[j]) if numel else 0
        ct_thresholds[j] = None if k >= numel else magnitude_threshold(
            lambda j=j: (read(2 + j, a, b) - read(0, a, b) for a, b in blocks), k)
    count_kept = [any(ct_thresholds[j] is not None for j in members) for members in merges]

    sums = [MergeSums(members) for members in merges]
    sft_kept_l1 = 0.0
    for a, b in blocks:
        base = read(0, a, b)  # (B,)
        cts = {j: read(2 + j, a, b) for j in used}  # (B,) each
        for c, d in chunk_ranges(base, chunk):
            side = priority_chunk(tau_sft[a + c:a + d], sft_threshold, a + c, any(count_kept))
            sft_kept_l1 += float(side.magnitude.sum(dtype=torch.float64))
            trimmed, kept = {}, {}
            for j in used:
                tau = torch.sub(cts[j][c:d], base[c:d])  # (L,)
                trimmed[j] = trim_chunk(tau, ct_thresholds[j], a + c)
                kept[j] = kept_mask(tau, ct_thresholds[j], a + c) if ct_thresholds[j] is not None else None
            for merge_sums, counting in zip(sums, count_kept):
                members = merge_sums.members
                merge_sums.add(side, [trimmed[j] for j in members], [kept[j] for j in members], counting)

    sft_kept = k_sft if sft_threshold is not None else numel
    out = []
    for merge_sums, counting in zip(sums, count_kept):
        ct_kept = merge_sums.ct_kept if counting else numel
        out.append({
            "numel": numel, "sft_kept": sft_kept, "ct_kept": ct_kept,
            "both_kept": merge_sums.both_kept if counting else sft_kept,
            "conflicts": merge_sums.conflicts, "elect_sft": merge_sums.conflicts - merge_sums.elect_ct,
            "elect_ct": merge_sums.elect_ct, "sft_discarded": merge_sums.sft_discarded, "slack_restored": 0,
            "sft_kept_l1": sft_kept_l1, "sft_discarded_l1": merge_sums.sft_discarded_l1,
        })
    return out


def chunked_ledger(base: Tensor, finetuned: Sequence[Tensor], densities: Sequence[float], *,
                   chunk: int | None = None, block: int | None = None) -> dict[str, int | float]:
    """The ledger of one TIES merge of in-memory tensors, ``finetuned[0]`` = SFT, the rest CT (unit weights, sum
    election, no slack), without masks or a merged tensor: equals ``tensor_ledger``'s ledger."""
    if len(finetuned) < 2:
        raise ValueError(f"the ledger compares SFT with at least one CT model; got {len(finetuned)} tensor(s)")
    if len(densities) != len(finetuned):
        raise ValueError(f"need one density per model: {len(finetuned)} models, {len(densities)} densities")
    for i, f in enumerate(finetuned):
        if f.shape != base.shape:
            raise ValueError(f"model {i}: shape {tuple(f.shape)} differs from base {tuple(base.shape)}")
    flats = [base.reshape(-1), *(f.reshape(-1) for f in finetuned)]
    with serial_cpu(base.device):  # chunks are below torch's grain size: one thread, no OpenMP barriers
        ledgers = streamed_ledgers(lambda m, a, b: flats[m][a:b].float(), base.numel(), densities[0],
                                   list(densities[1:]), merges=[list(range(len(finetuned) - 1))],
                                   device=base.device, block=block, chunk=chunk)
    return ledgers[0]
