"""Models that tie lm_head to embed_tokens (SmolLM2, the real-cpu BASE): the tied matrix is stored once, merged
once, counted once by the conflict ledger, and the merged model loads with lm_head tied and generates."""

import pytest
import torch
from safetensors import safe_open

from lrmerge.conflicts.series import conflict_series
from lrmerge.merge import merge


def _tied(folder, seed, base=None, scale=0.02):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    if base is not None:
        with torch.no_grad():
            for (name, param), (_, ref) in zip(model.named_parameters(), base.named_parameters()):
                param.copy_(ref + scale * torch.randn_like(ref))
    model.save_pretrained(folder)
    return model


@pytest.fixture
def tied_models(tmp_path):
    base = _tied(tmp_path / "base", 0)
    _tied(tmp_path / "sft", 1, base)
    _tied(tmp_path / "ct", 2, base, scale=0.05)
    return tmp_path


def _keys(folder):
    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        return set(handle.keys())


def test_tied_merge_stores_loads_and_generates(tied_models):
    from transformers import AutoModelForCausalLM

    root = tied_models
    assert "lm_head.weight" not in _keys(root / "base")  # saved once, as embed_tokens
    config = {"merge_method": "ties", "base_model": str(root / "base"), "dtype": "float32",
              "parameters": {"normalize": True},
              "models": [{"model": str(root / "sft"), "parameters": {"weight": 1.0, "density": 0.2}},
                         {"model": str(root / "ct"), "parameters": {"weight": 1.0, "density": 1.0}}]}
    out = merge(config, root / "merged", device="cpu", progress=False)
    assert "lm_head.weight" not in _keys(out) and "model.embed_tokens.weight" in _keys(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    generated = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, 7)


def test_ledger_counts_the_tied_matrix_once(tied_models):
    root = tied_models
    table = conflict_series(root / "base", root / "sft", [root / "ct"], device="cpu", cache_dir=root / "cache",
                            progress=False)
    tensors = set(table["tensor"])
    assert "model.embed_tokens.weight" in tensors and not any("lm_head" in t for t in tensors)
    numel = sum(p.numel() for p in _tied(root / "again", 0).parameters())  # parameters() yields the tied one once
    assert int(table["numel"].sum()) == numel
