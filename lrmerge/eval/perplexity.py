"""Held-out perplexity: how well a checkpoint models unseen text of a language (the CT sanity check)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch


def read_heldout(path: str | Path, n_texts: int | None = None) -> list[str]:
    """Documents of a held-out file (one a line), the first ``n_texts``."""
    lines = [line.rstrip("\n") for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}: no held-out text")
    return lines[:n_texts] if n_texts else lines


@torch.no_grad()
def perplexity(model, tokenizer, texts: Sequence[str], seq_len: int = 256, batch_size: int = 8) -> float:
    """Token-level perplexity of ``texts``, each scored on its own (bos + text, truncated to ``seq_len``)."""
    encoded = [ids[:seq_len] for ids in tokenizer(list(texts))["input_ids"] if len(ids) >= 2]
    if not encoded:
        raise ValueError("perplexity: no text of two or more tokens")
    encoded.sort(key=len)
    total, count = 0.0, 0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval()
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start:start + batch_size]
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), pad, dtype=torch.long)  # (B, L), right-padded
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()  # (B, L-1, V)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # (B, L-1)
        keep = mask[:, 1:].bool()
        total += nll[keep].sum().item()
        count += int(keep.sum())
    return math.exp(total / count)


def heldout_perplexity(model_dir: str | Path, heldout_file: str | Path, n_texts: int | None = 200,
                       seq_len: int = 256) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return perplexity(model, tokenizer, read_heldout(heldout_file, n_texts), seq_len)
