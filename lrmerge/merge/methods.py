"""Merge methods as plain data: each is a configuration of the primitives in ``primitives.py``.

A method function takes (base, finetuned, weights, densities, keep_masks, **options) with float32-able tensors
and returns (merged float32 tensor, TiesMasks | None). ``options`` are the method's shared parameters, named as in
``MethodSpec.params`` (``lambda`` is passed as ``lambda_``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from lrmerge.merge.primitives import TiesMasks, disjoint_merge, task_vector, ties_merge_tensor


def linear(base: Tensor | None, finetuned: Sequence[Tensor], weights: Sequence[float], densities: Sequence[float],
           keep_masks: bool = False, *, normalize: bool = True) -> tuple[Tensor, None]:
    """WAVG: sum_i w_i theta_i / sum_i w_i in float32 (base ignored; mergekit's linear)."""
    w = torch.tensor(list(weights), dtype=torch.float32, device=finetuned[0].device)
    stacked = torch.stack([t.float() for t in finetuned])  # (n_models, *shape)
    total = (stacked * w.reshape(-1, *([1] * (stacked.dim() - 1)))).sum(0)
    return (total / w.sum() if normalize else total), None


def task_arithmetic(base: Tensor, finetuned: Sequence[Tensor], weights: Sequence[float], densities: Sequence[float],
                    keep_masks: bool = False, *, lambda_: float = 1.0, normalize: bool = False) -> tuple[Tensor, None]:
    """base + lambda * sum_i w_i tau_i (divided by sum_i w_i when normalize; mergekit's default is no)."""
    taus = torch.stack([task_vector(t, base) for t in finetuned])  # (n_models, *shape)
    everyone = torch.ones_like(taus, dtype=torch.bool)
    w = torch.tensor(list(weights), dtype=torch.float32, device=taus.device)
    delta = disjoint_merge(taus, w, everyone, "weight_sum" if normalize else "none")
    if lambda_ != 1:
        delta = delta * lambda_
    return base.float() + delta, None


def ties(base: Tensor, finetuned: Sequence[Tensor], weights: Sequence[float], densities: Sequence[float],
         keep_masks: bool = False, **options: Any) -> tuple[Tensor, TiesMasks | None]:
    """TIES: trim, elect sign, disjoint merge (``ties_merge_tensor`` without slack)."""
    options = {key: value for key, value in options.items() if key not in ("slack", "priority", "slack_of")}
    return ties_merge_tensor(base, finetuned, weights, densities, keep_masks=keep_masks, **options)


def ties_sv(base: Tensor, finetuned: Sequence[Tensor], weights: Sequence[float], densities: Sequence[float],
            keep_masks: bool = False, **options: Any) -> tuple[Tensor, TiesMasks | None]:
    """TIES-SV: TIES plus a slack of the priority (SFT) model's losing entries restored (paper 6.2)."""
    return ties_merge_tensor(base, finetuned, weights, densities, keep_masks=keep_masks, **options)


_TIES_PARAMS = {"normalize": True, "lambda": 1.0, "election": "sum", "weighted_election": True,
                "divide": "weight_sum", "scope": "per_tensor"}


@dataclass(frozen=True)
class MethodSpec:
    fn: Callable[..., tuple[Tensor, TiesMasks | None]]
    reference: str
    needs_base: bool
    params: dict[str, Any] = field(default_factory=dict)  # shared parameters and their defaults (mergekit's)
    model_params: dict[str, Any] = field(default_factory=dict)  # per-model parameters; None = required
    uses_masks: bool = False


MERGE_METHODS: dict[str, MethodSpec] = {
    "linear": MethodSpec(linear, "https://arxiv.org/abs/2203.05482 (Wortsman et al. 2022, model soups); paper's WAVG",
                         needs_base=False, params={"normalize": True}, model_params={"weight": None}),
    "task_arithmetic": MethodSpec(task_arithmetic, "https://arxiv.org/abs/2212.04089 (Ilharco et al. 2023)",
                                  needs_base=True, params={"normalize": False, "lambda": 1.0},
                                  model_params={"weight": None}),
    "ties": MethodSpec(ties, "https://arxiv.org/abs/2306.01708 (Yadav et al. 2023); paper section 3.1",
                       needs_base=True, params=dict(_TIES_PARAMS), model_params={"weight": None, "density": 1.0},
                       uses_masks=True),
    "ties_sv": MethodSpec(ties_sv, "paper section 6.2 (TIES with slack variables; priority = the SFT model)",
                          needs_base=True,
                          params={**_TIES_PARAMS, "slack": 0.04, "priority": 0, "slack_of": "kept"},
                          model_params={"weight": None, "density": 1.0}, uses_masks=True),
}


def get_method(name: str) -> MethodSpec:
    if name not in MERGE_METHODS:
        raise ValueError(f"unknown merge method {name!r}; allowed: {sorted(MERGE_METHODS)}")
    return MERGE_METHODS[name]
