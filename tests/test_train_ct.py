"""CT-X on a tiny Llama: token-count checkpoints, run records, replay share, resume equality, LR groups."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json

import pytest
import torch
from safetensors.torch import load_file

from lrmerge.runs import read_run_record
from lrmerge.train.config import CTConfig
from lrmerge.train.ct import list_ct_checkpoints, run_ct
from lrmerge.train.tiny import write_tiny_world

SEQ_LEN, BATCH = 32, 4
TOKENS_PER_STEP = SEQ_LEN * BATCH


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_tiny_world(tmp_path_factory.mktemp("world"))


def make_config(world, out, **kw):
    data = dict(lang="tam", base_model=str(world["base"]), out_dir=out, x_corpus={"path": world["x"]},
                replay_corpus={"path": world["en"]}, x_tokens=3000, checkpoint_tokens=[500, 1000, 2000, 4000],
                batch={"seq_len": SEQ_LEN, "per_device_batch_size": BATCH}, optim={"lr": 1e-3, "warmup_ratio": 0.1},
                save_steps=100, seed=3)
    data.update(kw)
    return CTConfig.model_validate(data)


@pytest.fixture(scope="module")
def full_run(world, tmp_path_factory):
    config = make_config(world, tmp_path_factory.mktemp("ct") / "ct")
    return config, run_ct(config)


def test_checkpoints_at_requested_token_counts_within_one_batch(full_run):
    config, result = full_run
    assert result.finished
    assert [p.name for p in result.checkpoints] == [f"tokens-{t:012d}" for t in (500, 1000, 2000, 4000)]
    for folder in result.checkpoints:
        record = read_run_record(folder)
        assert record["ct_tokens"] == int(folder.name.split("-")[1])
        assert 0 <= record["tokens_seen"] - record["ct_tokens"] < TOKENS_PER_STEP
        assert record["tokens_seen"] == record["step"] * TOKENS_PER_STEP
        assert record["x_tokens_seen"] + record["replay_tokens_seen"] == record["tokens_seen"]
        assert record["seed"] == 3 and record["config"]["replay_share"] == 0.25
        assert "torch" in record["versions"] and "transformers" in record["versions"]
    last = read_run_record(result.checkpoints[-1])
    assert abs(last["replay_tokens_seen"] / last["tokens_seen"] - 0.25) < 0.01
    assert last["tokens_seen"] >= round(3000 / 0.75)  # the X budget plus replay was trained
    out = config.out_dir
    assert not (out / "trainer").exists()  # resumable state removed when the run finished
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no partial folders left


def test_checkpoints_load_with_auto_classes_and_differ_from_base(full_run, world):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, result = full_run
    model = AutoModelForCausalLM.from_pretrained(result.checkpoints[0])
    AutoTokenizer.from_pretrained(result.checkpoints[0])
    base = load_file(world["base"] / "model.safetensors")
    first = load_file(result.checkpoints[0] / "model.safetensors")
    last = load_file(result.checkpoints[-1] / "model.safetensors")
    assert set(first) == set(base) and model.config.num_hidden_layers == 2
    name = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(first[name], base[name]) and not torch.equal(first[name], last[name])


def test_interrupted_then_resumed_run_equals_uninterrupted(full_run, world, tmp_path):
    config, result = full_run
    out = tmp_path / "ct"
    stopped = run_ct(make_config(world, out, stop_after_steps=12))
    assert not stopped.finished
    assert [p.name for p in stopped.checkpoints] == ["tokens-000000000500", "tokens-000000001000"]
    assert (out / "trainer" / "checkpoint-12").is_dir()
    resumed = run_ct(make_config(world, out))
    assert resumed.finished and len(resumed.checkpoints) == 4
    mtime = (resumed.checkpoints[-1] / "model.safetensors").stat().st_mtime_ns
    again = run_ct(make_config(world, out))  # a finished run is not trained again
    assert again.checkpoints == resumed.checkpoints
    assert (again.checkpoints[-1] / "model.safetensors").stat().st_mtime_ns == mtime
    for a, b in zip(result.checkpoints, resumed.checkpoints):
        wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
        for name in wa:
            torch.testing.assert_close(wa[name], wb[name], rtol=0, atol=1e-6, msg=f"{b.name}: {name}")
        assert read_run_record(a)["tokens_seen"] == read_run_record(b)["tokens_seen"]


def test_embedding_lr_multiplier_makes_its_own_param_group(world, tmp_path):
    from lrmerge.train.engine import StageTrainer, load_model_and_tokenizer, training_arguments

    config = make_config(world, tmp_path / "ct", optim={"lr": 1e-3, "embedding_lr_multiplier": 3.0})
    model, tokenizer = load_model_and_tokenizer(config.base_model)
    trainer = StageTrainer(model=model, args=training_arguments(config, 10, tmp_path / "t"),
                           embedding_lr_multiplier=3.0)
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    seen = 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            seen += 1
            is_emb = "embed_tokens" in names[id(p)] or "lm_head" in names[id(p)]
            assert group["lr"] == pytest.approx(3e-3 if is_emb else 1e-3), names[id(p)]
    assert seen == len(list(model.parameters()))
    assert optimizer.defaults["betas"] == (0.9, 0.95)


def test_in_memory_documents_and_zero_replay(world, tmp_path):
    from lrmerge.train.tiny import tiny_corpora

    _, x = tiny_corpora(50, seed=9)
    config = make_config(world, tmp_path / "ct", replay_share=0.0, replay_corpus=None, x_tokens=600,
                         checkpoint_tokens=None, n_checkpoints=2)
    result = run_ct(config, x_documents=x)
    assert [read_run_record(p)["replay_tokens_seen"] for p in result.checkpoints] == [0, 0]
    assert list_ct_checkpoints(tmp_path / "ct") == result.checkpoints
    assert json.loads((result.checkpoints[-1] / "config.json").read_text())["model_type"] == "llama"


def test_cli_trains_from_flags(world, tmp_path, capsys):
    from lrmerge.cli import main

    out = tmp_path / "ct"
    rc = main(["train", "ct", "--lang", "tam", "--base-model", str(world["base"]), "--out", str(out),
               "--x-corpus", str(world["x"]), "--replay-corpus", str(world["en"]), "--x-tokens", "600",
               "--seq-len", "32", "--batch-size", "4", "--n-checkpoints", "2", "--lr", "1e-3", "--precision", "fp32"])
    assert rc == 0 and "finished: 2 checkpoints" in capsys.readouterr().out
    assert [p.name for p in list_ct_checkpoints(out)] == ["tokens-000000000400", "tokens-000000000800"]
    assert read_run_record(out / "tokens-000000000800")["config"]["optim"]["lr"] == 1e-3


def test_bf16_only_where_supported():
    from lrmerge.train.engine import use_bf16

    assert use_bf16("auto") == bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert use_bf16("fp32") is False and use_bf16("bf16") is True
    with pytest.raises(ValueError, match="allowed"):
        use_bf16("fp16")
