"""The embedded demo world (quick profile): determinism, leak-free splits, tokenization, schemas, MT noise, BASE."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lrmerge.demo import WorldConfig, build_world, profile_config  # noqa: E402
from lrmerge.demo.build import build_data  # noqa: E402
from lrmerge.demo.lexicon import MNX_LETTERS, TBX_LETTERS  # noqa: E402

CODES = {"eng": "eng_Latn", "tbx": "tbx_Tibt", "mnx": "mnx_Mong"}
TEXT_FILES = ("corpus", "sft", "eval", "lexicon.tsv", "tokenizer/tokenizer.json")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(profile_config("quick"), root=tmp_path_factory.mktemp("world"), progress=False)


def _files(root: Path) -> dict[str, bytes]:
    out = {}
    for rel in TEXT_FILES:
        path = root / rel
        for f in sorted([path] if path.is_file() else path.rglob("*")):
            if f.is_file():
                out[str(f.relative_to(root))] = f.read_bytes()
    return out


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    small = dict(ct_tokens=5_000, en_pretrain_tokens=8_000, sft_items=60)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        build_data(tmp_path / name, profile_config("quick", seed=seed, **small))
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert len(a) > 40 and a == b
    differing = [k for k in a if a[k] != c.get(k)]
    assert "corpus/tbx.txt" in differing and "sft/flan_en.jsonl" in differing and "eval/sib200/mnx_Mong/test.tsv" in differing


def _eval_texts(eval_dir: Path) -> list[str]:
    texts = []
    for f in eval_dir.glob("sib200/*/*.tsv"):
        texts += [r["text"] for r in csv.DictReader(f.open(encoding="utf-8"), delimiter="\t")]
    for f in eval_dir.glob("belebele/*/*.jsonl"):
        texts += [json.loads(line)["flores_passage"] for line in f.read_text(encoding="utf-8").splitlines()]
    for f in eval_dir.glob("mgsm/*/*.tsv"):
        texts += [line.split("\t")[0] for line in f.read_text(encoding="utf-8").splitlines()]
    for f in eval_dir.glob("mlic/*/*/*.json"):
        for row in json.loads(f.read_text(encoding="utf-8")):
            texts += [row[k] for k in ("text", "question") if k in row]
            context = row.get("context", [])
            texts += [context] if isinstance(context, str) else context  # options: single words (RS, MRC), no texts
    return texts


def test_no_eval_text_in_any_training_line(world):
    training = [world.en_pretrain, world.en_replay, *(world.corpus(x) for x in ("tbx", "mnx"))]
    blob = "\n".join(p.read_text(encoding="utf-8") for p in training)
    for path in [world.sft_flan, world.sft_mt("tbx"), world.sft_mt("mnx")]:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        blob += "\n" + "\n".join(r["prompt"] + r["response"] for r in rows)
    texts = _eval_texts(world.eval_dir)
    assert len(texts) > 1000  # a real eval set, not a handful of items
    leaked = [t for t in set(texts) if t in blob]
    assert leaked == []


def test_splits_disjoint_and_items_distinct(world):
    for code in CODES.values():
        dev, test = ([r["text"] for r in csv.DictReader((world.eval_dir / f"sib200/{code}/{s}.tsv").open(encoding="utf-8"),
                                                        delimiter="\t")] for s in ("dev", "test"))
        if code != "mnx_Mong":  # mnx renders are distinct per English item too, checked through English
            assert len(set(test)) == len(test) and not set(dev) & set(test)
    for lang in CODES:
        dev, test = ([line.split("\t")[0] for line in (world.eval_dir / f"mgsm/{lang}/{s}.tsv").read_text("utf-8").splitlines()]
                     for s in ("dev", "test"))
        assert not set(dev) & set(test)


def test_far_language_is_bytes_close_language_letters_are_tokens(world):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(world.tokenizer)
    lex = [line.split("\t") for line in world.lexicon.read_text("utf-8").splitlines()]
    assert lex[0] == ["eng", "tbx", "mnx"]
    mnx_words = [r[2] for r in lex[1:] if r[2][0] in MNX_LETTERS]
    assert len(mnx_words) > 100
    for word in mnx_words[:50]:
        pieces = tok.tokenize(word)
        assert [p for p in pieces if p != "\u2581"] and all(re.fullmatch(r"<0x[0-9A-F]{2}>", p) for p in pieces if p != "\u2581")
        assert len([p for p in pieces if p != "\u2581"]) == 3 * len(word)
        assert tok.decode(tok(word, add_special_tokens=False)["input_ids"]) == word
    used = {ch for r in lex[1:] for ch in r[1] if ch in TBX_LETTERS}
    assert len(used) > 20
    for letter in used:
        ids = tok(letter, add_special_tokens=False)["input_ids"]
        pieces = [p for p in tok.convert_ids_to_tokens(ids) if p != "\u2581"]
        assert len(pieces) == 1 and not pieces[0].startswith("<0x"), (letter, pieces)
    vocab = tok.get_vocab()
    assert all(f"<0x{i:02X}>" in vocab for i in range(256)) and "<0x41>" not in tok.all_special_tokens


def test_eval_files_follow_benchmark_schemas(world):
    ev = world.eval_dir
    sizes = world.record()["config"]["sizes"]  # (dev, test) per task, as configured
    for lang, code in CODES.items():
        labels = (ev / f"sib200/{code}/labels.txt").read_text("utf-8").splitlines()
        assert len(labels) == 7 == len(set(labels))
        for split in ("dev", "test"):
            with (ev / f"sib200/{code}/{split}.tsv").open(encoding="utf-8") as handle:
                assert handle.readline().rstrip("\n").split("\t") == ["index_id", "category", "text"]
            rows = list(csv.DictReader((ev / f"sib200/{code}/{split}.tsv").open(encoding="utf-8"), delimiter="\t"))
            assert rows and {r["category"] for r in rows} <= set(labels)
            assert len(rows) == sizes["sib200"][split == "test"]
            for line in (ev / f"belebele/{code}/{split}.jsonl").read_text("utf-8").splitlines():
                row = json.loads(line)
                assert set(row) == {"link", "question_number", "flores_passage", "question", "mc_answer1", "mc_answer2",
                                    "mc_answer3", "mc_answer4", "correct_answer_num", "dialect", "ds"}
                assert row["correct_answer_num"] in {"1", "2", "3", "4"} and row["dialect"] == code
            for line in (ev / f"mgsm/{lang}/{split}.tsv").read_text("utf-8").splitlines():
                question, answer = line.split("\t")
                assert question and int(answer) >= 0
            for row in json.loads((ev / f"mlic/rs/{lang}/{split}.json").read_text("utf-8")):
                assert set(row) == {"id", "context", "options", "answer"} and len(row["options"]) == 4
                assert row["answer"] in "ABCD" and len(row["answer"]) == 1
            for row in json.loads((ev / f"mlic/tc/{lang}/{split}.json").read_text("utf-8")):
                assert row["label"]["en"] in labels and row["label"]["zh"]
            for row in json.loads((ev / f"mlic/mrc/{lang}/{split}.json").read_text("utf-8")):
                assert "ABCD".index(row["answer"]) < len(row["options"]) == 4
            for row in json.loads((ev / f"mlic/math/{lang}/{split}.json").read_text("utf-8")):
                assert isinstance(row["answer"], int) and set(row["cot"]) == {"en", "zh"}
    # the gate's ">= 500 test items" holds for the demo profile (the quick one is smaller, for speed)
    assert profile_config("demo").sizes["sib200"][1] >= 500


def test_x_eval_text_is_in_x_script(world):
    for code, letters in (("tbx_Tibt", TBX_LETTERS), ("mnx_Mong", MNX_LETTERS)):
        rows = list(csv.DictReader((world.eval_dir / f"sib200/{code}/test.tsv").open(encoding="utf-8"), delimiter="\t"))
        share = sum(ch in letters for r in rows for ch in r["text"]) / sum(len(r["text"]) for r in rows)
        assert share > 0.5


def test_mt_variant_half_translated_with_noise(world):
    lex = [line.split("\t") for line in world.lexicon.read_text("utf-8").splitlines()[1:]]
    enciphered = {r[0] for r in lex if r[1] != r[0]}
    english = [json.loads(line) for line in world.sft_flan.read_text("utf-8").splitlines()]
    for lang, letters in (("tbx", TBX_LETTERS), ("mnx", MNX_LETTERS)):
        rows = [json.loads(line) for line in world.sft_mt(lang).read_text("utf-8").splitlines()]
        assert len(rows) == len(english) and {r["task"] for r in rows} == {r["task"] for r in english}
        translated = [(e, r) for e, r in zip(english, rows) if r["lang"] == lang]
        assert 0.4 < len(translated) / len(rows) < 0.6
        assert all(any(ch in letters for ch in r["prompt"]) for _, r in translated)
        assert all(r == e for e, r in zip(english, rows) if r["lang"] == "eng")
        # an exact translation leaves no enciphered English word and repeats no word; the noisy one does both
        untranslated = sum(bool(enciphered & set(re.findall(r"[a-z]+", r["prompt"]))) for _, r in translated)
        repeated = sum(bool(re.search(r"(?:^|\s)(\S+) \1(?:\s|$)", r["prompt"])) for _, r in translated)
        assert untranslated / len(translated) > 0.3 and repeated / len(translated) > 0.1


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="languages"):
        WorldConfig(languages=("tbx", "klingon"))
    with pytest.raises(ValueError, match="ct_tokens"):
        WorldConfig(ct_tokens=-5)
    with pytest.raises(ValueError, match="loanword_share"):
        WorldConfig(loanword_share=1.5)
    with pytest.raises(ValueError, match="quick"):
        profile_config("huge")
    with pytest.raises(ValueError, match=r"far_language_anchors\['eng'\]"):
        WorldConfig(far_language_anchors={"eng": (0.1, 0.1)})
    with pytest.raises(ValueError, match=r"far_language_anchors\['mnx'\]"):
        WorldConfig(far_language_anchors={"mnx": (0.4, 1.5)})


def test_far_language_corpus_gets_its_own_anchor_shares(world):
    """mnx's CT corpus has more parallel lines (English sentence then its translation) than tbx's, per the config."""
    config = profile_config("quick")
    shares = {}
    for lang in ("tbx", "mnx"):
        lines = world.corpus(lang).read_text("utf-8").splitlines()
        shares[lang] = sum(bool(re.match(r"[A-Z][^.]*\.\s", line)) for line in lines) / len(lines)
    assert config.anchors("tbx") == (config.parallel_share, config.code_switch_rate)
    assert config.anchors("mnx") == config.far_language_anchors["mnx"]
    assert shares["mnx"] > shares["tbx"] + 0.1, shares


def test_mnx_topic_words_are_one_letter_of_their_own(world):
    """Enciphered mnx topic words are single letters used by no other mnx word (3 byte tokens); the rest are 2."""
    from lrmerge.demo.lexicon import TOPIC_NOUNS, TOPIC_VERBS

    topical = {w for words in (*TOPIC_NOUNS.values(), *TOPIC_VERBS.values()) for w in words}
    rows = [line.split("\t") for line in world.lexicon.read_text("utf-8").splitlines()[1:]]
    enciphered = [(eng, mnx) for eng, _, mnx in rows if mnx != eng]
    topic = [mnx for eng, mnx in enciphered if eng in topical]
    other = [mnx for eng, mnx in enciphered if eng not in topical]
    assert topic and all(len(w) == 1 for w in topic) and all(len(w) == 2 for w in other)
    assert not set(topic) & {ch for w in other for ch in w}


def test_world_is_cached_and_cli_prints_paths(world, capsys):
    import argparse

    from lrmerge.demo import cli

    stamp = world.world_json.stat().st_mtime_ns
    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)
    assert cli.run(parser.parse_args(["--profile", "quick", "--root", str(world.root.parent)])) == 0
    out = capsys.readouterr().out
    assert "(cached)" in out and str(world.base) in out and world.world_json.stat().st_mtime_ns == stamp
    record = json.loads((world.base / "lrmerge_run.json").read_text())
    assert record["seed"] == 0 and record["config"]["ct_tokens"] == 40_000 and "torch" in record["versions"]


@pytest.mark.slow
def test_base_knows_english_not_x(world):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lrmerge.eval.perplexity import perplexity

    model = AutoModelForCausalLM.from_pretrained(world.base)
    tok = AutoTokenizer.from_pretrained(world.base)
    texts = {lang: [r["text"] for r in csv.DictReader((world.eval_dir / f"sib200/{code}/test.tsv").open(encoding="utf-8"),
                                                       delimiter="\t")][:60] for lang, code in CODES.items()}
    ppl = {lang: perplexity(model, tok, t) for lang, t in texts.items()}
    assert ppl["eng"] * 3 < ppl["tbx"] and ppl["eng"] * 3 < ppl["mnx"], ppl


def test_base_pretraining_resumes_to_the_same_weights(tmp_path):
    import torch

    from lrmerge.demo.base import pretrain_base
    from lrmerge.demo.config import BaseModelConfig
    from lrmerge.demo.tokenizer import train_tokenizer

    docs = [f"The doctor {v} the patient near the river in {1950 + i}." for i, v in
            enumerate(["treats", "heals", "sees", "knows"] * 40)]
    tok = train_tokenizer(docs, 600)
    config = BaseModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, seq_len=32, batch_size=4)
    full, stats = pretrain_base(docs, tok, config, seed=3, work_dir=tmp_path / "a", save_every=2, progress=False)
    state = torch.load(tmp_path / "a" / "pretrain_state.pt", weights_only=True)
    assert stats["steps"] > 4 and 0 < state["step"] < stats["steps"]
    resumed, _ = pretrain_base(docs, tok, config, seed=3, work_dir=tmp_path / "a", save_every=0, progress=False)
    fresh, _ = pretrain_base(docs, tok, config, seed=4, work_dir=tmp_path / "b", save_every=0, progress=False)
    for (name, p), q, r in zip(full.named_parameters(), resumed.parameters(), fresh.parameters()):
        assert torch.equal(p, q), name
    assert not all(torch.equal(p, r) for p, r in zip(full.parameters(), fresh.parameters()))


def test_project_loaders_read_every_eval_file(world):
    loaders = pytest.importorskip("lrmerge.data.loaders")
    sizes = json.loads(world.world_json.read_text())["sizes"]["eval"]
    for benchmark, (n_dev, n_test) in sizes.items():
        for lang in CODES:
            for split, n in (("dev", n_dev), ("test", n_test)):
                data = loaders.load_task(benchmark, lang, split, world.eval_dir)
                assert len(data.items) == n, (benchmark, lang, split)
                if benchmark in ("sib200", "mlic_tc"):
                    assert len(data.labels) == 7


def test_answer_letters_are_single_tokens_base_never_saw(world):
    from transformers import AutoTokenizer

    from lrmerge import prompts

    tok = AutoTokenizer.from_pretrained(world.tokenizer)
    labels = (world.eval_dir / "sib200/tbx_Tibt/labels.txt").read_text("utf-8").splitlines()
    prompt = prompts.topic_prompt("ཀ ཁ །", labels)
    n = len(tok(prompt)["input_ids"])
    tails = [tok(prompt + prompts.letter_answer(i))["input_ids"][n:] for i in range(len(labels))]
    assert all(len(t) == 1 for t in tails) and len({t[0] for t in tails}) == len(labels)
    assert not any(p.startswith("<0x") for p in tok.tokenize(prompt))
    corpus = world.en_pretrain.read_text("utf-8")
    assert "Answer:" not in corpus  # BASE never sees the prompts' answer cue
    # lone option letters only in the matching exercises (WorldConfig.exercise_share), never after "Answer:"
    other = [line for line in corpus.splitlines() if "Which word is in the text?" not in line]
    assert not re.search(r"(?:^|\s)[A-J](?:[\s.:]|$)", "\n".join(other))


def test_collocations_make_topic_words_distinguishable():
    """Each noun of a topic has its own (subject-of, object-of) verb pair, and sampled clauses follow the partners at
    about the configured strength (without partners a topic's words are exchangeable and cannot be aligned)."""
    import random

    from lrmerge.demo.grammar import ClauseSampler, build_collocations
    from lrmerge.demo.lexicon import topic_words

    table = topic_words(7, 8, 4)
    col = build_collocations(0, table)
    for nouns, verbs in table.values():
        signature = {n: (tuple(v for v in verbs if n in col.subjects[v]), tuple(v for v in verbs if n in col.objects[v]))
                     for n in nouns}
        assert all(len(s) == 1 and len(o) == 1 for s, o in signature.values())
        assert len(set(signature.values())) == len(nouns)
    sampler = ClauseSampler(table, 1.0, False, False, collocations=col, collocation_strength=0.8)
    rng, hits, n = random.Random(1), 0, 3000
    for _ in range(n):
        clause = sampler.clause(rng, rng.choice(list(table)))
        hits += clause.subject[-1] in col.subjects[clause.verb]
    # partner with prob 0.8, plus 0.2 x (2 partners / 8 nouns) by chance
    assert abs(hits / n - (0.8 + 0.2 * 2 / 8)) < 0.03
    with pytest.raises(ValueError, match="collocations"):
        ClauseSampler(table, 1.0, False, False, collocation_strength=0.5)


def test_base_shape_from_json_is_a_base_model_config_with_the_same_key():
    """`source_options` JSON and the experiments' --world give BASE's shape as a dict: it becomes a BaseModelConfig,
    keyed as the dataclass given directly; unknown fields are refused by name."""
    from lrmerge.demo.config import BaseModelConfig
    from lrmerge.runs import config_key

    from_json = WorldConfig(base={"num_layers": 2, "hidden_size": 48})
    direct = WorldConfig(base=BaseModelConfig(num_layers=2, hidden_size=48))
    assert isinstance(from_json.base, BaseModelConfig) and from_json.base.num_layers == 2
    assert config_key(from_json.to_dict()) == config_key(direct.to_dict()) != config_key(WorldConfig().to_dict())
    with pytest.raises(ValueError, match="WorldConfig.base: unknown field.*'layers'"):
        WorldConfig(base={"layers": 2})
