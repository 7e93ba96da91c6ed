"""The merge-method registry: plain data, one row per method, and the engine obeys it.

A row names the method, its reference, its parameters with mergekit's names and defaults (their types are the
defaults' types; ``choices`` lists the allowed strings), whether it needs a base model and what it supports. Every
task-vector method is a configuration of ``general.general_merge`` (sparsifier x consensus x rescale); ``linear``
and ``layer_swap`` have functions of their own. Adding a method is one row here (plus a function where the general
merge does not cover it) and its tests.

A method function takes (base, finetuned, weights, densities, keep_masks=False, *, context, **options) with
float32-able tensors and returns (merged float32 tensor, TiesMasks | None). ``options`` are the row's parameters
(``lambda`` passed as ``lambda_``; per-model ones other than weight/density as one value per model).
Whether a fast path may serve a configuration is decided in one place: ``fastpath.fast_path``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from lrmerge.merge.general import general_merge
from lrmerge.merge.primitives import DIVIDES, ELECTIONS, SLACK_OF, TiesMasks

SCOPES = ("per_tensor", "global")
CHOICES = {"election": ELECTIONS, "divide": DIVIDES, "slack_of": SLACK_OF, "scope": SCOPES}
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")


@dataclass(frozen=True)
class TensorContext:
    """What a method may know about the tensor beyond its values: its name, its layer (None outside the
    blocks), the number of blocks, and one random seed per model (``engine.tensor_seeds``)."""

    name: str = ""
    n_layers: int | None = None
    seeds: tuple[int, ...] | None = None

    @property
    def layer(self) -> int | None:
        return layer_of(self.name)


def tensor_seeds(random_seed: int, name: str, n_models: int) -> tuple[int, ...]:
    """One seed per model for a tensor's random masks, from the run's ``random_seed`` and the tensor's name: the
    same tensors for a seed whatever the device, thread count or tensor order."""
    return tuple(int.from_bytes(hashlib.sha256(f"{int(random_seed)}/{name}/{i}".encode()).digest()[:8], "little") >> 1
                 for i in range(n_models))


def layer_of(name: str) -> int | None:
    """Block index of a tensor name (``model.layers.7.mlp...`` -> 7), None for embeddings, final norm, head."""
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fn: Callable[..., tuple[Tensor, TiesMasks | None]]
    reference: str
    needs_base: bool
    params: dict[str, Any] = field(default_factory=dict)  # shared parameters and their defaults (mergekit's)
    model_params: dict[str, Any] = field(default_factory=dict)  # per-model parameters; None = required
    sparsify: str | None = None  # general merge: sparsifier (see sparsify.SPARSIFIERS)
    consensus: bool = False  # general merge: elects signs (the ``election`` parameter says how)
    random: bool = False  # draws random masks: needs a seed
    supports: frozenset[str] = frozenset()  # "negative_weights", "global_scope"
    pretty: str = ""

    def defaults(self) -> dict[str, Any]:
        """The shared parameters' defaults as method-function options (``lambda`` -> ``lambda_``, no scope)."""
        return {("lambda_" if k == "lambda" else k): v for k, v in self.params.items() if k != "scope"}

    @property
    def uses_masks(self) -> bool:
        """Elects signs: the conflict ledger applies (and weights must be >= 0)."""
        return self.consensus

    def __call__(self, base: Tensor | None, finetuned: Sequence[Tensor], weights: Sequence[float],
                 densities: Sequence[float], keep_masks: bool = False, *, context: TensorContext | None = None,
                 **options: Any) -> tuple[Tensor, TiesMasks | None]:
        return self.fn(base, finetuned, weights, densities, keep_masks, spec=self,
                       context=context or TensorContext(), **options)


# ---------------------------------------------------------------- method functions


def general_method(base: Tensor, finetuned: Sequence[Tensor], weights: Sequence[float], densities: Sequence[float],
                   keep_masks: bool = False, *, spec: MethodSpec, context: TensorContext, election: str = "sum",
                   scope: str = "per_tensor", **options: Any) -> tuple[Tensor, TiesMasks | None]:
    """A row of the task-vector family: ``general_merge`` with the row's sparsifier and consensus."""
    seeds = None
    if spec.random:
        if context.seeds is None:
            raise ValueError(f"{spec.name} draws random masks and needs seeds (TensorContext.seeds)")
        seeds = list(context.seeds)
    return general_merge(base, finetuned, weights, densities, sparsify=spec.sparsify,
                         consensus=election if spec.consensus else None, seeds=seeds, keep_masks=keep_masks,
                         **options)


def linear(base: Tensor | None, finetuned: Sequence[Tensor], weights: Sequence[float], densities: Sequence[float],
           keep_masks: bool = False, *, spec: MethodSpec | None = None, context: TensorContext | None = None,
           normalize: bool = True) -> tuple[Tensor, None]:
    """WAVG: sum_i w_i theta_i / sum_i w_i in float32 (base ignored; mergekit's linear up to rounding order).

    Summed model by model in float32 (((w_0 theta_0 + w_1 theta_1) + ...) / sum_i w_i): elementwise, so the engine's
    streamed blocks give the same bits, and without a stacked copy of the inputs."""
    w = torch.tensor([float(x) for x in weights], dtype=torch.float32)  # (n_models,) on CPU: exact Python scalars
    total = torch.mul(finetuned[0].float(), float(w[0]))
    scratch = torch.empty_like(total) if len(finetuned) > 1 else None
    for t, wi in zip(finetuned[1:], w[1:].tolist()):
        total.add_(torch.mul(t.float(), wi, out=scratch))
    return (total.div_(float(w.sum())) if normalize else total), None


def layer_swap(base: Tensor | None, finetuned: Sequence[Tensor], weights: Sequence[float], densities: Sequence[float],
               keep_masks: bool = False, *, spec: MethodSpec | None = None, context: TensorContext,
               bottom: int = 1, top: int = 1, outer: int = 1) -> tuple[Tensor, None]:
    """Layer swapping (Bandarkar et al. 2024): blocks 0..bottom-1 and the last ``top`` blocks come from
    ``finetuned[outer]`` (the language expert, CT-X), the middle blocks from the other model (the task expert,
    SFT-flan). Outside the blocks: the input embeddings go with the bottom blocks and the final norm and LM head
    with the top blocks, i.e. all from the language expert (its vocabulary and output space); per-block norms go
    with their block. ``bottom=top=0`` returns the task expert unchanged."""
    if len(finetuned) != 2:
        raise ValueError(f"layer_swap merges exactly two models (task expert, language expert); got {len(finetuned)}")
    if not 0 <= outer < 2:
        raise ValueError(f"layer_swap: outer={outer} must be 0 or 1 (an index into models)")
    if bottom < 0 or top < 0:
        raise ValueError(f"layer_swap: bottom={bottom} and top={top} must be >= 0")
    layer = context.layer
    if layer is None:
        from_outer = bottom > 0 if _is_input_side(context.name) else top > 0
    else:
        n = context.n_layers
        if n is None:
            raise ValueError(f"layer_swap: the number of layers is unknown for tensor {context.name!r}")
        from_outer = layer < bottom or layer >= n - top
    return finetuned[outer if from_outer else 1 - outer].float(), None


def _is_input_side(name: str) -> bool:
    return any(part in name for part in ("embed_tokens", "wte", "wpe", "embed_in", "word_embeddings"))


# ---------------------------------------------------------------- the registry

_GTA = {"normalize": False, "lambda": 1.0, "rescale": False}  # mergekit's GeneralizedTaskArithmeticMerge shared
_ELECT = {"election": "sum", "weighted_election": True, "divide": "weight_sum"}
_DENSITY = {"weight": None, "density": 1.0}
_ANY_SIGN = frozenset({"negative_weights"})


def _row(name: str, reference: str, pretty: str, *, sparsify: str | None, consensus: bool, normalize: bool,
         rescale: bool = False, extra: dict | None = None, model_extra: dict | None = None,
         supports: frozenset[str] = frozenset()) -> MethodSpec:
    params = {**_GTA, "normalize": normalize, **(_ELECT if consensus else {}), **(extra or {})}
    if sparsify is not None:
        params["rescale"] = rescale
    else:
        params.pop("rescale")
    model = {"weight": None, **({"density": 1.0} if sparsify else {}), **(model_extra or {})}
    return MethodSpec(name, general_method, reference, needs_base=True, params=params, model_params=model,
                      sparsify=sparsify, consensus=consensus, random=sparsify in ("random", "della_magprune"),
                      supports=supports if consensus else supports | _ANY_SIGN, pretty=pretty)


_TIES_URL = "https://arxiv.org/abs/2306.01708 (Yadav et al. 2023); paper section 3.1"
_DARE_URL = "https://arxiv.org/abs/2311.03099 (Yu et al. 2023, DARE)"
_CRUMBS_URL = "https://arxiv.org/abs/2312.06795 (Davari & Belilovsky 2023, Model Breadcrumbs)"
_DELLA_URL = "https://arxiv.org/abs/2406.11617 (Deep et al. 2024, DELLA-Merging)"
_GLOBAL = frozenset({"global_scope"})

MERGE_METHODS: dict[str, MethodSpec] = {spec.name: spec for spec in [
    MethodSpec("linear", linear, "https://arxiv.org/abs/2203.05482 (Wortsman et al. 2022, model soups); paper's WAVG",
               needs_base=False, params={"normalize": True}, model_params={"weight": None}, supports=_ANY_SIGN,
               pretty="WAVG"),
    _row("task_arithmetic", "https://arxiv.org/abs/2212.04089 (Ilharco et al. 2023)", "TA",
         sparsify=None, consensus=False, normalize=False),
    _row("ties", _TIES_URL, "TIES", sparsify="magnitude", consensus=True, normalize=True,
         extra={"scope": "per_tensor"}, supports=_GLOBAL),
    _row("ties_sv", "paper section 6.2 (TIES with slack variables; priority = the SFT model)", "TIES-SV",
         sparsify="magnitude", consensus=True, normalize=True,
         extra={"scope": "per_tensor", "slack": 0.04, "priority": 0, "slack_of": "kept"}, supports=_GLOBAL),
    _row("dare_ties", _DARE_URL, "DARE-TIES", sparsify="random", consensus=True, normalize=False, rescale=True),
    _row("dare_linear", _DARE_URL, "DARE", sparsify="random", consensus=False, normalize=False, rescale=True),
    _row("breadcrumbs", _CRUMBS_URL, "Breadcrumbs", sparsify="magnitude_outliers", consensus=False,
         normalize=False, model_extra={"gamma": 0.01}),
    _row("breadcrumbs_ties", _CRUMBS_URL, "Breadcrumbs-TIES", sparsify="magnitude_outliers", consensus=True,
         normalize=False, model_extra={"gamma": 0.01}),
    _row("della", _DELLA_URL, "DELLA", sparsify="della_magprune", consensus=True, normalize=True, rescale=True,
         model_extra={"epsilon": 0.15}),
    _row("della_linear", _DELLA_URL, "DELLA-linear", sparsify="della_magprune", consensus=False, normalize=False,
         rescale=True, model_extra={"epsilon": 0.15}),
    MethodSpec("layer_swap", layer_swap, "https://arxiv.org/abs/2410.01335 (Bandarkar et al. 2024, Layer Swapping)",
               needs_base=False, params={"bottom": 1, "top": 1, "outer": 1}, model_params={}, pretty="Layer swap"),
]}
PER_MODEL_OPTIONS = ("gamma", "epsilon")  # per-model parameters passed to the method function as lists


def get_method(name: str) -> MethodSpec:
    if name not in MERGE_METHODS:
        raise ValueError(f"unknown merge method {name!r}; allowed: {sorted(MERGE_METHODS)}")
    return MERGE_METHODS[name]
