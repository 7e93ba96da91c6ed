"""Exact per-tensor sign-conflict ledger of a TIES / TIES-SV merge (paper section 6.1, Figures 3 and 4).

Pure tensor code. The ledger is read off the very masks the merge used (``ties_merge_tensor(..., keep_masks=True)``
from ``lrmerge.merge.primitives``), so a statistic can never disagree with the merge it describes.
For plain TIES (unit weights, sum election, no slack) ``chunked.py`` streams the same counts chunk by chunk from
the same trim and election primitives, without masks; the tests check both give identical ledgers.

Terms (priority model p = SFT-flan, index 0; "CT" = every other model, CT-X in the paper):
  sft_kept        entries of the SFT task vector kept by trim (top k_sft)
  ct_kept         entries kept by trim in at least one CT task vector
  both_kept       kept in SFT and in at least one CT
  conflicts       both kept, and some kept CT entry has the opposite sign of SFT's (coloured area of Fig. 3)
  elect_sft       conflicts whose final elected sign is SFT's (cyan)
  elect_ct        conflicts whose final elected sign is CT's (yellow)
  sft_discarded   SFT kept, non-zero entries that are not in SFT's final agree mask (Fig. 4 numerator)
  slack_restored  entries whose sign TIES-SV's slack turned back to the priority model's
  sft_kept_l1 / sft_discarded_l1   L1 mass of the SFT task vector over kept / discarded entries

Identities (tested): conflicts == elect_sft + elect_ct; sft_discarded == elect_ct (an SFT entry leaves the agree
mask exactly when the elected sign differs from its own, which needs a kept CT entry of the other sign);
both_kept <= min(sft_kept, ct_kept).
"""

from __future__ import annotations

from typing import Sequence

import torch

from lrmerge.conflicts.columns import LEDGER_COUNTS, LEDGER_FIELDS, LEDGER_L1  # noqa: F401 (re-exported)
from lrmerge.merge.methods import MERGE_METHODS, TensorContext, get_method
from lrmerge.merge.primitives import TiesMasks, task_vector, ties_merge_tensor


def ledger_from_masks(
    task_vectors: Sequence[torch.Tensor], masks: TiesMasks, priority: int | None = None
) -> dict[str, int | float]:
    """Count the ledger of one tensor from its task vectors (one per model, or stacked ``(n_models, *shape)``)
    and the masks the merge returned.

    ``priority`` is the index of the SFT model (default: ``masks.priority``, else 0); all others count as "CT".
    """
    n = len(task_vectors)
    priority = (masks.priority if masks.priority is not None else 0) if priority is None else priority
    if n < 2:
        raise ValueError(f"the ledger compares SFT with at least one CT model; got {n} task vector(s)")
    if not 0 <= priority < n:
        raise ValueError(f"priority index {priority} out of range for {n} models")
    shape = tuple(task_vectors[0].shape)
    if tuple(masks.kept.shape) != (n, *shape):
        raise ValueError(f"masks.kept has shape {tuple(masks.kept.shape)}, expected {(n, *shape)} for the task vectors")
    # Everything SFT-specific lives on SFT's kept entries (a density-k_sft subset): gather them once, count there.
    sft_kept = masks.kept[priority].reshape(-1)  # (numel,) bool
    at = sft_kept.nonzero().squeeze(1)  # (n_sft_kept,) flat positions
    sft = task_vectors[priority].reshape(-1)[at]  # (n_sft_kept,)
    sft_sign = torch.sign(sft)
    ct_kept = torch.zeros_like(sft_kept)  # (numel,) kept by any CT model
    opposes = torch.zeros_like(at, dtype=torch.bool)  # (n_sft_kept,) a kept CT entry has the opposite sign
    for i in range(n):
        if i != priority:
            kept_i = masks.kept[i].reshape(-1)
            ct_kept |= kept_i
            opposes |= kept_i[at] & (torch.sign(task_vectors[i].reshape(-1)[at]) == -sft_sign)  # never if sft == 0
    live = sft != 0  # a kept exact zero has no sign and contributes nothing (it is not "discarded")
    conflicts = live & opposes
    elected_sft = masks.sign.reshape(-1)[at] == sft_sign  # final elected sign (after slack) is SFT's
    discarded = live & ~masks.agree[priority].reshape(-1)[at]
    abs_sft = sft.abs()
    return {
        "numel": sft_kept.numel(),
        "sft_kept": int(at.numel()),
        "ct_kept": int(ct_kept.sum()),
        "both_kept": int(ct_kept[at].sum()),
        "conflicts": int(conflicts.sum()),
        "elect_sft": int((conflicts & elected_sft).sum()),
        "elect_ct": int((conflicts & ~elected_sft).sum()),
        "sft_discarded": int(discarded.sum()),
        "slack_restored": int(masks.restored.sum()) if masks.restored is not None else 0,
        "sft_kept_l1": float(abs_sft.double().sum()),
        "sft_discarded_l1": float(abs_sft[discarded].double().sum()),
    }


def tensor_ledger(
    base: torch.Tensor,
    finetuned: Sequence[torch.Tensor],
    densities: Sequence[float],
    *,
    weights: Sequence[float] | None = None,
    slack: float = 0.0,
    priority: int = 0,
    kept: Sequence[torch.Tensor] | None = None,
    task_vectors: Sequence[torch.Tensor] | None = None,
    method: str = "ties",
    seeds: Sequence[int] | None = None,
    **merge_options,
) -> tuple[torch.Tensor, dict[str, int | float]]:
    """Merge one tensor with a registered method that elects signs and return ``(merged, ledger)``.

    ``method``: "ties" (TIES-SV when ``slack > 0``), or any registry row with a sign consensus (dare_ties,
    breadcrumbs_ties, della, ...; their registry defaults apply, ``seeds`` seed the random ones).
    ``finetuned[priority]`` is SFT (paper: densities (0.2, 1.0), weights 1, sum election). ``kept`` passes
    precomputed trim masks (the series reuses SFT's across checkpoints) and ``task_vectors`` the float32
    ``task_vector(finetuned[i], base)`` the caller already holds. Other keyword options (``lambda_``,
    ``election``, ``slack_of``, ...) go to the merge unchanged.
    """
    weights = [1.0] * len(finetuned) if weights is None else list(weights)
    spec = get_method(method)
    if not spec.uses_masks:
        raise ValueError(f"merge method {method!r} elects no signs: it has no sign-conflict ledger "
                         f"(methods that do: {sorted(n for n, s in MERGE_METHODS.items() if s.uses_masks)})")
    if method in ("ties", "ties_sv"):
        merged, masks = ties_merge_tensor(
            base, list(finetuned), weights, list(densities), slack=slack, priority=priority, keep_masks=True,
            kept=kept, **merge_options,
        )
    else:
        options = {**{k: v for k, v in spec.defaults().items() if k not in ("slack", "priority", "slack_of")},
                   **merge_options}
        if slack:
            options.update(slack=slack, priority=priority)
        context = TensorContext(seeds=tuple(seeds) if seeds is not None else None)
        merged, masks = spec(base, list(finetuned), weights, list(densities), keep_masks=True, context=context,
                             kept=kept, **options)
    taus = task_vectors if task_vectors is not None else [task_vector(f, base) for f in finetuned]  # as the merge
    return merged, ledger_from_masks(taus, masks, priority=priority)
