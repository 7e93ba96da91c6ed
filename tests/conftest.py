"""Shared fixtures: tiny HF Llama checkpoints built in tmp dirs."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def tiny_llama_factory(tmp_path):
    """make(name, seed=0, base=None, scale=0.02, vocab=64, hidden=32, layers=2) -> folder of a tiny LlamaForCausalLM.

    With ``base`` (a folder made earlier), the new model is base + scale * N(0, 1) noise: a fake fine-tune.
    """
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    def make(name, seed=0, base=None, scale=0.02, vocab=64, hidden=32, layers=2):
        torch.manual_seed(seed)
        config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                             tie_word_embeddings=False)
        model = LlamaForCausalLM(config)
        if base is not None:
            state = load_file(str(base / "model.safetensors"))
            with torch.no_grad():
                for key, param in model.named_parameters():
                    param.copy_(state[key] + scale * torch.randn_like(param))
        folder = tmp_path / name
        model.save_pretrained(folder, safe_serialization=True)
        return folder

    return make


@pytest.fixture(scope="session")
def quick_world_source(tmp_path_factory):
    """The quick demo world, resolved as a study source (built once per test session)."""
    from lrmerge.sources import provider_spec, resolve

    root = tmp_path_factory.mktemp("quick_world")
    spec = provider_spec("demo", "tbx", world_profile="quick", run_root=root)
    return resolve(spec, root / "tbx" / "data", root / "models")


def shared_data_dir():
    """The real data beside the checkout (../shared/data), or None when it is not there."""
    from lrmerge.sources import shared_data_dir as find

    folder = find()
    return folder if (folder / "sib200").is_dir() else None
