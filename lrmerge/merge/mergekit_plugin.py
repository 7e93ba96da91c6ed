"""TIES-SV as a mergekit 0.1.5 merge method, computed by OUR primitives.

    python -m lrmerge.merge.mergekit_plugin CONFIG.yaml OUT_DIR [mergekit-yaml options, e.g. --no-copy-tokenizer]

``mergekit-yaml`` loads no plugins, so this entry point registers ``ties_sv`` and then runs mergekit's CLI.
In the mergekit YAML, lambda is spelled ``lambda_`` (mergekit forbids ``lambda`` as a parameter name of a decorated
method) and ``priority`` is an index into the non-base models (mergekit has no per-model path lookup here).
"""

from __future__ import annotations

import sys

import torch
from mergekit.merge_methods.base import BasePolicy, InputContract, PerNonBase, TensorGroup
from mergekit.merge_methods.easy_define import merge_method

from lrmerge.merge.primitives import ties_merge_tensor


@merge_method(
    name="ties_sv",
    pretty_name="TIES-SV (lrmerge)",
    reference_url="paper section 6.2: TIES with slack variables for the SFT model",
    contract=InputContract(base=BasePolicy.REQUIRED),
)
def ties_sv_merge(
    group: TensorGroup,
    weight: PerNonBase[float],
    density: PerNonBase[float] = 1.0,
    normalize: bool = True,
    lambda_: float = 1.0,
    slack: float = 0.04,
    priority: int = 0,
    slack_of: str = "kept",
    election: str = "sum",
    weighted_election: bool = True,
    divide: str = "weight_sum",
) -> torch.Tensor:
    base = group.base.tensor
    entries = group.non_base
    if not entries:
        return base
    merged, _ = ties_merge_tensor(
        base, [e.tensor for e in entries], weight.values_for(entries), density.values_for(entries) if hasattr(density, "values_for") else [density] * len(entries),
        lambda_=lambda_, normalize=normalize, election=election, weighted_election=weighted_election, divide=divide,
        slack=slack, priority=priority, slack_of=slack_of,
    )
    return merged.to(base.dtype)


def register() -> None:
    """Register ``ties_sv`` in mergekit's registry (idempotent)."""
    from mergekit.merge_methods import registry

    if "ties_sv" not in {m.spec.name for m in registry.registered_methods()}:
        registry.register(ties_sv_merge)


def main(argv: list[str] | None = None) -> int:
    register()
    from mergekit.scripts.run_yaml import main as mergekit_yaml

    return int(mergekit_yaml.main(args=list(sys.argv[1:] if argv is None else argv), standalone_mode=False) or 0)


if __name__ == "__main__":
    sys.exit(main())
