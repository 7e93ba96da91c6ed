"""BASE of the demo world: a tiny LlamaForCausalLM pre-trained on packed English documents with plain AdamW.

One small function on purpose (the lead may route it through `lrmerge.train.ct` later). Resumable: every
`save_every` steps `pretrain_state.pt` in `work_dir` holds the model and optimizer state dicts (plain tensors, loaded
with `torch.load(weights_only=True)`, so a pickle planted in the run folder cannot run code) and
`pretrain_state.json` the step and the schedule's state.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import torch

from lrmerge.demo.config import BaseModelConfig
from lrmerge.errors import UserError
from lrmerge.runs import atomic_write_text


def pack(tokenizer, documents: list[str], seq_len: int) -> torch.Tensor:
    """Documents -> one stream `<s> doc </s> <s> doc </s> ...` cut into rows.  # (n_rows, seq_len)"""
    ids: list[int] = []
    for start in range(0, len(documents), 1024):
        for row in tokenizer(documents[start:start + 1024])["input_ids"]:  # bos added by the tokenizer
            ids.extend(row)
            ids.append(tokenizer.eos_token_id)
    n_rows = len(ids) // seq_len
    if n_rows == 0:
        raise ValueError(f"pre-training corpus has {len(ids)} tokens, fewer than one sequence of {seq_len}")
    return torch.tensor(ids[: n_rows * seq_len]).view(n_rows, seq_len)


def new_base_model(config: BaseModelConfig, tokenizer, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads, max_position_embeddings=config.seq_len, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(llama)


def pretrain_base(documents: list[str], tokenizer, config: BaseModelConfig, seed: int, work_dir: str | Path,
                  save_every: int = 50, progress: bool = True, num_threads: int | None = None):
    """Pre-train a fresh BASE on `documents` (packed, causal LM loss, AdamW, warm-up 5% + cosine).

    num_threads: torch intra-op threads while training, restored afterwards; None (default) keeps the process's
    setting. `lrmerge study` builds the world alone, before any other stage, with every core. The demo BASE on 2
    otherwise idle cores: 38.3 s with 2 threads, 43.6 s with 1, bit-identical weights (AMD EPYC / AVX512 CPU; in
    the study's data stage 50.6 s with 2 threads, 51.6 s with 1 in an earlier run: within this VM's noise). On a
    CPU busy with other work, 2 threads were 6x slower per step than 1 (an earlier session's measurement): pass 1 there.
    Returns (model, stats) with stats = {"steps", "tokens", "final_loss", "params", "threads"}.
    """
    previous_threads = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        return _pretrain(documents, tokenizer, config, seed, work_dir, save_every, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _pretrain(documents, tokenizer, config: BaseModelConfig, seed: int, work_dir, save_every: int, progress: bool):
    from tqdm.auto import tqdm

    rows = pack(tokenizer, documents, config.seq_len)  # (n_rows, seq_len)
    generator = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(rows), generator=generator) for _ in range(config.epochs)])
    steps = max(1, len(order) // config.batch_size)
    model = new_base_model(config, tokenizer, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    state_path = Path(work_dir) / "pretrain_state.pt"
    progress_path = state_path.with_suffix(".json")
    start = 0
    saved = _load_state(state_path, progress_path)
    if saved is not None:
        state, progress_state = saved
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise UserError(f"{state_path}: does not fit this BASE ({type(error).__name__}); delete {work_dir} to "
                            "restart BASE pre-training") from error
        schedule.load_state_dict(progress_state["schedule"])
        start = int(progress_state["step"])
    model.train()
    loss_value = float("nan")
    for step in tqdm(range(start, steps), initial=start, total=steps, desc="BASE pre-training", disable=not progress):
        batch = rows[order[step * config.batch_size:(step + 1) * config.batch_size]]  # (batch, seq_len)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss.item()
        if save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
            partial = state_path.with_name(f".{state_path.name}.partial")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step + 1}, partial)
            partial.replace(state_path)
            atomic_write_text(progress_path, json.dumps({"step": step + 1, "schedule": schedule.state_dict()}))
    model.eval()
    stats = {"steps": steps, "tokens": steps * config.batch_size * config.seq_len, "final_loss": loss_value,
             "params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads()}
    return model, stats


def _load_state(state_path: Path, progress_path: Path):
    """(tensor state, step and schedule) of the last save, or None when there is none (or only half of one).
    ``weights_only=True``: a planted pickle raises instead of running."""
    if not (state_path.exists() and progress_path.exists()):
        return None
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        progress_state = json.loads(progress_path.read_text())
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError) as error:
        raise UserError(f"{state_path}: not a pre-training state saved by lrmerge ({type(error).__name__}); delete "
                        f"{state_path.parent} to restart BASE pre-training") from error
    if not isinstance(state, dict) or state.get("step") != progress_state.get("step"):
        return None  # killed between the two writes: start over
    return state, progress_state
