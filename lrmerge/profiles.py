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
    "quick": {},
    "demo": {},
    "paper": {},
}

PROFILES = tuple(COMMON)


def profile_parameters(profile: str, stage: str) -> dict[str, Any]:
    """Parameters offered to ``stage`` under ``profile`` (common ones, then the stage's own)."""
    if profile not in COMMON:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    return {**COMMON[profile], **STAGE_PARAMETERS[profile].get(stage, {})}
