"""SFT stages on a tiny Llama: replay share, run records (CTSFT from a CT checkpoint), resume equality, loading."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors.torch import load_file

from lrmerge.runs import read_run_record
from lrmerge.train.config import CTConfig, SFTConfig
from lrmerge.train.data import IGNORE_INDEX
from lrmerge.train.sft import build_sft_examples, replay_count, run_sft
from lrmerge.train.tiny import write_tiny_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_tiny_world(tmp_path_factory.mktemp("world"))


def make_config(world, out, **kw):
    data = dict(lang="tam", stage="sft-flan", base_model=str(world["base"]), out_dir=out, sft_files=[world["sft"]],
                replay_corpora=[{"path": world["en"]}, {"path": world["x"]}], replay_share=0.2, epochs=2,
                max_len=48, batch={"per_device_batch_size": 8}, optim={"lr": 1e-3}, save_steps=100, seed=1)
    data.update(kw)
    return SFTConfig.model_validate(data)


@pytest.mark.parametrize("n, share", [(64, 0.2), (100, 0.05), (7, 0.0), (160_000, 0.1)])
def test_replay_count_gives_the_share_of_sequences(n, share):
    k = replay_count(n, share)
    assert abs(k / (n + k) - share) <= 1 / (n + k)


def test_examples_are_sft_then_replay_with_all_tokens_labelled(world, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(world["base"])
    examples, n_sft, n_replay = build_sft_examples(make_config(world, tmp_path), tokenizer)
    assert n_sft == 64 and n_replay == 16 and len(examples) == 80
    for ex in examples[:n_sft]:
        assert ex["labels"][0] == IGNORE_INDEX and ex["labels"][-1] == tokenizer.eos_token_id
    mean_len = round(sum(len(ex["input_ids"]) for ex in examples[:n_sft]) / n_sft)
    for ex in examples[n_sft:]:
        assert ex["labels"] == ex["input_ids"] and len(ex["input_ids"]) == mean_len
    texts = [tokenizer.decode(ex["input_ids"]) for ex in examples[n_sft:]]
    english = sum(any(w in t for w in (" the ", " cat ", " dog ")) for t in texts)
    assert english == n_replay // 2  # replay drawn evenly from English and X


@pytest.fixture(scope="module")
def sft_run(world, tmp_path_factory):
    config = make_config(world, tmp_path_factory.mktemp("sft") / "sft-flan")
    return config, run_sft(config)


def test_sft_writes_a_loadable_model_with_its_record(sft_run):
    from transformers import AutoModelForCausalLM

    config, result = sft_run
    assert result.finished and result.model_dir == config.out_dir / "model"
    AutoModelForCausalLM.from_pretrained(result.model_dir)
    record = read_run_record(result.model_dir)
    assert record["stage"] == "sft-flan" and record["n_sft"] == 64 and record["n_replay"] == 16
    assert record["steps"] == 20  # 2 epochs x 80 sequences / 8
    assert record["tokens_seen"] > 0 and record["seed"] == 1
    assert not (config.out_dir / "trainer").exists()


def test_sft_resume_equals_uninterrupted(sft_run, world, tmp_path):
    _, result = sft_run
    out = tmp_path / "sft-flan"
    stopped = run_sft(make_config(world, out, stop_after_steps=7))
    assert not stopped.finished and not (out / "model").exists()
    resumed = run_sft(make_config(world, out))
    assert resumed.finished
    wa, wb = load_file(result.model_dir / "model.safetensors"), load_file(resumed.model_dir / "model.safetensors")
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=0, atol=1e-6, msg=name)
    assert read_run_record(resumed.model_dir)["tokens_seen"] == read_run_record(result.model_dir)["tokens_seen"]


def test_ctsft_records_the_ct_checkpoint_it_started_from(world, tmp_path):
    from lrmerge.train.ct import run_ct

    ct = run_ct(CTConfig.model_validate(dict(
        lang="tam", base_model=str(world["base"]), out_dir=tmp_path / "ct", x_corpus={"path": world["x"]},
        replay_corpus={"path": world["en"]}, x_tokens=384, n_checkpoints=1,
        batch={"seq_len": 32, "per_device_batch_size": 4}, optim={"lr": 1e-3}, save_steps=100)))
    config = make_config(world, tmp_path / "ctsft", stage="ctsft-flan", base_model=str(ct.checkpoints[-1]),
                         epochs=0.5)
    result = run_sft(config)
    record = read_run_record(result.model_dir)
    assert record["stage"] == "ctsft-flan" and record["base_stage"] == "ct"
    assert record["base_ct_tokens"] == read_run_record(ct.checkpoints[-1])["ct_tokens"] == 512


def test_shared_sft_flan_is_keyed_by_input_content_not_paths(world, tmp_path):
    """Each language's data stage writes its own copy of the English SFT file: the same bytes at another path must
    find the same shared SFT-flan (it was trained once per language), changed bytes another one."""
    import shutil

    from lrmerge.pipeline import sft_identity

    copy = tmp_path / "other_language" / "sft_flan.jsonl"
    copy.parent.mkdir()
    shutil.copy(world["sft"], copy)
    original = sft_identity(make_config(world, tmp_path / "a"))
    assert sft_identity(make_config(world, tmp_path / "b", sft_files=[copy])) == original
    with open(copy, "a") as handle:
        handle.write('{"prompt": "Question: one?\\nAnswer:", "response": " one"}\n')
    assert sft_identity(make_config(world, tmp_path / "b", sft_files=[copy])) != original
    assert sft_identity(make_config(world, tmp_path / "a", seed=2)) != original
