"""Study profiles: the parameters `lrmerge study` passes to each stage notebook.

quick  the smallest study that still runs every stage (tests, the notebooks' quick profile): minutes on a CPU
demo   the embedded demo study on a CPU (the README's study command)
paper  real runs (Llama-2-7B, hub data, GPUs): the stage notebooks read the language's config
Only the parameters a notebook declares in its `parameters` cell are passed to it.
"""

from __future__ import annotations

from typing import Any

COMMON: dict[str, dict[str, Any]] = {
    "quick": {"world_profile": "quick", "seed": 0, "device": "auto"},
    "demo": {"world_profile": "demo", "seed": 0, "device": "auto"},
    "paper": {"world_profile": "none", "seed": 0, "device": "cuda"},
}

STAGE_PARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "pretraining": {"ct_x_tokens": 20_000, "ct_checkpoints": 3, "ct_seq_len": 128, "ct_batch_size": 16},
        "sft": {"sft_epochs": 1.0, "figure2_points": 4},
        "merging": {"ties_densities": "0.2,1.0", "wavg_weights": "0.5"},
        "conflicts": {"interactive": False},
        "ties_sv": {"slacks": "0,0.04"},
        "paper": {"update_readme": False},
    },
    "demo": {
        # measured with experiments/demo_effects.py (issue #15): CT 12K..120K X tokens; two SFT passes (one pass left
        # every model at chance on the X tests), English + X replay 5% (footnote 1)
        "pretraining": {"ct_x_tokens": 120_000, "ct_checkpoints": 10, "ct_lr": 2e-3, "ct_embedding_lr_multiplier": 3.0,
                        "ct_seq_len": 256, "ct_batch_size": 4},
        "sft": {"sft_epochs": 2.0, "sft_lr": 2e-3, "sft_batch_size": 8, "sft_max_len": 320, "sft_replay_share": 0.05,
                "figure2_points": 4},
        "merging": {"ties_densities": "0.2,0.6,1.0", "wavg_weights": "0.3,0.5,0.7"},
        "conflicts": {"interactive": False},
        "ties_sv": {"slacks": "0,0.01,0.02,0.04,0.08"},
        "paper": {"update_readme": True},
    },
    "paper": {},
}

PROFILES = tuple(COMMON)


def profile_parameters(profile: str, stage: str) -> dict[str, Any]:
    """Parameters offered to ``stage`` under ``profile`` (common ones, then the stage's own)."""
    if profile not in COMMON:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    return {**COMMON[profile], **STAGE_PARAMETERS[profile].get(stage, {})}
