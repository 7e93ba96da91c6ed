"""Study profiles: which data source each language reads, and the parameters `lrmerge study` passes to each stage.

quick           the smallest demo study that still runs every stage (tests): minutes on a CPU
demo            the embedded demo study on a CPU (the README's study command)
real-cpu        one paper language end to end on a CPU with a real model (SmolLM2-135M) and the real data beside
                the project (`lrmerge.sources.providers.real_cpu_spec`)
real-cpu-quick  the same with a few training steps and a few dozen evaluation items (CI)
paper           the paper's setting (Llama-2-7B, hub data, appendix B hyper-parameters, the full density grid,
                CT/SFT under `accelerate launch` on several GPUs)
Only the parameters a notebook declares in its `parameters` cell are passed to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from lrmerge.languages import DEMO_LANGUAGES, PAPER_LANGUAGES


@dataclass(frozen=True)
class Profile:
    name: str
    provider: str  # lrmerge.sources.PROVIDERS key
    provider_options: dict[str, Any]
    languages: tuple[str, ...]  # the languages this profile serves ("--lang all": every one of them)
    common: dict[str, Any]  # offered to every stage
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    needs_gpu: bool = False  # real 7B training: refuse to start without CUDA and the hub

    def parameters(self, stage: str) -> dict[str, Any]:
        options = json.dumps(self.provider_options, sort_keys=True)
        return {**self.common, "source_provider": self.provider, "source_options": options,
                **self.stages.get(stage, {})}


PAPER_GRID = "0.01,0.2,0.4,0.6,0.8,1.0"  # appendix B, for each model
# batch_size: evaluation batch (merging, evaluation, TIES-SV, Table 5). Scoring a demo model on the four test sets
# alone (both protocols, one thread) took 3.4-5.1 s at 32 and 2.5-4.2 s at 64 (mnx; tbx 1.7-2.6 and 1.0-1.6 s) with
# the same scores; in the study, where both cores are busy, the stages gained less (mnx evaluation 193 -> 180 s).
# 128 was faster alone (2.1-3.5 s) but not in the study (183 s) and changed one generate-protocol answer.
_DEMO_COMMON = {"seed": 0, "seeds": "0", "device": "auto", "launcher": "inline", "num_processes": 1, "batch_size": 64}
_REAL_CPU_COMMON = {**_DEMO_COMMON, "math_max_new_tokens": 256, "batch_size": 8}

PROFILE_TABLE: dict[str, Profile] = {p.name: p for p in (
    Profile("quick", "demo", {"world_profile": "quick"}, DEMO_LANGUAGES, _DEMO_COMMON, {
        "pretraining": {"ct_x_tokens": 20_000, "ct_checkpoints": 3, "ct_seq_len": 128, "ct_batch_size": 16,
                        "ct_shuffle_documents": True},
        "sft": {"sft_epochs": 1.0, "figure2_points": 2},
        "merging": {"ties_densities": "0.2,1.0", "wavg_weights": "0.3,0.7",
                    "extra_methods": '{"dare_ties": {"density_sft": [0.5], "density_ct": [1.0]}}'},
        "conflicts": {"interactive": False},
        "ties_sv": {"slacks": "0,0.04"},
        "paper": {"update_readme": False},
    }),
    Profile("demo", "demo", {"world_profile": "demo"}, DEMO_LANGUAGES, {**_DEMO_COMMON, "seeds": "0,1,2"}, {
        # measured with experiments/demo_effects.py (issue #15; experiments/DESIGNS.md): CT 12K..120K X tokens (Figure 2
        # needs geometric checkpoint_tokens for a 10x range); SFT two passes at lr 1.5e-3 (one pass left every model
        # at chance on the X tests; three at 1e-3 cost 40% more SFT time for the same gates; two at 1e-3 or 1.25e-3
        # lost the mnx -mt finding and, at 1.25e-3, English math; 1.5e-3 keeps the -mt finding on one CPU, not on
        # another: experiments/DESIGNS.md, session 6; 2e-3 x 2 collapsed a third of the SFT runs onto one
        # letter); no replay during SFT
        # (world format 5, design 5c: the 5% English + X replay gave CT-then-SFT ~2.2K more X tokens, seen three
        # times: half the scarcest CT budget in token passes, and kept it from forgetting X, so merging trailed by
        # 11-28 points at every budget)
        # checkpoints at 12K, 26K, 56K and 120K X tokens (a 10x range; totals include the 1/4 replay)
        "pretraining": {"ct_x_tokens": 120_000, "ct_checkpoints": 4, "ct_checkpoint_tokens": "16000,34667,74667,160000",
                        "ct_lr": 2e-3, "ct_embedding_lr_multiplier": 3.0, "ct_seq_len": 256, "ct_batch_size": 4,
                        "ct_shuffle_documents": True},
        "sft": {"sft_epochs": 2.0, "sft_lr": 1.5e-3, "sft_batch_size": 8, "sft_max_len": 320, "sft_replay_share": 0.0,
                "sft_group_by_length": True, "figure2_points": 4,
                # Figure 2's earlier points for tbx only, as the paper draws it for two of its seven languages: in mnx
                # every model sits near chance at every budget (TIES - CTSFT between -3.8 and +1.4 points at the four,
                # session 9), and its 9 CTSFT runs and 27 curve scorings were about 15% of the study's work
                "figure2_languages": "tbx"},
        "merging": {"ties_densities": "0.2,0.6,1.0", "wavg_weights": "0.3,0.5,0.7"},
        # Figure 2's points before the last on 100 items per task (the last is Table 3's, on the whole test sets)
        "evaluation": {"curve_limit": 100},
        "conflicts": {"interactive": False},
        "ties_sv": {"slacks": "0,0.01,0.02,0.04,0.08"},
        "paper": {"update_readme": True},
    }),
    Profile("real-cpu", "real-cpu", {"sft_gsm8k": 40, "sft_topic": 60}, PAPER_LANGUAGES, _REAL_CPU_COMMON, {
        # SmolLM2-135M trains ~100 tokens/s and reads ~500 tokens/s on 2 quiet cores; Tamil is ~250 tokens a sentence
        "pretraining": {"ct_x_tokens": 16_000, "ct_checkpoints": 4, "ct_lr": 1e-4, "ct_embedding_lr_multiplier": 1.0,
                        "ct_seq_len": 256, "ct_batch_size": 4, "retrieval_probe": False, "perplexity_texts": 12},
        # length-grouped batches: GSM8K answers (~250 tokens) and topic prompts (~90) padded together wasted half
        "sft": {"sft_epochs": 1.0, "sft_lr": 2e-4, "sft_batch_size": 4, "sft_max_len": 384, "sft_replay_share": 0.05,
                "sft_group_by_length": True, "figure2_points": 2},
        "merging": {"ties_densities": "0.2,1.0", "wavg_weights": "0.3,0.7", "dev_limit": 40},
        "evaluation": {"curve_limit": 60},
        "conflicts": {"interactive": False},
        "ties_sv": {"slacks": "0,0.04", "dev_limit": 40},
        "multilingual": {"curve_limit": 0},
        "paper": {"update_readme": False},
    }),
    # evaluation is compute-bound (one 8-prompt Tamil prefill of SmolLM2 is 15 s here): the study of the test took
    # 405 s with 8 items per split, 307 s with 4; one TIES-SV slack and 4 topic SFT items take off the rest; 2 items
    # (AMD EPYC / AVX2, 2 cores, quiet): 381 -> 352 s, the rest being model loads and whole-batch prefills
    Profile("real-cpu-quick", "real-cpu", {"sft_gsm8k": 2, "sft_topic": 4, "eval_limit": 2}, PAPER_LANGUAGES,
            _REAL_CPU_COMMON, {
        "pretraining": {"ct_x_tokens": 750, "ct_checkpoints": 2, "ct_lr": 1e-4, "ct_embedding_lr_multiplier": 1.0,
                        "ct_seq_len": 128, "ct_batch_size": 4, "retrieval_probe": False, "perplexity_texts": 4},
        "sft": {"sft_epochs": 1.0, "sft_lr": 2e-4, "sft_batch_size": 4, "sft_max_len": 256, "sft_replay_share": 0.0,
                "figure2_points": 2},
        "merging": {"ties_densities": "1.0", "wavg_weights": "0.5"},
        "evaluation": {"curve_limit": 4},
        "conflicts": {"interactive": False},
        "ties_sv": {"slacks": "0.04"},  # the paper's slack only (slack 0 is TIES itself)
        "paper": {"update_readme": False},
    }),
    Profile("paper", "paper", {}, PAPER_LANGUAGES,
            {"seed": 0, "seeds": "0", "device": "cuda", "launcher": "accelerate", "num_processes": 8,
             "accelerate_config": "configs/accelerate/fsdp_7b.yaml", "precision": "bf16", "math_max_new_tokens": 256,
             "batch_size": 16}, {
        # appendix B: AdamW (0.9, 0.95), peak LR 2e-5, 1M-token batches (4096 x 4 x 8 accumulation x 8 GPUs), bf16
        "pretraining": {"ct_x_tokens": 0, "ct_checkpoints": 8, "ct_lr": 2e-5, "ct_embedding_lr_multiplier": 1.0,
                        "ct_seq_len": 4096, "ct_batch_size": 4, "ct_grad_accum": 8, "retrieval_probe": False},
        "sft": {"sft_epochs": 3.0, "sft_lr": 2e-5, "sft_batch_size": 4, "sft_grad_accum": 4, "sft_max_len": 2048,
                "sft_replay_share": 0.1, "figure2_points": 4},
        "merging": {"ties_densities": PAPER_GRID, "wavg_weights": "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"},
        "conflicts": {"interactive": False},
        "ties_sv": {"slacks": "0,0.01,0.02,0.04,0.08"},
        "paper": {"update_readme": False},
    }, needs_gpu=True),
)}

PROFILES = tuple(PROFILE_TABLE)


def get_profile(name: str) -> Profile:
    if name not in PROFILE_TABLE:
        raise ValueError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}")
    return PROFILE_TABLE[name]


def profile_parameters(profile: str, stage: str) -> dict[str, Any]:
    """Parameters offered to ``stage`` under ``profile`` (common ones, the source, then the stage's own)."""
    return get_profile(profile).parameters(stage)
