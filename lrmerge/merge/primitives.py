"""TIES primitives written once: task vector, trim, sign election, disjoint merge, TIES-SV slack restore.

Pure torch: no file I/O, no model objects, no globals; every function runs on whatever device its inputs are on.
Paper (section 3.1, 6.2): tau_i = theta_i - theta_base; trim keeps the top-k |tau_i|; a sign is elected per
parameter; the disjoint mean averages the kept entries that agree with it. TIES-SV restores a small slack of the
priority (SFT) model's entries that lost the election.

Selection is exact and deterministic on every device: the k-th largest magnitude is found by a radix
(histogram) select on the float32 bit patterns viewed as integers (no argsort), and entries tied at the threshold
are kept in order of lowest flat index. The same histogram helpers give a global (whole-model) threshold from
streamed tensors (``global_threshold``), so a model never has to be held in memory.

Speed (plain TIES without masks, ``ties_merge_tensor`` and the engine): ``magnitude_threshold`` streams flat
chunks (one histogram pass when a random sample predicts the threshold's bins, else two), then
``ties_merge_chunk`` merges chunk by chunk. On CPU chunks are CPU_CHUNK entries, so every op runs in cache on one
thread; the paper's case (two unit-weight models) takes a closed form built from min/max and sign-bit selects,
since torch.where and comparisons cost ten times more per element on CPU. With ``keep_masks`` or a TIES-SV slack
the full-tensor path below runs (same arithmetic; the tests compare the two bit for bit). Where numba is installed,
the histograms and the engine's two-model merge run as compiled one-pass loops (``lrmerge.merge.kernels``) with
exactly the same results.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import torch
from torch import Tensor

Election = Literal["sum", "count"]
Divide = Literal["weight_sum", "count", "none"]
SlackOf = Literal["kept", "discarded"]

ELECTIONS = ("sum", "count")
DIVIDES = ("weight_sum", "count", "none")
SLACK_OF = ("kept", "discarded")

_BINS = 1 << 16  # radix select: 16 high bits, then 16 low bits of a 32-bit key
# CPU work is cut into chunks below torch's intra-op grain size (32768): each op then runs on one thread with the
# chunk in cache, and no op waits at an OpenMP barrier (which costs milliseconds per op on a loaded machine).
CPU_CHUNK = 1 << 15
_GROUP = 64  # chunks of bin indices gathered per bincount call
_WINDOW = 8  # most 16-bit bins a sampled guess may span (one histogram of _WINDOW * 65536 counters)
ALL_TIES = 1 << 62  # Threshold.last_tie when every key equal to the threshold is kept


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
    last_tie: int = ALL_TIES  # flat index of the last key == ``key`` kept (``magnitude_threshold`` fills it)

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


# ---------------------------------------------------------------- streamed magnitude selection (chunk by chunk)


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


def chunk_ranges(flat: Tensor, chunk: int | None = None) -> list[tuple[int, int]]:
    """[start, stop) ranges covering a flat tensor: CPU_CHUNK on CPU (or ``chunk``), one range on other devices."""
    n = flat.numel()
    size = chunk or (CPU_CHUNK if flat.device.type == "cpu" else max(n, 1))
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def tau_chunks(finetuned: Tensor, base: Tensor | None = None, piece: int = 1 << 20) -> Iterator[Tensor]:
    """Flat float32 pieces of finetuned - base (or of finetuned) of ``piece`` entries (one piece off the CPU),
    written into one reused scratch buffer: each is valid until the next one is produced."""
    f, b = finetuned.reshape(-1), (base.reshape(-1) if base is not None else None)
    ranges = chunk_ranges(f, piece if f.device.type == "cpu" else None)
    scratch = torch.empty(max((e - a for a, e in ranges), default=0), dtype=torch.float32, device=f.device)
    for a, e in ranges:
        out = scratch[:e - a]
        if b is None:
            yield out.copy_(f[a:e])
        else:
            yield torch.sub(f[a:e], b[a:e], out=out) if f.dtype == b.dtype == torch.float32 else \
                out.copy_(f[a:e].float() - b[a:e].float())


def sample_positions(finetuned: Tensor, base: Tensor | None = None, size: int = 1 << 17) -> tuple[Tensor | None]:
    """(finetuned - base) at ``size`` random flat positions (a fixed seed: only speed depends on it), or (None,)
    for small tensors; for ``magnitude_threshold``'s guess."""
    f = finetuned.reshape(-1)
    if f.numel() < 4 * size:
        return (None,)
    index = torch.randint(f.numel(), (size,), generator=torch.Generator().manual_seed(0)).to(f.device)
    return (f[index].float() - base.reshape(-1)[index].float() if base is not None else f[index].float(),)


def _abs_keys(tau: Tensor) -> Tensor:
    """int32 magnitude keys of a flat chunk (a new tensor; the chunk is left as it is)."""
    return magnitude_keys(tau)


def magnitude_threshold(taus: Callable[[], Iterable[Tensor]], k: int, sample: Tensor | None = None,
                        numel: int | None = None) -> Threshold:
    """Exact threshold of the k largest |tau| over a stream of flat float32 pieces, ties by lowest flat index.

    ``taus()`` must yield the same pieces (flat, in flat order, any size) on each call; they are only read, each
    before the next is asked for. On CPU each piece is cut into CPU_CHUNK chunks.
    Pass 1: histogram of the 16 high bits of the magnitude keys; pass 2: histogram of the keys inside the
    threshold's bin; pass 3 (only when ties straddle the threshold): the flat index of the last tie kept.
    With ``sample`` (some entries of tau drawn at random) and ``numel`` (the stream's length), pass 1 is skipped
    when the sample's quantile predicts a window of at most _WINDOW bins that the counts then confirm.
    """
    found = _window_select(taus, k, sample, numel) if sample is not None and numel else None
    if found is None:
        hist = _key_histogram(taus, 16, 1, _BINS)  # pass 1: bins of the 16 high bits
        b, above_high = select_bin(hist, k)
        found = _window_select(taus, k, None, None, first_bin=b, n_bins=1)
        assert found is not None, "the stream must yield the same chunks on each call"
    key, above, n_equal = found
    budget = k - above
    if n_equal == budget:
        return Threshold(key, above, k, ALL_TIES)
    seen, offset = 0, 0
    for piece in taus():  # pass 3: find the budget-th key equal to the threshold
        for a, b in chunk_ranges(piece):
            equal = _abs_keys(piece[a:b]) == key
            count = int(equal.sum())
            if seen + count >= budget:
                return Threshold(key, above, k, offset + a + int(equal.nonzero()[budget - seen - 1]))
            seen += count
        offset += piece.numel()
    raise AssertionError("tie count changed between passes: the stream must yield the same chunks each call")


def _window_select(taus: Callable[[], Iterable[Tensor]], k: int, sample: Tensor | None, numel: int | None,
                   first_bin: int = 0, n_bins: int = 0) -> tuple[int, int, int] | None:
    """One pass over the keys of the 16-bit bins [first_bin, first_bin + n_bins) (from the sample's quantile when
    ``sample`` is given): (threshold key, keys above it, keys equal to it), or None if the k-th is outside."""
    if sample is not None:
        keys = magnitude_keys(sample)
        m = keys.numel()
        rank = k * m / numel
        margin = 4.0 * math.sqrt(m * (k / numel) * (1 - k / numel)) + 16

        def largest(i: int) -> int:  # the i-th largest sampled key (0-based), without sorting the sample
            return int(torch.kthvalue(keys.cpu(), m - i).values)

        high, low = largest(max(int(rank - margin), 0)), largest(min(int(rank + margin), m - 1))
        first_bin, n_bins = low >> 16, (high >> 16) - (low >> 16) + 1
        if n_bins > _WINDOW:
            return None
    span = n_bins * _BINS
    # keys - (first_bin << 16) + 1 clamped to [0, span + 1]: 0 below the window, span + 1 above it
    hist = _key_histogram(taus, 0, first_bin << 16, span + 2)
    above, inside = int(hist[span + 1]), hist[1:span + 1]
    if not above < k <= above + int(inside.sum()):
        return None
    c, above_inside = select_bin(inside, k - above)
    return (first_bin << 16) + c, above + above_inside, int(inside[c])


def _key_histogram(taus: Callable[[], Iterable[Tensor]], shift: int, low: int, n_bins: int) -> Tensor:
    """Histogram (n_bins,) int64 over the stream of bins clamp((key >> shift) - low + 1, 0, n_bins - 1) of the
    magnitude keys: the compiled kernel (``kernels``) on CPU float32 pieces when available, else bincount."""
    from lrmerge.merge import kernels

    def to_bins(tau: Tensor) -> Tensor:
        return torch.sub(_abs_keys(tau) >> shift, low - 1).clamp_(0, n_bins - 1)

    use_kernel = kernels.available()
    hist = torch.zeros(n_bins, dtype=torch.int64)
    for piece in taus():
        if use_kernel and piece.device.type == "cpu" and piece.dtype == torch.float32:
            kernels.magnitude_histogram(piece, hist, shift, low)
        else:  # another device or dtype: bincount of the piece where it lives
            hist += _piece_histogram(piece, to_bins, n_bins)
    return hist


def _piece_histogram(piece: Tensor, to_bins: Callable[[Tensor], Tensor], n_bins: int) -> Tensor:
    """Histogram (n_bins,) int64 (on CPU) of to_bins(chunk) (int32 bin indices) over one piece, chunk by chunk.
    _GROUP chunks at a time are written into one buffer for one bincount call (which allocates n_bins counters)."""
    hist = torch.zeros(n_bins, dtype=torch.int64)
    ranges = chunk_ranges(piece)
    for i in range(0, len(ranges), _GROUP):
        group = ranges[i:i + _GROUP]
        start, stop = group[0][0], group[-1][1]
        if len(group) == 1:
            bins = to_bins(piece[start:stop])
        else:
            bins = torch.empty(stop - start, dtype=torch.int32, device=piece.device)
            for a, b in group:
                bins[a - start:b - start] = to_bins(piece[a:b])
        hist += torch.bincount(bins, minlength=n_bins).cpu()
    return hist


def _key_value(key: int) -> float:
    """The float32 whose bit pattern is ``key`` (a non-negative magnitude key), as a Python float (exact)."""
    return float(torch.tensor([key], dtype=torch.int32).view(torch.float32))


def kept_mask(tau: Tensor, threshold: Threshold, offset: int = 0) -> Tensor:
    """Bool mask of a flat chunk starting at flat index ``offset``: |tau| above the threshold, or equal to it
    at an index <= threshold.last_tie."""
    keys = magnitude_keys(tau)
    mask = keys > threshold.key
    last = threshold.last_tie - offset  # ties kept up to this chunk position
    if last >= 0:
        equal = keys == threshold.key
        if last < tau.numel() - 1:
            equal[last + 1:] = False
        mask |= equal
    return mask


def trim_chunk(tau: Tensor, threshold: Threshold | None, offset: int = 0) -> Tensor:
    """A flat float32 chunk (starting at flat index ``offset``) with the entries outside the threshold zeroed;
    ``None`` keeps everything. Same selection as ``kept_mask``, via one hardshrink in the common case."""
    if threshold is None:
        return tau
    last = threshold.last_tie - offset
    if last >= tau.numel() - 1:  # every tie in this chunk is kept: keep |tau| >= value(key)
        below = _key_value(threshold.key - 1) if threshold.key > 0 else -1.0
        return torch.nn.functional.hardshrink(tau, below)
    trimmed = torch.nn.functional.hardshrink(tau, _key_value(threshold.key))  # keep |tau| > value(key)
    if last >= 0:
        equal = magnitude_keys(tau) == threshold.key
        equal[last + 1:] = False
        trimmed = torch.where(equal, tau, trimmed)
    return trimmed


# ---------------------------------------------------------------- TIES on a flat chunk (the fast path's kernel)


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
    w = weights.tolist()
    if len(taus) == 2 and w == [1.0, 1.0] and election == "sum":
        delta = _two_model_delta(*taus, normalize)
    else:
        trimmed = torch.stack(taus)  # (n_models, L)
        sign = elect_sign(trimmed, weights, election, weighted_election)  # (L,)
        delta = disjoint_merge(trimmed, weights, agreement_mask(trimmed, sign), divide if normalize else "none")
    if lambda_ != 1:
        delta = delta.mul_(lambda_)
    return torch.add(base, delta, out=out)


# ---------------------------------------------------------------- trim, elect, disjoint merge


def trim_mask(tau: Tensor, density: float) -> Tensor:
    """Bool mask (same shape) of EXACTLY k = kept_count(numel, density) entries of largest |tau|;
    ties at the threshold keep the lowest flat indices (identical on CPU and GPU)."""
    k = kept_count(tau.numel(), density)
    if k >= tau.numel():
        return torch.ones_like(tau, dtype=torch.bool)
    flat = tau.float().reshape(-1)  # (numel,)
    mask = torch.empty(flat.shape, dtype=torch.bool, device=flat.device)
    with serial_cpu(flat.device):
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
    With slack == 0 (or priority None) this is exactly plain TIES.
    """
    n = len(finetuned)
    if not (len(weights) == len(densities) == n) or n == 0:
        raise ValueError(f"need one weight and one density per model: {n} models, {len(weights)} weights, {len(densities)} densities")
    _check_choice("slack_of", slack_of, SLACK_OF)
    if slack > 0 and priority is None:
        raise ValueError("slack > 0 needs a priority model")
    if not keep_masks and (slack == 0 or priority is None):
        with serial_cpu(base.device):
            merged = _ties_chunked(base, finetuned, weights, densities, kept, lambda_=lambda_,
                                   normalize=normalize, election=election, weighted_election=weighted_election,
                                   divide=divide)
        return merged, None
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


def closed_form(weights: Sequence[float], election: str) -> bool:
    """Whether ``ties_merge_chunk`` takes its two-model closed form (unit weights, sum election)."""
    return list(map(float, weights)) == [1.0, 1.0] and election == "sum"


def _ties_chunked(base: Tensor, finetuned: Sequence[Tensor], weights: Sequence[float], densities: Sequence[float],
                  kept: Sequence[Tensor] | None, **options: Any) -> Tensor:
    """Plain TIES through ``ties_merge_chunk``: per-model thresholds first, then the merge chunk by chunk."""
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
