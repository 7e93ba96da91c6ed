"""Shared fixtures: tiny HF Llama checkpoints built in tmp dirs."""

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LRMERGE_CACHE", tempfile.mkdtemp(prefix="lrmerge-cache-"))  # the file-digest memo
# `TEST_WORKERS=2 make test` runs the suite on pytest-xdist workers: each worker, and the notebook kernels and
# training processes it starts, gets its share of the cores instead of every one of them (set before torch loads)
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, str(_share))

# the modules whose fixtures run whole studies go first, so that under `--dist loadfile` the longest work starts at
# once on its own worker and the short modules fill the other workers around it
FIRST_MODULES = ("test_real_cpu_study.py", "test_notebooks.py", "test_demo_effects.py", "test_faults.py",
                 "test_demo_determinism.py")


def pytest_collection_modifyitems(config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
        return  # one process: the usual order

    def rank(item):
        name = item.path.name
        return FIRST_MODULES.index(name) if name in FIRST_MODULES else len(FIRST_MODULES)

    items.sort(key=rank)  # stable: the order inside a module, and of the other modules, is kept


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
