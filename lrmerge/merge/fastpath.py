"""The fast paths and the one decision of when they may serve (``fast_path``); owned by the engine.

Fast paths compute exactly what the reference (``general.general_merge``) computes, bit for bit (the generated
tests in ``tests/test_merge_fastpath.py`` enumerate the configurations), but chunk by chunk without materialising
masks:

- "ties": plain TIES (magnitude trim, sign consensus, no rescale, no slack) through ``ties_merge_chunk`` with a
  ``Threshold`` per model. Two unit-weight models with sum election take a closed form built from min/max and
  sign-bit selects (``_two_model_delta``; torch.where and comparisons cost ten times more per element on CPU), and
  on CPU with numba the engine runs that closed form as one compiled loop (``kernels.ties_two_models``).
- "weighted_sum": linear and task arithmetic (no sparsifier, no consensus), streamed block by block.

Everything else (masks for the ledger, rescale, random or outlier sparsifiers, slack, layer swap) takes the
reference path. ``serial_cpu`` (one intra-op thread while chunked work runs) lives here too: it changes torch's
thread count, so only the engine and the streamed ledger call it, never the math modules.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Literal, Mapping, Sequence

import torch
from torch import Tensor

from lrmerge.merge.primitives import (DIVIDES, ELECTIONS, Divide, Election, _check_choice, agreement_mask,
                                      disjoint_merge, elect_sign)
from lrmerge.merge.select import (CPU_CHUNK, Threshold, chunk_ranges, kept_count, magnitude_threshold,
                                  sample_positions, tau_chunks, trim_chunk)

FastPath = Literal["ties", "weighted_sum"]

@contextmanager
def serial_cpu(device: torch.device | str = "cpu") -> Iterator[None]:
    """Run torch ops on one intra-op thread inside (CPU only; restored on exit). Chunked CPU work is below the
    grain size anyway; this also keeps the few larger ops (bincount's min/max) off OpenMP barriers, which cost
    milliseconds per op on a loaded machine. Parallelism comes from the engine's worker threads
    (engine.CPU_WORKERS), each running its ops inline."""
    before = torch.get_num_threads()
    if torch.device(device).type != "cpu" or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)



def _bits(x: Tensor) -> Tensor:
    return x.view(torch.int32)


def _two_model_delta(t0: Tensor, t1: Tensor, normalize: bool) -> Tensor:
    """Disjoint mean of two unit-weight trimmed task vectors (L,), sum election, without comparisons or where.

    The elected sign is that of total = t0 + t1 (+ on 0). Where t0 and t1 have the same strict sign both agree:
    total / 2 (total if not normalize). Otherwise only one agrees, the larger |t| (the positive one on a tie):
    max(t0, t1) if total >= 0 else min(t0, t1); with a zero that is the other value, and 0 if both are 0.
    Selections use sign-bit masks (int32 >> 31 is 0 or -1) and a ^ ((a ^ b) & m), which are exact and cost a
    tenth of torch.where / comparisons on CPU.
    """
    total = t0 + t1
    high, low = _bits(torch.maximum(t0, t1)), _bits(torch.minimum(t0, t1))
    negative = _bits(total) >> 31  # -1 where the elected sign is -
    winner = high ^ ((high ^ low) & negative)
    # same strict sign: min > 0 (sign bit of 0 - min set; 0 - 0 is +0) or max < 0 (a -0.0 max means both are 0,
    # where total / 2 is 0 too)
    both = (_bits(torch.rsub(low.view(torch.float32), 0.0)) >> 31) | (high >> 31)
    mean = _bits(total.mul_(0.5) if normalize else total)
    return (winner ^ ((winner ^ mean) & both)).view(torch.float32)


def ties_merge_chunk(
    base: Tensor,
    finetuned: Sequence[Tensor],
    weights: Tensor,
    trims: Sequence[Threshold | Tensor | None],
    offset: int = 0,
    *,
    lambda_: float = 1.0,
    normalize: bool = True,
    election: Election = "sum",
    weighted_election: bool = True,
    divide: Divide = "weight_sum",
    out: Tensor | None = None,
    task_vectors: Sequence[Tensor | None] | None = None,
) -> Tensor:
    """Plain TIES on flat float32 chunks (base (L,), each finetuned (L,)) starting at flat index ``offset``:
    base + lambda_ * disjoint mean of the trimmed task vectors. ``trims[i]``: a Threshold (per-tensor or global
    selection), a bool mask chunk (L,), or None (density 1). ``task_vectors[i]``, when given, is finetuned[i] -
    base already computed (finetuned[i] is then not read). Same arithmetic as ``ties_merge_tensor``'s
    full-tensor path; two unit-weight models with sum election use a closed form with fewer passes."""
    taus = []
    given = list(task_vectors) if task_vectors is not None else [None] * len(trims)
    for f, trim_i, tau in zip(finetuned, trims, given):
        tau = f - base if tau is None else tau  # (L,)
        if isinstance(trim_i, Tensor):
            tau = torch.where(trim_i, tau, torch.zeros((), dtype=tau.dtype, device=tau.device))
        else:
            tau = trim_chunk(tau, trim_i, offset)
        taus.append(tau)
    if len(taus) == 2 and closed_form(weights.tolist(), election):
        delta = _two_model_delta(*taus, normalize and divide != "none")
    else:
        trimmed = torch.stack(taus)  # (n_models, L)
        sign = elect_sign(trimmed, weights, election, weighted_election)  # (L,)
        delta = disjoint_merge(trimmed, weights, agreement_mask(trimmed, sign), divide if normalize else "none")
    if lambda_ != 1:
        delta = delta.mul_(lambda_)
    return torch.add(base, delta, out=out)



def fast_path(method: str, options: Mapping[str, Any], weights: Sequence[float], *, keep_masks: bool = False,
              purpose: Literal["merge", "ledger"] = "merge") -> FastPath | None:
    """The one decision: which fast path may serve this configuration (None: the reference path).

    ``options``: the method's resolved options (``ResolvedMerge.options``: ``lambda_``, ``normalize``, ``election``,
    ``divide``, ``rescale``, ``slack``, ``priority``, ...). ``keep_masks``: the caller needs the masks (ledger,
    collect_masks): only the reference materialises them. ``purpose="ledger"``: whether the streamed sign-conflict
    ledger (``conflicts.chunked``) may count this merge: plain TIES with unit weights, sum election, the priority
    (SFT) model first.
    """
    from lrmerge.merge.methods import get_method

    spec = get_method(method)
    if keep_masks:
        return None
    no_slack = float(options.get("slack", 0) or 0) == 0 or options.get("priority") is None
    plain_ties = spec.consensus and spec.sparsify == "magnitude" and not options.get("rescale", False) and no_slack
    if purpose == "ledger":
        unit = all(float(w) == 1.0 for w in weights)
        first = options.get("priority", 0) in (0, None)
        return "ties" if plain_ties and unit and first and options.get("election", "sum") == "sum" else None
    if spec.name in ("linear", "task_arithmetic"):
        return "weighted_sum"
    return "ties" if plain_ties else None


def closed_form(weights: Sequence[float], election: str) -> bool:
    """Inside the "ties" fast path: whether ``ties_merge_chunk`` takes its two-model closed form (unit weights,
    sum election; the division then is by 2 or, with divide="none" or normalize=False, by 1)."""
    return list(map(float, weights)) == [1.0, 1.0] and election == "sum"


CHUNK_OPTIONS = ("lambda_", "normalize", "election", "weighted_election", "divide")


def ties_chunked(base: Tensor, finetuned: Sequence[Tensor], weights: Sequence[float], densities: Sequence[float],
                 kept: Sequence[Tensor] | None = None, **options: Any) -> Tensor:
    """The "ties" fast path for one tensor: per-model thresholds first, then ``ties_merge_chunk`` chunk by chunk.
    ``options``: a method's resolved options (those outside CHUNK_OPTIONS are the fast path's no-ops: slack 0,
    rescale false, scope)."""
    options = {"election": "sum", "divide": "weight_sum", **{k: v for k, v in options.items() if k in CHUNK_OPTIONS}}
    _check_choice("election", options["election"], ELECTIONS)
    _check_choice("divide", options["divide"], DIVIDES)
    for f in finetuned:
        if f.shape != base.shape:
            raise ValueError(f"task_vector: shapes differ: finetuned {tuple(f.shape)} vs base {tuple(base.shape)}")
    b = base.float().reshape(-1)  # (numel,)
    fts = [f.float().reshape(-1) for f in finetuned]
    numel = b.numel()
    trims: list[Threshold | Tensor | None] = []
    for i, (f, density) in enumerate(zip(fts, densities)):
        if kept is not None:
            mask = kept[i].reshape(-1)
            trims.append(None if bool(mask.all()) else mask)
            continue
        k = kept_count(numel, density)
        trims.append(None if k >= numel else magnitude_threshold(lambda f=f: tau_chunks(f, b), k,
                                                                 *sample_positions(f, b), numel))
    w = torch.tensor(list(map(float, weights)), dtype=torch.float32, device=b.device)  # (n_models,)
    chunk = CPU_CHUNK if closed_form(weights, options["election"]) else max(CPU_CHUNK // len(fts), 1024)
    out = torch.empty_like(b)
    for a, e in chunk_ranges(b, chunk if b.device.type == "cpu" else None):
        ties_merge_chunk(b[a:e], [f[a:e] for f in fts], w, [t[a:e] if isinstance(t, Tensor) else t for t in trims],
                         a, out=out[a:e], **options)
    return out.reshape(base.shape)
