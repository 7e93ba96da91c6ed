"""Data sources: providers, resolution checks with one-line errors naming the field, tokenization description."""

import json

import pytest

from conftest import shared_data_dir
from lrmerge.sources import load_spec_file, provider_spec, resolve
from lrmerge.sources.describe import tokenization_stats
from lrmerge.sources.spec import ModelSpec, SourceSpec, TextSpec
from lrmerge.sources.text import check_script, read_documents, split_heldout

SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="the real data beside the checkout (../shared/data) is absent")


def test_paper_provider_names_the_papers_hub_data():
    spec = provider_spec("paper", "tam")
    assert spec.base.hub_id == "meta-llama/Llama-2-7b-hf"
    assert (spec.ct_corpus.hub_id, spec.ct_corpus.hub_config) == ("uonlp/CulturaX", "ta")
    assert {p.source for p in spec.sft_flan} == {"Muennighoff/flan", "openai/gsm8k"}
    assert spec.sft_mt.model == "facebook/nllb-200-distilled-1.3B"
    assert spec.eval.source_of("belebele") == "facebook/belebele" and spec.eval.source_of("sib200") == "Davlan/sib200"
    assert provider_spec("paper", "mvf").eval.tasks == ["mlic_tc", "mlic_mrc", "mlic_rs", "mlic_math"]


def test_providers_refuse_languages_they_do_not_serve():
    with pytest.raises(ValueError, match="demo languages"):
        provider_spec("demo", "tam")
    with pytest.raises(ValueError, match="paper languages"):
        provider_spec("real-cpu", "tbx")
    with pytest.raises(ValueError, match="unknown source provider 'hub'"):
        provider_spec("hub", "tam")


def test_spec_fields_are_checked():
    with pytest.raises(ValueError, match="not a hub id"):
        ModelSpec(hub_id="llama-2-7b")
    with pytest.raises(ValueError, match="exactly one of"):
        ModelSpec(path="a", hub_id="owner/name")
    with pytest.raises(ValueError, match="exactly one of files"):
        TextSpec()


def test_demo_source_resolves_to_the_world_files(quick_world_source):
    source = quick_world_source
    assert source.provider == "demo" and source.world_root is not None
    assert source.ct_corpus["path"].endswith("corpus/tbx.txt") and source.sft_mt.endswith("flan_mt_tbx.jsonl")
    assert source.tasks == ["sib200", "belebele", "mgsm", "mlic_rs"]
    assert set(source.heldout) == {"tbx", "eng"}
    tokenization = source.description["tokenization"]
    assert tokenization["eng"]["byte_token_share"] < 0.05 < tokenization["tbx"]["tokens_per_character"]


def test_heldout_split_and_script_check():
    train, held = split_heldout([f"d{i}" for i in range(1, 21)], 10)
    assert held == ["d10", "d20"] and len(train) == 18 and not set(train) & set(held)
    assert split_heldout(["a", "b"], 0) == (["a", "b"], [])
    assert check_script(["தமிழ் மொழி"], "Tamil", "tam", "f") == 1.0
    with pytest.raises(ValueError, match="f: the corpus has no tam text: only 0% of its letters are in the Tamil"):
        check_script(["plain English text"], "Tamil", "tam", "f")


def test_udhr_and_sib_files_read_as_documents(tmp_path):
    xml = tmp_path / "u.xml"
    xml.write_text('<udhr><title>Title here</title><article><para>First <b>para</b>.</para><para>Second.</para>'
                   '</article></udhr>', encoding="utf-8")
    assert list(read_documents(xml)) == ["Title here", "First para .", "Second."]
    tsv = tmp_path / "s.tsv"
    tsv.write_text("index_id\tcategory\ttext\n1\tsports\tA match.\n", encoding="utf-8")
    assert list(read_documents(tsv)) == ["A match."]
    bad = tmp_path / "x.csv"
    bad.write_text("a")
    with pytest.raises(ValueError, match="cannot tell the text format"):
        list(read_documents(bad))


def _custom_spec(tmp_path, quick_world_source, **changes):
    """A user's source: the quick world's BASE and English files, with fields replaced by ``changes``."""
    s = quick_world_source
    data = {"lang": "tbx", "base": {"path": s.base}, "ct_corpus": {"files": [s.ct_corpus["path"]]},
            "replay_corpus": {"files": [s.replay_corpus["path"]]},
            "sft_flan": [{"kind": "jsonl", "source": s.sft_flan}], "eval": {"source": s.eval_source}}
    data.update(changes)
    path = tmp_path / "source.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return load_spec_file(path, "tbx")


@pytest.mark.parametrize("changes, message", [
    ({"base": {"hub_id": "not a hub id"}}, r"source.yaml: source.base: hub_id: 'not a hub id' is not a hub id of the form 'owner/name'"),
    ({"ct_corpus": {"files": ["/nonexistent/tbx.txt"]}}, r"source.ct_corpus.files\[0\]: file not found: /nonexistent"),
    ({"replay_corpus": {"files": ["CT"]}}, None),
    ({"sft_flan": [{"kind": "gsm8k", "source": "/nonexistent/gsm8k"}]}, r"source.sft_flan\[0\].source: no such file"),
    ({"eval": {"source": "WRONG"}}, r"source.eval \(sib200 dev"),
    ({"base": {"path": "/nonexistent/model"}}, r"source.base.path: /nonexistent/model is not a model folder"),
])
def test_bad_sources_fail_before_training_naming_the_field(tmp_path, quick_world_source, changes, message):
    if changes.get("replay_corpus", {}).get("files") == ["CT"]:  # X text where English replay was expected
        tibetan = tmp_path / "bod.txt"
        tibetan.write_text("བོད་ཡིག་ནི་ཡི་གེ་ཡིན།\n" * 20, encoding="utf-8")
        changes = {"replay_corpus": {"files": [str(tibetan)]}}
        message = r"source.replay_corpus: the corpus has no eng text"
    if changes.get("eval", {}).get("source") == "WRONG":  # an evaluation folder in the wrong schema
        wrong = tmp_path / "eval" / "sib200" / "tbx_Tibt"
        wrong.mkdir(parents=True)
        (wrong / "labels.txt").write_text("a\nb\n")
        (wrong / "dev.tsv").write_text("id\ttopic\tsentence\n1\ta\tx\n")
        changes = {"eval": {"source": str(tmp_path / "eval"), "tasks": ["sib200"]}}
    if "base" in changes and "hub_id" in changes["base"]:
        with pytest.raises(ValueError, match=message):
            _custom_spec(tmp_path, quick_world_source, **changes)
        return
    spec = _custom_spec(tmp_path, quick_world_source, **changes)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        resolve(spec, tmp_path / "out", tmp_path / "models")


def test_spec_file_must_match_the_study_language(tmp_path, quick_world_source):
    spec = _custom_spec(tmp_path, quick_world_source)
    assert isinstance(spec, SourceSpec) and spec.provider == "custom"
    with pytest.raises(ValueError, match="source.lang is 'tbx' but the study runs 'mnx'"):
        load_spec_file(tmp_path / "source.yaml", "mnx")


def test_hub_sources_are_refused_offline_with_what_would_be_downloaded(tmp_path, quick_world_source, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = _custom_spec(tmp_path, quick_world_source, ct_corpus={"hub_id": "uonlp/CulturaX", "hub_config": "bo"})
    with pytest.raises(RuntimeError, match=r"source.ct_corpus.hub_id: uonlp/CulturaX\[bo\]:train.text is streamed"):
        resolve(spec, tmp_path / "out", tmp_path / "models")


@needs_shared
def test_real_cpu_spec_reads_the_real_data():
    spec = provider_spec("real-cpu", "tam", data_dir=SHARED)
    assert spec.base.package == "smollm2-135m-instruct"
    assert [p.rsplit("/", 2)[-2:] for p in spec.ct_corpus.files] == [["udhr", "udhr_tam.xml"], ["tam_Taml", "train.tsv"]]
    assert spec.eval.tasks == ["sib200"] and "belebele" in spec.eval.unavailable
    tel = provider_spec("real-cpu", "tel", data_dir=SHARED)
    assert tel.eval.tasks == ["sib200", "mgsm"]


def test_tokenization_stats_count_byte_tokens(quick_world_source):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(quick_world_source.base)
    mongolian = tokenization_stats(tokenizer, ["ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ"])  # never seen by the demo tokenizer: byte fallback
    assert mongolian["byte_token_share"] > 0.9 and mongolian["tokens_per_character"] >= 2.5


@needs_shared
def test_paper_profile_resolution_gets_past_stage_01_with_local_files(tmp_path, quick_world_source, monkeypatch):
    """The paper provider's spec, each hub input pointed at local files (as a GPU machine's hub download would
    leave them), resolves: the logic of stage 01 for real languages without the hub."""
    from lrmerge.sources.spec import EvalSpec, SFTPart

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = provider_spec("paper", "tam").model_copy(update={
        "base": ModelSpec(path=quick_world_source.base),  # a local model folder in place of Llama-2-7B
        "ct_corpus": TextSpec(files=[str(SHARED / "sib200" / "tam_Taml" / "train.tsv")], heldout_every=10),
        "replay_corpus": TextSpec(files=[str(SHARED / "udhr" / "udhr_eng.xml")]),
        "sft_flan": [SFTPart(kind="gsm8k", source=str(SHARED / "gsm8k"), limit=5)],
        "sft_mt": provider_spec("real-cpu", "tam", data_dir=SHARED).sft_mt,
        "eval": EvalSpec(source=str(SHARED), tasks=["sib200"], unavailable={"belebele": "hub only here"}),
    })
    source = resolve(spec, tmp_path / "data", tmp_path / "models")
    assert source.provider == "paper" and source.tasks == ["sib200"]
    assert source.description["eval_items"]["sib200"] == {"dev": 99, "test": 204}
    assert source.description["ct_documents"] == 701 - 70 and "tam" in source.heldout
    assert sum(1 for _ in open(source.sft_flan)) == 5


def test_the_source_says_how_choice_tasks_are_answered(quick_world_source):
    """The demo world writes reading and response-selection answers as letter + option text; every stage's tasks
    (pipeline.study_tasks) are scored that way, topic classification and math as before; real sources keep letters."""
    from lrmerge import pipeline
    from lrmerge.sources.spec import EvalSpec

    assert quick_world_source.choice_answer == "letter_text"
    answers = {s.benchmark: s.answer for s in pipeline.study_tasks(quick_world_source)}
    assert answers == {"sib200": "letter", "belebele": "letter_text", "mgsm": "letter", "mlic_rs": "letter_text"}
    assert EvalSpec(source="x").choice_answer == "letter"
    with pytest.raises(ValueError, match="choice_answer"):
        EvalSpec(source="x", choice_answer="words")


def test_chance_level_is_one_over_the_options_and_for_math_the_most_common_answer(quick_world_source):
    """Brute force over the test files: 1 / options for the multiple-choice tasks; for math the share of the most
    common gold answer (a model answering one number to every question scores exactly that)."""
    from collections import Counter

    from lrmerge import pipeline
    from lrmerge.data.loaders import load_task

    source = quick_world_source
    levels = pipeline.chance_level(source)
    for spec in pipeline.study_tasks(source):
        data = load_task(spec.benchmark, source.lang, "test", source.eval_source[spec.benchmark]
                         if isinstance(source.eval_source, dict) else source.eval_source)
        if spec.benchmark == "sib200":
            assert levels["sib200"] == pytest.approx(100 / len(data.labels))
        elif spec.scorer == "letter":
            assert levels[spec.benchmark] == pytest.approx(100 / len(data.items[0].options))
        else:
            count = Counter(item.answer for item in data.items).most_common(1)[0][1]
            assert levels[spec.benchmark] == pytest.approx(100 * count / len(data.items))
            assert 0 < levels[spec.benchmark] < 100
