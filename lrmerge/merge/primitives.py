"""TIES primitives written once: task vector, trim, sign election, disjoint merge, TIES-SV slack restore.

Pure torch: no file I/O, no model objects, no globals; every function runs on whatever device its inputs are on.
Paper (section 3.1, 6.2): tau_i = theta_i - theta_base; trim keeps the top-k |tau_i|; a sign is elected per
parameter; the disjoint mean averages the kept entries that agree with it. TIES-SV restores a small slack of the
priority (SFT) model's entries that lost the election.

Selection is exact and deterministic on every device: the k-th largest magnitude is found by a two-pass radix
(histogram) select on the float32 bit patterns viewed as integers (no argsort), and entries tied at the threshold
are kept in order of lowest flat index. The same histogram helpers give a global (whole-model) threshold from
streamed tensors (``global_threshold``), so a model never has to be held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Sequence

import torch
from torch import Tensor

Election = Literal["sum", "count"]
Divide = Literal["weight_sum", "count", "none"]
SlackOf = Literal["kept", "discarded"]

ELECTIONS = ("sum", "count")
DIVIDES = ("weight_sum", "count", "none")
SLACK_OF = ("kept", "discarded")

_BINS = 1 << 16  # radix select: 16 high bits, then 16 low bits of a 32-bit key


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")


def kept_count(numel: int, density: float) -> int:
    """k = max(1, int(density * numel)) (mergekit's rule); 0 for an empty tensor. density must be in (0, 1]."""
    if not (0.0 < float(density) <= 1.0):
        raise ValueError(f"density must be in (0, 1], got {density}")
    if numel == 0:
        return 0
    return max(1, int(density * numel))


def task_vector(finetuned: Tensor, base: Tensor) -> Tensor:
    """tau = theta_finetuned - theta_base, in float32."""
    if finetuned.shape != base.shape:
        raise ValueError(f"task_vector: shapes differ: finetuned {tuple(finetuned.shape)} vs base {tuple(base.shape)}")
    return finetuned.float() - base.float()


# ---------------------------------------------------------------- exact k-th selection on 32-bit keys


def magnitude_keys(tau: Tensor) -> Tensor:
    """Integer keys ordered like |tau|: the float32 bit pattern of |tau| viewed as int32 (non-negative). Flat."""
    return tau.float().abs().reshape(-1).view(torch.int32)


def order_keys(values: Tensor, largest: bool = True) -> Tensor:
    """int64 keys in [0, 2**32) ordered like ``values`` (float32), or reversed when ``largest`` is False. Flat."""
    v = values.float().reshape(-1) + 0.0  # -0.0 -> +0.0 so equal values get equal keys
    bits = v.view(torch.int32).to(torch.int64)
    keys = torch.where(bits >= 0, bits + (1 << 31), (1 << 31) - 1 - (bits & 0x7FFFFFFF))
    return keys if largest else (1 << 32) - 1 - keys


def key_histogram(keys: Tensor, prefix: int | None = None) -> Tensor:
    """Histogram (65536,) int64 of the 16 high bits of ``keys``, or, given ``prefix`` (a high-bit bin), of the
    16 low bits of the keys in that bin."""
    if prefix is None:
        return torch.bincount(keys >> 16, minlength=_BINS)
    low = keys[(keys >> 16) == prefix] & 0xFFFF
    return torch.bincount(low, minlength=_BINS)


def select_bin(hist: Tensor, k: int) -> tuple[int, int]:
    """Bin holding the k-th largest key, and the number of keys in strictly higher bins."""
    total = int(hist.sum())
    if k <= 0 or k > total:
        raise ValueError(f"cannot select k={k} from {total} keys")
    below = hist.cumsum(0) - hist  # (65536,) keys in bins < b, non-decreasing
    b = int(torch.searchsorted(below, torch.tensor([total - k], dtype=below.dtype, device=below.device), right=True)) - 1
    return b, total - int(below[b]) - int(hist[b])


@dataclass(frozen=True)
class Threshold:
    """Exact selection of the k largest keys: keys > ``key`` are kept, plus the first ``tie_budget`` keys equal
    to ``key`` in flat order."""

    key: int
    above: int
    k: int

    @property
    def tie_budget(self) -> int:
        return self.k - self.above


def global_threshold(stream: Callable[[], Iterable[Tensor]], k: int) -> Threshold:
    """Exact threshold for the k largest keys over many tensors, from two streamed passes of histograms.

    ``stream()`` must yield the key tensors (``magnitude_keys`` / ``order_keys``) in the same order each call;
    only two (65536,) histograms are held. Ties are then resolved by ``threshold_mask`` in stream order.
    """
    high = sum((key_histogram(keys).cpu() for keys in stream()), torch.zeros(_BINS, dtype=torch.int64))
    b, above_high = select_bin(high, k)
    low = sum((key_histogram(keys, b).cpu() for keys in stream()), torch.zeros(_BINS, dtype=torch.int64))
    c, above_low = select_bin(low, k - above_high)
    return Threshold(key=(b << 16) | c, above=above_high + above_low, k=k)


def threshold_mask(keys: Tensor, key: int, tie_budget: int) -> tuple[Tensor, int]:
    """Keep keys > ``key`` and the first ``tie_budget`` keys == ``key`` (lowest flat index). Returns (mask, ties used)."""
    at_least = keys >= key
    equal = keys == key
    n_equal = int(equal.sum())
    if n_equal <= tie_budget:  # common case: no tie straddles the threshold
        return at_least, n_equal
    mask = at_least & ~equal
    if tie_budget > 0:
        mask[equal.nonzero().squeeze(1)[:tie_budget]] = True  # nonzero lists flat indices in increasing order
    return mask, max(tie_budget, 0)


def top_k_mask(keys: Tensor, k: int) -> Tensor:
    """Flat bool mask of exactly k largest keys, ties at the threshold by lowest flat index."""
    if k >= keys.numel():
        return torch.ones_like(keys, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    b, above_high = select_bin(key_histogram(keys), k)
    low = key_histogram(keys, b)
    c, above_low = select_bin(low, k - above_high)
    key, budget = (b << 16) | c, k - above_high - above_low
    if int(low[c]) == budget:  # every key equal to the threshold fits: no tie-break needed
        return keys >= key
    mask, _ = threshold_mask(keys, key, budget)
    return mask


# ---------------------------------------------------------------- trim, elect, disjoint merge


def trim_mask(tau: Tensor, density: float) -> Tensor:
    """Bool mask (same shape) of EXACTLY k = kept_count(numel, density) entries of largest |tau|;
    ties at the threshold keep the lowest flat indices (identical on CPU and GPU)."""
    k = kept_count(tau.numel(), density)
    if k >= tau.numel():
        return torch.ones_like(tau, dtype=torch.bool)
    return top_k_mask(magnitude_keys(tau), k).reshape(tau.shape)


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
    _check_choice("election", method, ELECTIONS)
    values = trimmed * _per_model(weights, trimmed) if weighted else trimmed  # (n_models, *shape)
    score = values.sum(0) if method == "sum" else values.sign().sum(0)  # (*shape)
    return torch.where(score >= 0, 1.0, -1.0).to(torch.float32)


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
    With slack == 0 (or priority None) this is exactly plain TIES.
    """
    n = len(finetuned)
    if not (len(weights) == len(densities) == n) or n == 0:
        raise ValueError(f"need one weight and one density per model: {n} models, {len(weights)} weights, {len(densities)} densities")
    _check_choice("slack_of", slack_of, SLACK_OF)
    if slack > 0 and priority is None:
        raise ValueError("slack > 0 needs a priority model")
    base32 = base.float()
    taus = [task_vector(t, base32) for t in finetuned]
    masks = list(kept) if kept is not None else [trim_mask(tau, d) for tau, d in zip(taus, densities)]
    zero = torch.zeros((), dtype=torch.float32, device=base32.device)
    trimmed = torch.stack([tau if bool(m.all()) else torch.where(m, tau, zero)
                           for m, tau in zip(masks, taus)])  # (n_models, *shape)
    del taus
    w = torch.tensor(list(weights), dtype=torch.float32, device=base32.device)  # (n_models,)
    sign = elect_sign(trimmed, w, election, weighted_election)  # (*shape)
    agree = agreement_mask(trimmed, sign)  # (n_models, *shape)
    restored = torch.zeros_like(sign, dtype=torch.bool)
    if slack > 0:
        restored = slack_restore_mask(trimmed, w, agree, sign, priority, slack, slack_of, weighted_election)
        sign = torch.where(restored, trimmed[priority].sign(), sign)
        agree = agreement_mask(trimmed, sign)
    delta = disjoint_merge(trimmed, w, agree, divide if normalize else "none")
    if lambda_ != 1:
        delta = delta * lambda_
    merged = base32 + delta
    masks_out = TiesMasks(torch.stack(masks), sign, agree, restored, priority) if keep_masks else None
    return merged, masks_out
