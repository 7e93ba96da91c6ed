"""SYNTHETIC STAND-IN for the paper's checkpoints: a tiny random Llama BASE, an "SFT" model and a series of "CT"
checkpoints whose task vectors grow with "tokens" (a random walk), written as Hugging Face folders.

Nothing here is trained. It exists so the sign-conflict ledger, Figures 3/4 and the explorer can run end to end
on a CPU in seconds when the demo world's real CT/SFT checkpoints have not been built. The qualitative trend it
produces (more SFT entries lose sign election as the CT task vector grows) is built in by construction, so it
demonstrates the measurement, not the paper's finding.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lrmerge.runs import RUN_RECORD, atomic_output_dir, write_run_record


def tokens_folder_name(tokens: int) -> str:
    """Folder name of a CT checkpoint that has seen ``tokens`` tokens (parsed back by ``series.ct_tokens_of``)."""
    return f"tokens-{int(tokens):09d}"


def make_checkpoint_series(
    folder: str | Path,
    n: int = 6,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    vocab_size: int = 512,
    intermediate_size: int = 128,
    tokens_per_checkpoint: int = 1_000_000,
    sft_scale: float = 0.02,
    ct_step_scale: float = 0.01,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Write ``folder/{base,sft,ct/tokens-XXXXXXXXX...}`` and return their paths.

    Task vectors: SFT = heavy-tailed noise (``sft_scale``); CT checkpoint i = sum of i random-walk steps
    (``ct_step_scale`` each), so its magnitude grows like sqrt(tokens). Each checkpoint's ``lrmerge_run.json``
    records ``ct_tokens``. Returns ``{"base": Path, "sft": Path, "ct": [Path, ...], "ct_tokens": [int, ...]}``.
    An existing complete series is reused unless ``overwrite``.
    """
    if n < 1:
        raise ValueError(f"n (number of CT checkpoints) must be >= 1, got {n}")
    folder = Path(folder)
    tokens = [tokens_per_checkpoint * (i + 1) for i in range(n)]
    paths = {
        "base": folder / "base",
        "sft": folder / "sft",
        "ct": [folder / "ct" / tokens_folder_name(t) for t in tokens],
        "ct_tokens": tokens,
    }
    config = {
        "n": n, "hidden_size": hidden_size, "num_layers": num_layers, "vocab_size": vocab_size,
        "intermediate_size": intermediate_size, "tokens_per_checkpoint": tokens_per_checkpoint,
        "sft_scale": sft_scale, "ct_step_scale": ct_step_scale, "seed": seed, "synthetic": True,
    }
    marker = folder / RUN_RECORD
    if marker.exists() and not overwrite and json.loads(marker.read_text()).get("config") == config:
        return paths

    from transformers import LlamaConfig, LlamaForCausalLM  # slow import, only when building

    torch.manual_seed(seed)
    model_config = LlamaConfig(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=4,
        intermediate_size=intermediate_size, vocab_size=vocab_size, max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    base_model = LlamaForCausalLM(model_config)
    base_state = {k: v.detach().clone() for k, v in base_model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed + 1)

    def heavy_tailed(shape, scale):  # Student-t-like: a few large entries, many small (as real task vectors)
        normal = torch.randn(shape, generator=generator)
        chi = torch.randn((4, *shape), generator=generator).pow(2).mean(0).clamp_min(1e-3)
        return scale * normal / chi.sqrt()

    with atomic_output_dir(folder, overwrite=True) as tmp:
        _save(base_model, base_state, tmp / "base", {"role": "base", **config})
        sft_state = {k: v + heavy_tailed(v.shape, sft_scale) for k, v in base_state.items()}
        _save(base_model, sft_state, tmp / "sft", {"role": "sft", **config})
        walk = {k: torch.zeros_like(v) for k, v in base_state.items()}
        for i, t in enumerate(tokens):
            # partly anti-aligned with SFT so sign conflicts grow as the walk grows
            for k, v in walk.items():
                v += heavy_tailed(v.shape, ct_step_scale) - 0.3 * ct_step_scale * torch.sign(sft_state[k] - base_state[k])
            ct_state = {k: base_state[k] + walk[k] for k in base_state}
            _save(base_model, ct_state, tmp / "ct" / tokens_folder_name(t), {"role": "ct", **config}, ct_tokens=t)
        write_run_record(tmp, config, seed=seed, note="synthetic stand-in checkpoints (not trained)")
    return paths


def _save(model, state: dict, out: Path, config: dict, ct_tokens: int | None = None) -> None:
    model.load_state_dict(state)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    extra = {"ct_tokens": ct_tokens} if ct_tokens is not None else {}
    write_run_record(out, config, seed=config["seed"], **extra)


__all__ = ["make_checkpoint_series", "tokens_folder_name"]
