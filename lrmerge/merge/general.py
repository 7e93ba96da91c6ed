"""The one general merge of task vectors of which every task-vector method is a configuration (pure torch).

    merged = base + lambda * combine_i( w_i * rescale(sparsify(tau_i)) over the entries agreeing with consensus )

Stages, each a named primitive (``primitives`` / ``sparsify``):
  sparsify   None | magnitude (TIES trim) | random (DARE) | magnitude_outliers (breadcrumbs) | della_magprune
  rescale    keep the task vector's L1 mass after the drop (mergekit's ``rescale``)
  consensus  None (every model counts) | sum | count (TIES sign election, ``elect_sign``)
  slack      TIES-SV: restore a share of the priority model's losing entries (``slack_restore_mask``, paper 6.2)
  combine    disjoint sum / divided by the agreeing weights ("weight_sum"), their count, or 1 ("none");
             ``normalize=False`` is "none". Without consensus the divisor is sum_i w_i (mergekit's).
  scale      lambda

This is the reference path: whole tensors, every decision materialised (``TiesMasks`` for the ledger). The fast
paths (``fastpath.py``) are tested against it bit for bit.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from lrmerge.merge.primitives import (DIVIDES, ELECTIONS, SLACK_OF, TiesMasks, _check_choice, agreement_mask,
                                      disjoint_merge, elect_sign, slack_restore_mask, task_vector)
from lrmerge.merge.sparsify import SPARSIFIERS, apply_mask, keep_mask

CONSENSUS = (None, "sum", "count")


def _per_model(values, n: int, name: str) -> list:
    values = list(values) if isinstance(values, (list, tuple)) else [values] * n
    if len(values) != n:
        raise ValueError(f"need one {name} per model: {n} models, {len(values)} values")
    return values


def general_merge(
    base: Tensor,
    finetuned: Sequence[Tensor],
    weights: Sequence[float],
    densities: Sequence[float],
    *,
    sparsify: str | None = "magnitude",
    consensus: str | None = "sum",
    rescale: bool = False,
    normalize: bool = True,
    lambda_: float = 1.0,
    weighted_election: bool = True,
    divide: str = "weight_sum",
    slack: float = 0.0,
    priority: int | None = None,
    slack_of: str = "kept",
    gamma: float | Sequence[float] = 0.01,
    epsilon: float | Sequence[float] = 0.15,
    seeds: Sequence[int] | None = None,
    kept: Sequence[Tensor] | None = None,
    keep_masks: bool = False,
) -> tuple[Tensor, TiesMasks | None]:
    """The reference merge of one tensor (float32 on the inputs' device); see the module doc for the stages.

    ``kept`` supplies precomputed keep masks (global trimming) instead of ``sparsify``; ``seeds`` one integer per
    model for the random sparsifiers; ``gamma`` / ``epsilon`` scalars or one per model. Returns (merged, masks):
    masks only with ``keep_masks`` and a consensus (methods that elect signs).
    """
    n = len(finetuned)
    if n == 0 or len(weights) != n or len(densities) != n:
        raise ValueError(f"need one weight and one density per model: {n} models, {len(weights)} weights, "
                         f"{len(densities)} densities")
    if sparsify is not None:
        _check_choice("sparsify", sparsify, SPARSIFIERS)
    _check_choice("consensus", consensus, CONSENSUS)
    _check_choice("divide", divide, DIVIDES)
    _check_choice("slack_of", slack_of, SLACK_OF)
    if consensus is not None:
        _check_choice("election", consensus, ELECTIONS)
    if slack > 0 and (priority is None or consensus is None):
        raise ValueError("slack > 0 needs a priority model and a sign consensus")
    gammas, epsilons = _per_model(gamma, n, "gamma"), _per_model(epsilon, n, "epsilon")
    seeds = _per_model(seeds, n, "seed") if seeds is not None else [None] * n
    base32 = base.float()
    taus = [task_vector(t, base32) for t in finetuned]
    if kept is not None:
        masks = [m.reshape(t.shape) for m, t in zip(kept, taus)]
    elif sparsify is None:
        masks = [torch.ones_like(t, dtype=torch.bool) for t in taus]
    else:
        masks = [keep_mask(t, d, sparsify, seed=s, gamma=g, epsilon=e)
                 for t, d, s, g, e in zip(taus, densities, seeds, gammas, epsilons)]
    trimmed = torch.stack([tau if bool(m.all()) and not rescale else apply_mask(tau, m, rescale)
                           for m, tau in zip(masks, taus)])  # (n_models, *shape)
    del taus
    w = torch.tensor([float(x) for x in weights], dtype=torch.float32, device=base32.device)  # (n_models,)
    masks_out = None
    if consensus is None:
        wb = w.reshape(-1, *([1] * (trimmed.dim() - 1)))
        delta = (trimmed * wb).sum(0)  # (*shape)
        if normalize and divide != "none":
            divisor = w.sum() if divide == "weight_sum" else torch.tensor(float(n), device=w.device)
            delta = delta / (divisor if divisor.abs() >= 1e-8 else torch.ones_like(divisor))
    else:
        sign = elect_sign(trimmed, w, consensus, weighted_election)  # (*shape)
        agree = agreement_mask(trimmed, sign)  # (n_models, *shape)
        restored = torch.zeros_like(sign, dtype=torch.bool)
        if slack > 0:
            restored = slack_restore_mask(trimmed, w, agree, sign, priority, slack, slack_of, weighted_election)
            sign = torch.where(restored, trimmed[priority].sign(), sign)
            agree = agreement_mask(trimmed, sign)
        delta = disjoint_merge(trimmed, w, agree, divide if normalize else "none")
        if keep_masks:
            masks_out = TiesMasks(torch.stack(masks), sign, agree, restored, priority)
    if lambda_ != 1:
        delta = delta * lambda_
    return base32 + delta, masks_out
