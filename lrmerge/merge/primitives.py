"""TIES primitives written once: task vector, trim, sign election, disjoint merge, TIES-SV slack restore.

Pure torch: no file I/O, no model objects, no globals, no thread settings; every function runs on whatever device
its inputs are on. Paper (section 3.1, 6.2): tau_i = theta_i - theta_base; trim keeps the top-k |tau_i|; a sign
is elected per parameter; the disjoint mean averages the kept entries that agree with it. TIES-SV restores a
small slack of the priority (SFT) model's entries that lost the election.

Selection (exact k, ties by lowest flat index) is ``select.py``; the general merge that every method configures is
``general.py``; the fast paths and the one function deciding when they serve are ``fastpath.py`` (names such as
``ties_merge_chunk`` and ``serial_cpu`` are still reachable here for older callers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from lrmerge.merge import select
from lrmerge.merge.select import (chunk_ranges, kept_count, kept_mask, magnitude_threshold, order_keys,
                                  sample_positions, top_k_mask)

Election = Literal["sum", "count"]
Divide = Literal["weight_sum", "count", "none"]
SlackOf = Literal["kept", "discarded"]

ELECTIONS = ("sum", "count")
DIVIDES = ("weight_sum", "count", "none")
SLACK_OF = ("kept", "discarded")
_FAST = ("ties_merge_chunk", "closed_form", "serial_cpu", "ties_chunked", "_two_model_delta")


def __getattr__(name: str):
    """Names that moved: the selection routine to select.py, the fast paths to fastpath.py (which imports this
    module, hence the lazy lookup)."""
    if name in _FAST:
        from lrmerge.merge import fastpath
        return getattr(fastpath, name)
    if hasattr(select, name):
        return getattr(select, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")



def task_vector(finetuned: Tensor, base: Tensor) -> Tensor:
    """tau = theta_finetuned - theta_base, in float32."""
    if finetuned.shape != base.shape:
        raise ValueError(f"task_vector: shapes differ: finetuned {tuple(finetuned.shape)} vs base {tuple(base.shape)}")
    return finetuned.float() - base.float()



# ---------------------------------------------------------------- trim, elect, disjoint merge


def trim_mask(tau: Tensor, density: float) -> Tensor:
    """Bool mask (same shape) of EXACTLY k = kept_count(numel, density) entries of largest |tau|;
    ties at the threshold keep the lowest flat indices (identical on CPU and GPU)."""
    k = kept_count(tau.numel(), density)
    if k >= tau.numel():
        return torch.ones_like(tau, dtype=torch.bool)
    flat = tau.float().reshape(-1)  # (numel,)
    mask = torch.empty(flat.shape, dtype=torch.bool, device=flat.device)
    threshold = magnitude_threshold(lambda: iter([flat]), k, *sample_positions(flat), flat.numel())
    for a, b in chunk_ranges(flat):
        mask[a:b] = kept_mask(flat[a:b], threshold, a)
    return mask.reshape(tau.shape)


def trim(tau: Tensor, density: float) -> Tensor:
    """tau with all but its top-k magnitudes set to zero (float32)."""
    tau = tau.float()
    return torch.where(trim_mask(tau, density), tau, torch.zeros((), dtype=tau.dtype, device=tau.device))


def _per_model(weights: Tensor, trimmed: Tensor) -> Tensor:
    """weights (n_models,) -> (n_models, 1, ..., 1) to broadcast against trimmed (n_models, *shape)."""
    w = torch.as_tensor(weights, dtype=torch.float32, device=trimmed.device)
    if w.shape != trimmed.shape[:1]:
        raise ValueError(f"weights has shape {tuple(w.shape)}, expected ({trimmed.shape[0]},) for {trimmed.shape[0]} models")
    return w.reshape(-1, *([1] * (trimmed.dim() - 1)))


def elect_sign(trimmed: Tensor, weights: Tensor, method: Election = "sum", weighted: bool = True) -> Tensor:
    """Elected sign (*shape) of +1./-1. from trimmed task vectors (n_models, *shape).

    "sum": sign of sum_i w_i t_i (of sum_i t_i if not ``weighted``), a zero sum elects +1 (mergekit).
    "count": majority of the nonzero signs of w_i t_i (of t_i if not ``weighted``), a tie elects +1.
    """
    score = election_score(trimmed, weights, method, weighted)  # (*shape)
    return torch.where(score >= 0, 1.0, -1.0).to(torch.float32)


def election_score(trimmed: Tensor | Sequence[Tensor], weights: Tensor | Sequence[float], method: Election = "sum",
                   weighted: bool = True) -> Tensor:
    """The score whose sign ``elect_sign`` elects (score >= 0 elects +1), (*shape), from trimmed task vectors
    (n_models, *shape) or a sequence of equally shaped chunks.

    Two unit-weight chunks with sum election give t0 + t1, the total of ``ties_merge_chunk``'s closed form (one
    rounding, so the same value as the stacked sum up to the sign of a zero, and the same elected sign). Streamed
    statistics (``lrmerge.conflicts.chunked``) read the election from here rather than recomputing it.
    """
    _check_choice("election", method, ELECTIONS)
    if not isinstance(trimmed, Tensor):
        chunks = list(trimmed)
        if len(chunks) == 2 and method == "sum" and list(map(float, weights)) == [1.0, 1.0]:
            return chunks[0] + chunks[1]
        trimmed = torch.stack(chunks)  # (n_models, L)
    values = trimmed * _per_model(weights, trimmed) if weighted else trimmed  # (n_models, *shape)
    return values.sum(0) if method == "sum" else values.sign().sum(0)  # (*shape)


def agreement_mask(trimmed: Tensor, sign: Tensor) -> Tensor:
    """(n_models, *shape) bool: entry kept (nonzero) and its sign equals the elected sign."""
    return trimmed * sign > 0  # sign is +1/-1: positive exactly when nonzero and of the elected sign


def disjoint_merge(trimmed: Tensor, weights: Tensor, agree: Tensor, divide: Divide = "weight_sum") -> Tensor:
    """Disjoint mean (*shape): sum_i w_i t_i [agree_i] divided by sum_i w_i [agree_i] ("weight_sum"), by the
    number agreeing ("count") or by 1 ("none", task-arithmetic style sum); 0 where nobody agrees."""
    _check_choice("divide", divide, DIVIDES)
    w = _per_model(weights, trimmed)  # (n_models, 1, ...)
    zero = torch.zeros((), dtype=torch.float32, device=trimmed.device)
    total = torch.where(agree, trimmed * w, zero).sum(0)  # (*shape)
    if divide == "none":
        return total
    divisor = torch.where(agree, w, zero).sum(0) if divide == "weight_sum" else agree.sum(0, dtype=torch.float32)
    divisor = torch.where(divisor == 0, 1.0, divisor)
    return total / divisor


# ---------------------------------------------------------------- TIES-SV slack restore


def slack_gap(trimmed: Tensor, weights: Tensor, sign: Tensor, weighted: bool = True) -> Tensor:
    """Election margin (*shape): mass of the elected side minus mass of the other side, mass = sum_i w_i |t_i|
    (sum_i |t_i| unweighted). For two unit-weight models where the priority model lost, |t_other| - |t_priority|."""
    values = (trimmed * _per_model(weights, trimmed) if weighted else trimmed).abs()  # (n_models, *shape)
    side = trimmed.sign() * sign  # +1 elected side, -1 other side, 0 not kept
    return (values * side).sum(0)


def slack_budget(n_priority_kept: int, n_losing: int, slack: float, slack_of: SlackOf = "kept") -> int:
    """Number restored: int(slack * kept) or int(slack * losing) (round down), capped by the number losing."""
    _check_choice("slack_of", slack_of, SLACK_OF)
    if not (0.0 <= slack <= 1.0):
        raise ValueError(f"slack must be in [0, 1], got {slack}")
    return min(int(slack * (n_priority_kept if slack_of == "kept" else n_losing)), n_losing)


def slack_restore_mask(
    trimmed: Tensor,
    weights: Tensor,
    agree: Tensor,
    sign: Tensor,
    priority: int,
    slack: float,
    slack_of: SlackOf = "kept",
    weighted: bool = True,
) -> Tensor:
    """TIES-SV (paper 6.2): (*shape) bool of the priority model's losing entries to restore.

    Losing = the priority model kept a nonzero entry whose sign lost the election. Of those, the ones with the
    smallest ``slack_gap`` (the election margin the priority model missed by; for two unit-weight models
    |tau_other| - |tau_priority|) are restored, ties by lowest flat index. How many: ``slack_budget``.
    """
    if not 0 <= priority < trimmed.shape[0]:
        raise ValueError(f"priority={priority} is not a model index in [0, {trimmed.shape[0]})")
    prio = trimmed[priority]
    losing = (prio != 0) & ~agree[priority]  # (*shape)
    n_losing = int(losing.sum())
    budget = slack_budget(int((prio != 0).sum()), n_losing, slack, slack_of)
    restored = torch.zeros_like(losing)
    if budget == 0:
        return restored
    index = losing.reshape(-1).nonzero().squeeze(1)  # flat positions, increasing
    gaps = slack_gap(trimmed, weights, sign, weighted).reshape(-1)[index]
    chosen = index[top_k_mask(order_keys(gaps, largest=False), budget)]
    restored.view(-1)[chosen] = True
    return restored


# ---------------------------------------------------------------- the whole TIES / TIES-SV step for one tensor


@dataclass
class TiesMasks:
    """What the merge decided for one tensor (reused by the conflict ledger, never recomputed)."""

    kept: Tensor  # (n_models, *shape) bool, trim masks
    sign: Tensor  # (*shape) final elected sign (after slack)
    agree: Tensor  # (n_models, *shape) bool, final agreement (after slack)
    restored: Tensor  # (*shape) bool, positions restored to the priority model's sign
    priority: int | None


def ties_merge_tensor(
    base: Tensor,
    finetuned: Sequence[Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    *,
    lambda_: float = 1.0,
    normalize: bool = True,
    election: Election = "sum",
    weighted_election: bool = True,
    divide: Divide = "weight_sum",
    slack: float = 0.0,
    priority: int | None = None,
    slack_of: SlackOf = "kept",
    keep_masks: bool = False,
    kept: Sequence[Tensor] | None = None,
) -> tuple[Tensor, TiesMasks | None]:
    """TIES (and TIES-SV when slack > 0) for one parameter, in float32 on the inputs' device.

    Returns (base + lambda_ * merged_delta, masks or None). ``normalize=False`` sums instead of dividing
    (mergekit's normalize). ``kept`` optionally supplies precomputed trim masks (global trimming).
    With slack == 0 (or priority None) this is exactly plain TIES. The reference is ``general.general_merge``
    (sparsify="magnitude", consensus=election); ``fastpath.fast_path`` decides whether the chunked path serves.
    """
    from lrmerge.merge.fastpath import fast_path, ties_chunked
    from lrmerge.merge.general import general_merge

    n = len(finetuned)
    if not (len(weights) == len(densities) == n) or n == 0:
        raise ValueError(f"need one weight and one density per model: {n} models, {len(weights)} weights, "
                         f"{len(densities)} densities")
    _check_choice("slack_of", slack_of, SLACK_OF)
    if slack > 0 and priority is None:
        raise ValueError("slack > 0 needs a priority model")
    options = dict(lambda_=lambda_, normalize=normalize, weighted_election=weighted_election, divide=divide)
    if fast_path("ties", {**options, "election": election, "slack": slack, "priority": priority}, weights,
                 keep_masks=keep_masks) == "ties":
        return ties_chunked(base, finetuned, weights, densities, kept, election=election, **options), None
    return general_merge(base, finetuned, weights, densities, sparsify="magnitude", consensus=election, slack=slack,
                         priority=priority, slack_of=slack_of, kept=kept, keep_masks=keep_masks, **options)


