"""Tensor name -> (layer index, module) for Llama-style checkpoints, so the ledger can be grouped by layer/module."""

from __future__ import annotations

import re

# Module vocabulary of the ledger tables and the layer x module heatmap, in display order.
MODULES = ("embed", "q", "k", "v", "o", "gate", "up", "down", "norm", "lm_head", "other")

_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
# first match wins; patterns look at the dotted name parts
_MODULE_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("q", re.compile(r"(?:^|\.)(?:q_proj|query|wq)(?:\.|$)")),
    ("k", re.compile(r"(?:^|\.)(?:k_proj|key|wk)(?:\.|$)")),
    ("v", re.compile(r"(?:^|\.)(?:v_proj|value|wv)(?:\.|$)")),
    ("o", re.compile(r"(?:^|\.)(?:o_proj|out_proj|dense|wo)(?:\.|$)")),
    ("gate", re.compile(r"(?:^|\.)(?:gate_proj|w1)(?:\.|$)")),
    ("up", re.compile(r"(?:^|\.)(?:up_proj|w3)(?:\.|$)")),
    ("down", re.compile(r"(?:^|\.)(?:down_proj|w2)(?:\.|$)")),
    ("embed", re.compile(r"(?:^|\.)(?:embed_tokens|wte|tok_embeddings|word_embeddings)(?:\.|$)")),
    ("lm_head", re.compile(r"(?:^|\.)(?:lm_head|output)(?:\.|$)")),
    ("norm", re.compile(r"(?:^|\.)[a-z_]*(?:norm|ln_\w+|ln)(?:\.|$)")),
)


def parse_tensor_name(name: str) -> tuple[int | None, str]:
    """``model.layers.3.self_attn.q_proj.weight`` -> ``(3, "q")``; tensors outside the blocks get layer ``None``.

    The module is one of ``MODULES``; anything unrecognised is ``"other"`` (never an error: statistics over an
    unfamiliar architecture still add up, they just land in one bucket).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"tensor name must be a non-empty string, got {name!r}")
    match = _LAYER.search(name)
    layer = int(match.group(1)) if match else None
    for module, pattern in _MODULE_PATTERNS:
        if pattern.search(name):
            return layer, module
    return layer, "other"
