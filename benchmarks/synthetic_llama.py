"""Tensor names and shapes of a Llama-architecture checkpoint, shared by the benchmarks that build synthetic models."""

from __future__ import annotations


def llama_shapes(hidden: int, layers: int, intermediate: int, vocab: int) -> dict[str, tuple[int, ...]]:
    """HF LlamaForCausalLM parameter names -> shapes (untied embeddings, full-width k/v projections)."""
    shapes = {"model.embed_tokens.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[p + f"self_attn.{proj}.weight"] = (hidden, hidden)
        shapes[p + "mlp.gate_proj.weight"] = (intermediate, hidden)
        shapes[p + "mlp.up_proj.weight"] = (intermediate, hidden)
        shapes[p + "mlp.down_proj.weight"] = (hidden, intermediate)
        shapes[p + "input_layernorm.weight"] = (hidden,)
        shapes[p + "post_attention_layernorm.weight"] = (hidden,)
    shapes["model.norm.weight"] = (hidden,)
    shapes["lm_head.weight"] = (vocab, hidden)
    return shapes
