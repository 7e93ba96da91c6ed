"""Config validation (before any training), dry-run plans, the real-run YAMLs and the accelerate configs."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from lrmerge.train.config import PAPER_LANGUAGES, CTConfig, SFTConfig, load_config
from lrmerge.train.plan import plan_ct

REPO = Path(__file__).resolve().parents[1]
TABLE2_USED = {"tam": 8e9, "tel": 8e9, "ory": 765e6, "ben": 16e9, "bod": 1.00e9, "uig": 412e6, "mvf": 904e6}
TABLE2_CORPUS = {"tam": 15.9e9, "tel": 12.4e9, "ory": 765e6, "ben": 36.4e9, "bod": 1.00e9, "uig": 412e6, "mvf": 904e6}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "x.txt").write_text("doc one\ndoc two\n")
    (tmp_path / "en.txt").write_text("english doc\n")
    (tmp_path / "sft.jsonl").write_text('{"prompt": "p", "response": "r", "task": "t", "lang": "eng"}\n')
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    return tmp_path


def ct_data(files, **kw):
    data = dict(lang="tam", base_model=str(files / "base"), out_dir=str(files / "out"),
                x_corpus={"path": str(files / "x.txt")}, replay_corpus={"path": str(files / "en.txt")},
                x_tokens=3000, batch={"seq_len": 32, "per_device_batch_size": 4})
    data.update(kw)
    return data


@pytest.mark.parametrize("change, field", [
    (dict(x_corpus={"path": "missing/corpus.txt"}), "x_corpus"),
    (dict(x_tokens=0), "x_tokens"),
    (dict(x_tokens=-5), "x_tokens"),
    (dict(replay_share=1.0), "replay_share"),
    (dict(replay_share=-0.1), "replay_share"),
    (dict(lang="xxx"), "lang"),
    (dict(optim={"schedule": "linear"}), "schedule"),
    (dict(precision="fp16"), "precision"),
    (dict(base_model="/no/such/model"), "base_model"),
    (dict(checkpoint_tokens=[100, 10**9]), "checkpoint_tokens"),
    (dict(replay_corpus=None), "replay_corpus"),
    (dict(x_tokns=5), "x_tokns"),
])
def test_bad_ct_config_names_the_field(files, change, field):
    with pytest.raises(ValidationError) as err:
        CTConfig.model_validate(ct_data(files, **change))
    assert field in str(err.value)


def test_unknown_language_lists_allowed(files):
    with pytest.raises(ValidationError, match="allowed:.*'tam'"):
        CTConfig.model_validate(ct_data(files, lang="xxx"))


def test_bad_sft_config_names_the_field(files):
    base = dict(lang="eng", base_model=str(files / "base"), out_dir=str(files / "o"), sft_files=[str(files / "sft.jsonl")],
                replay_corpora=[{"path": str(files / "en.txt")}])
    SFTConfig.model_validate(base)
    with pytest.raises(ValidationError, match="sft_files"):
        SFTConfig.model_validate({**base, "sft_files": [str(files / "nope.jsonl")]})
    with pytest.raises(ValidationError, match="stage"):
        SFTConfig.model_validate({**base, "stage": "ctsft-xx"})
    with pytest.raises(ValidationError, match="replay_corpora"):
        SFTConfig.model_validate({**base, "replay_corpora": []})


def test_bad_config_fails_before_training_starts(files, monkeypatch, capsys):
    import lrmerge.train.ct as ct
    from lrmerge.cli import main

    monkeypatch.setattr(ct, "run_ct", lambda *a, **k: pytest.fail("training started"))
    path = files / "bad.yaml"
    path.write_text(yaml.safe_dump({"ct": ct_data(files, x_tokens=0, replay_share=1.5)}))
    assert main(["train", "ct", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "x_tokens" in err and "replay_share" in err
    assert not (files / "out").exists()


def test_plan_brute_force(files):
    config = CTConfig.model_validate(ct_data(files, x_tokens=3000, checkpoint_tokens=[500, 1000, 4000]))
    plan = plan_ct(config)
    per_step = 32 * 4
    # brute force: step until the X + replay budget is covered; record the first step reaching each count
    steps, tokens, first = 0, 0, {}
    while tokens < 3000 / 0.75:
        steps += 1
        tokens += per_step
        for t in (500, 1000, 4000):
            if tokens >= t and t not in first:
                first[t] = steps
    assert plan.steps == steps and plan.total_tokens == tokens and plan.tokens_per_step == per_step
    assert plan.checkpoint_steps == tuple(first[t] for t in (500, 1000, 4000))
    assert plan.replay_tokens == 1000 and plan.x_tokens == 3000
    assert plan.gpu_hours == pytest.approx(tokens / 3000.0 / 3600)


def test_cli_dry_run_prints_plan_and_trains_nothing(files, capsys):
    from lrmerge.cli import main

    rc = main(["train", "ct", "--lang", "tam", "--base-model", str(files / "base"), "--out", str(files / "out"),
               "--x-corpus", str(files / "x.txt"), "--replay-corpus", str(files / "en.txt"), "--x-tokens", "3000",
               "--seq-len", "32", "--batch-size", "4", "--n-checkpoints", "3", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "steps          32" in out and "checkpoints    3" in out
    assert not (files / "out").exists()


@pytest.mark.parametrize("lang", sorted(PAPER_LANGUAGES))
def test_real_configs_plan_table2_budgets(lang, capsys):
    from lrmerge.cli import main

    path = REPO / "configs" / "real" / f"{lang}.yaml"
    config = load_config(path, "ct")
    assert config.base_model == "meta-llama/Llama-2-7b-hf" and config.precision == "bf16"
    assert config.optim.lr == 2e-5 and config.optim.betas == (0.9, 0.95) and config.replay_share == 0.25
    assert config.batch.tokens_per_step() == 2**20  # 1M tokens per batch (Appendix B)
    assert config.x_tokens == TABLE2_USED[lang] and config.x_corpus.tokens == TABLE2_CORPUS[lang]
    hub = {"ben": "ai4bharat/IndicCorpV2", "bod": "pkupie/mc2_corpus", "uig": "pkupie/mc2_corpus",
           "mvf": "pkupie/mc2_corpus"}.get(lang, "uonlp/CulturaX")
    assert config.x_corpus.hub_id == hub
    plan = plan_ct(config)
    assert plan.steps == math.ceil(TABLE2_USED[lang] / 0.75 / 2**20) and len(plan.checkpoint_tokens) == 8
    assert main(["train", "ct", "--config", str(path), "--dry-run"]) == 0
    assert "GPU hours" in capsys.readouterr().out
    raw = yaml.safe_load(path.read_text())
    assert raw["sft_sources"]["gsm8k"]["hub_id"] == "openai/gsm8k"


@pytest.mark.parametrize("name, kind", [("fsdp_7b.yaml", "FSDP"), ("deepspeed_zero3_7b.yaml", "DEEPSPEED")])
def test_accelerate_configs_parse(name, kind):
    data = yaml.safe_load((REPO / "configs" / "accelerate" / name).read_text())
    assert data["distributed_type"] == kind and data["mixed_precision"] == "bf16"
    if kind == "FSDP":
        assert data["fsdp_config"]["fsdp_use_orig_params"] is True  # needed for the embedding LR group
        assert data["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    else:
        assert data["deepspeed_config"]["zero_stage"] == 3


def test_flags_override_the_yaml(files):
    from lrmerge.train.cli import build_config, configure_parser
    import argparse

    path = files / "c.yaml"
    path.write_text(yaml.safe_dump({"ct": ct_data(files)}))
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(["ct", "--config", str(path), "--lr", "0.003", "--replay-share", "0.1", "--seq-len", "64"])
    config = build_config(args, "ct")
    assert config.optim.lr == 0.003 and config.replay_share == 0.1 and config.batch.seq_len == 64
    assert config.x_tokens == 3000
