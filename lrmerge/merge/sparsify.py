"""Sparsification of one task vector: which entries survive, and how the survivors are rescaled (pure torch).

Every sparsifier returns a bool keep mask of the task vector's shape; ``sparsify`` applies it (and the optional
L1 rescale). Deterministic selections share one order: |tau| descending, ties by lowest flat index (the selection
routine of ``primitives.top_k_mask``), so "magnitude" keeps exactly k = max(1, int(density * numel)) entries and
"magnitude_outliers" (Model Breadcrumbs) drops the top ``gamma`` share and the bottom of that order.

Random selections (DARE, DELLA) draw from a CPU ``torch.Generator`` seeded by an integer (``seed``), so a seed gives
the same mask on every device and with any thread count; the mask moves to the task vector's device afterwards.
mergekit 0.1.5 draws from the global RNG (``torch.bernoulli``): same distribution, different draws.

Rescale (mergekit 0.1.5's ``rescale: true``, ``RescaleNorm.l1``): the kept entries are multiplied by
||tau||_1 / ||kept||_1 so the L1 mass of the task vector is preserved (skipped when either norm is below 1e-7);
the norms are summed in float64 so the factor is the same whatever the thread count or device.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lrmerge.merge.primitives import kept_count, magnitude_keys, top_k_mask, trim_mask

Sparsifier = Literal["magnitude", "random", "magnitude_outliers", "della_magprune"]
SPARSIFIERS = ("magnitude", "random", "magnitude_outliers", "della_magprune")
RESCALE_EPS = 1e-7  # mergekit's rescaled_masked_tensor eps


def uniform(shape: torch.Size | tuple[int, ...], seed: int) -> Tensor:
    """Uniform [0, 1) float32 draws of ``shape`` from a CPU generator seeded with ``seed`` (device-independent)."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.rand(tuple(shape), generator=generator, dtype=torch.float32)


def random_mask(tau: Tensor, density: float, seed: int) -> Tensor:
    """DARE (Yu et al. 2023): keep each entry independently with probability ``density``."""
    if density >= 1:
        return torch.ones_like(tau, dtype=torch.bool)
    return (uniform(tau.shape, seed) < density).to(tau.device)


def outlier_mask(tau: Tensor, density: float, gamma: float = 0.01) -> Tensor:
    """Model Breadcrumbs (Davari & Belilovsky 2023) as in mergekit 0.1.5: drop the n_top = int(gamma * numel)
    largest |tau|, keep the next target = int(density * numel), drop the rest; n_top shrinks when
    n_top + target > numel. Order: |tau| descending, ties by lowest flat index."""
    if density >= 1:
        return torch.ones_like(tau, dtype=torch.bool)
    numel = tau.numel()
    target = int(density * numel)
    n_top = min(int(gamma * numel), numel - target)
    keys = magnitude_keys(tau)
    keep = top_k_mask(keys, n_top + target)
    if n_top > 0:
        keep &= ~top_k_mask(keys, n_top)
    return keep.reshape(tau.shape)


def della_probabilities(tau: Tensor, density: float, epsilon: float = 0.15) -> Tensor:
    """DELLA's MagPrune keep probabilities (Deep et al. 2024; mergekit 0.1.5): per row (a 1-D tensor is one row),
    rank |tau| ascending (ties: lower flat index ranks lower), map ranks linearly onto
    [density - epsilon, density + epsilon]. A one-column row gets probability ``density``."""
    if not (0 < density - epsilon and density + epsilon < 1):
        raise ValueError(f"epsilon={epsilon} must keep density +/- epsilon inside (0, 1) (density={density})")
    rows = tau.float().reshape(1, -1) if tau.dim() < 2 else tau.float().reshape(tau.shape[0], -1)
    order = torch.sort(rows.abs(), dim=1, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(rows.shape[1], device=rows.device).expand_as(order))
    span = rows.shape[1] - 1
    rank_norm = ranks.float() / span if span > 0 else torch.full_like(rows, 0.5)
    return ((density - epsilon) + rank_norm * (2 * epsilon)).reshape(tau.shape)


def della_mask(tau: Tensor, density: float, seed: int, epsilon: float = 0.15) -> Tensor:
    """DELLA: keep each entry with its ``della_probabilities`` probability (seeded as ``random_mask``)."""
    if density >= 1:
        return torch.ones_like(tau, dtype=torch.bool)
    probs = della_probabilities(tau, density, epsilon)
    return uniform(tau.shape, seed).to(tau.device) < probs


def keep_mask(tau: Tensor, density: float, method: Sparsifier, *, seed: int | None = None, gamma: float = 0.01,
              epsilon: float = 0.15) -> Tensor:
    """The keep mask (tau's shape, bool) of one sparsifier."""
    if method not in SPARSIFIERS:
        raise ValueError(f"sparsification method {method!r} is not one of {list(SPARSIFIERS)}")
    if not 0.0 < float(density) <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if method == "magnitude":
        return trim_mask(tau, density)
    if method == "magnitude_outliers":
        return outlier_mask(tau, density, gamma)
    if seed is None:
        raise ValueError(f"sparsification {method!r} is random and needs a seed")
    if method == "random":
        return random_mask(tau, density, seed)
    return della_mask(tau, density, seed, epsilon)


def apply_mask(tau: Tensor, keep: Tensor, rescale: bool = False) -> Tensor:
    """tau with the entries outside ``keep`` zeroed; with ``rescale`` the kept ones scaled to tau's L1 mass."""
    masked = torch.where(keep, tau, torch.zeros((), dtype=tau.dtype, device=tau.device))
    if not rescale:
        return masked
    # L1 norms accumulated in float64: the ratio (rounded to float32) then does not depend on the summation order
    # (thread count, device); mergekit sums in float32 (a difference of about 1e-7 relative)
    before, after = tau.abs().sum(dtype=torch.float64), masked.abs().sum(dtype=torch.float64)
    if before < RESCALE_EPS or after < RESCALE_EPS:
        return masked
    return masked * (before / after).to(torch.float32)


def expected_kept(numel: int, density: float, method: Sparsifier, gamma: float = 0.01) -> float:
    """How many entries a sparsifier keeps (exact for the deterministic ones, the mean for the random ones)."""
    if density >= 1:
        return float(numel)
    if method == "magnitude":
        return float(kept_count(numel, density))
    if method == "magnitude_outliers":
        return float(int(density * numel))
    return density * numel  # random: Bernoulli(density); della: probabilities average to density
