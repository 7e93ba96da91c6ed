"""Exact, deterministic top-k selection on 32-bit keys: the one selection routine of lrmerge (pure torch).

k = max(1, int(density * numel)) entries are kept (mergekit's count); the k-th largest magnitude is found by a
radix (histogram) select on the float32 bit patterns viewed as integers (no argsort), and entries tied at the
threshold are kept in order of lowest flat index, on every device. One tensor (``top_k_mask``, ``trim_mask``), a
stream of flat chunks (``magnitude_threshold``) and a whole model (``global_threshold``) use the same histograms
and the same tie rule; a ``Threshold`` then decides chunk by chunk (``kept_mask``, ``trim_chunk``).

``magnitude_threshold`` streams flat chunks (one histogram pass when a random sample predicts the threshold's bins,
else two); on CPU chunks are CPU_CHUNK entries so every op runs in cache, and where numba is installed the
histograms run as compiled one-pass loops (``lrmerge.merge.kernels``) with exactly the same counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch import Tensor

_BINS = 1 << 16  # radix select: 16 high bits, then 16 low bits of a 32-bit key
# CPU work is cut into chunks below torch's intra-op grain size (32768): each op then runs on one thread with the
# chunk in cache, and no op waits at an OpenMP barrier (which costs milliseconds per op on a loaded machine).
CPU_CHUNK = 1 << 15
_GROUP = 64  # chunks of bin indices gathered per bincount call
_WINDOW = 8  # most 16-bit bins a sampled guess may span (one histogram of _WINDOW * 65536 counters)
ALL_TIES = 1 << 62  # Threshold.last_tie when every key equal to the threshold is kept

def kept_count(numel: int, density: float) -> int:
    """k = max(1, int(density * numel)) (mergekit's rule); 0 for an empty tensor. density must be in (0, 1]."""
    if not (0.0 < float(density) <= 1.0):
        raise ValueError(f"density must be in (0, 1], got {density}")
    if numel == 0:
        return 0
    return max(1, int(density * numel))



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
    only two (65536,) histograms are held. Ties are then resolved by ``threshold_mask`` in stream order. For float
    magnitudes streamed in chunks (trim, per tensor or over a whole model) ``magnitude_threshold`` does the same
    selection with a sampled first pass and compiled histograms, and records the last kept tie's flat index.
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
    """Flat bool mask of exactly k largest keys, ties at the threshold by lowest flat index: ``global_threshold``
    over a one-tensor stream, then ``threshold_mask``."""
    if k >= keys.numel():
        return torch.ones_like(keys, dtype=torch.bool)
    if k <= 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    threshold = global_threshold(lambda: iter([keys]), k)
    return threshold_mask(keys, threshold.key, threshold.tie_budget)[0]


# ---------------------------------------------------------------- streamed magnitude selection (chunk by chunk)


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

