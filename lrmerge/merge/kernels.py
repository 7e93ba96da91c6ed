"""Compiled CPU kernels for the two hot loops of plain TIES (optional: used when numba is installed).

On CPU, eager torch runs one pass over memory per operation, and its histogram (bincount) costs about 6 ns per
element here; these loops do the same work in one pass each:

- ``magnitude_histogram``: the histogram of magnitude keys (``primitives.magnitude_keys``) that
  ``primitives.magnitude_threshold`` builds per pass (16 high bits, or a window of keys with below / above bins);
- ``ties_two_models``: the two-model closed form of ``primitives.ties_merge_chunk`` (unit weights, sum election)
  with both trims (a ``Threshold``'s key and last kept tie, or none) and the task vectors fused into one loop.

Both give exactly the results of the torch code (tests compare them bit for bit); every other case (masks,
other weights or elections, GPUs) takes the torch path. The kernels release the GIL, so the engine's worker
threads run them in parallel. ``LRMERGE_KERNELS=0`` turns them off; ``available()`` says whether they are on.
Compiled code is cached next to this file (numba ``cache=True``): only the first run on a machine compiles.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None


def available() -> bool:
    """Whether the compiled kernels are used (numba importable and LRMERGE_KERNELS is not 0)."""
    return numba is not None and os.environ.get("LRMERGE_KERNELS", "1") != "0"


if numba is not None:
    _jit = numba.njit(cache=True, nogil=True)

    @_jit
    def _histogram(bits, shift, low, n_bins, hist):  # pragma: no cover - compiled
        """hist[clamp(((bits & 0x7fffffff) >> shift) - low + 1, 0, n_bins - 1)] += 1 for every int32 in bits.
        The two end bins are counted first by a branch-free (vectorised) loop; a second loop adds the entries
        inside (few, when a window around the threshold is histogrammed)."""
        inner = n_bins - 2
        below = 0
        above = 0
        for i in range(bits.size):
            d = ((bits[i] & np.int32(0x7FFFFFFF)) >> shift) - low
            below -= d >> 63
            above -= (inner - 1 - d) >> 63
        for i in range(bits.size):
            d = ((bits[i] & np.int32(0x7FFFFFFF)) >> shift) - low
            if np.uint64(d) < np.uint64(inner):
                hist[d + 1] += 1
        hist[0] += below
        hist[n_bins - 1] += above

    @_jit
    def _ties_two(base, x0, x0_is_tau, value0, last0, x1, x1_is_tau, value1, last1, offset, normalize, scale,
                  rescale, out):  # pragma: no cover - compiled
        """out = base + disjoint mean of two trimmed unit-weight task vectors, sum election (see ties_two_models)."""
        for i in range(base.size):
            b = base[i]
            t0 = x0[i] if x0_is_tau else x0[i] - b
            t1 = x1[i] if x1_is_tau else x1[i] - b
            a0 = abs(t0)
            if a0 < value0 or (a0 == value0 and offset + i > last0):
                t0 = np.float32(0.0)
            a1 = abs(t1)
            if a1 < value1 or (a1 == value1 and offset + i > last1):
                t1 = np.float32(0.0)
            total = t0 + t1
            if (t0 > 0 and t1 > 0) or (t0 < 0 and t1 < 0):  # both agree with the elected sign
                delta = total * np.float32(0.5) if normalize else total
            elif total >= 0:  # one agrees: the larger |t| (the positive one on a tie)
                delta = t0 if t0 >= t1 else t1
            else:
                delta = t0 if t0 <= t1 else t1
            if rescale:
                delta = delta * scale
            out[i] = b + delta


def _int32(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().view(torch.int32).numpy()


def _f32(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


def magnitude_histogram(values: Tensor, hist: Tensor, shift: int = 0, low: int = 0) -> Tensor:
    """Add to ``hist`` (n_bins,) int64 the count of each bin clamp((key >> shift) - low + 1, 0, n_bins - 1) of the
    magnitude keys of flat float32 CPU ``values``; with shift 16, low 1 and 65536 bins that is the high-bits
    histogram. Returns hist."""
    if values.dtype != torch.float32 or values.device.type != "cpu" or hist.dtype != torch.int64:
        raise ValueError(f"magnitude_histogram needs float32 CPU values and an int64 histogram, got {values.dtype} "
                         f"on {values.device} and {hist.dtype}")
    _histogram(_int32(values.reshape(-1)), shift, low, hist.numel(), hist.numpy())
    return hist


def _trim_value(threshold) -> tuple[np.float32, int]:
    """(magnitude kept from, last tied flat index kept) of a Threshold, or keep-all for None."""
    if threshold is None:
        return np.float32(-1.0), 0
    value = np.array([threshold.key], dtype=np.int32).view(np.float32)[0]
    return value, int(threshold.last_tie)


def ties_two_models(base: Tensor, inputs: list[Tensor], is_task_vector: list[bool], trims: list, offset: int,
                    out: Tensor, normalize: bool = True, lambda_: float = 1.0) -> Tensor:
    """``primitives.ties_merge_chunk`` for two unit-weight models with sum election, in one pass.

    base, inputs[i], out: flat float32 CPU tensors of one length; inputs[i] is the task vector when
    is_task_vector[i], else the finetuned values; trims[i]: a ``Threshold`` (entries kept: |tau| above its key, or
    equal at flat index <= last_tie, with the chunk starting at flat index ``offset``) or None (keep all).
    """
    (v0, l0), (v1, l1) = (_trim_value(t) for t in trims)
    _ties_two(_f32(base), _f32(inputs[0]), bool(is_task_vector[0]), v0, l0, _f32(inputs[1]), bool(is_task_vector[1]),
              v1, l1, int(offset), bool(normalize), np.float32(lambda_), float(lambda_) != 1.0, out.numpy())
    return out
