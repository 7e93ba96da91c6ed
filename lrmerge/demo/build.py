"""Stages of `build_world`, in order: lexicon, eval items (forbidden in all training text), English pre-training
corpus with the tbx trace, tokenizer, replay and X corpora (CT budget in tokens), SFT data, eval files, BASE.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from lrmerge.demo.base import pretrain_base
from lrmerge.demo.config import WorldConfig
from lrmerge.demo.corpora import documents, take_until, word_sizes
from lrmerge.demo.evalsets import draw_items, forbid_all, write_eval_sets
from lrmerge.demo.grammar import ClauseSampler, NoisyTranslator, build_collocations
from lrmerge.demo.lexicon import build_lexicon, topic_words
from lrmerge.demo.sft import flan_english, flan_mt
from lrmerge.demo.tasks import LeakGuard
from lrmerge.demo.tokenizer import prompt_alphabet, train_tokenizer
from lrmerge.runs import write_run_record


def _write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    _write_lines(path, [json.dumps(row, ensure_ascii=False) for row in rows])


def build_into(out: Path, config: WorldConfig, work_dir: Path, progress: bool = True) -> dict:
    """Every stage into `out`; returns the summary that goes into world.json."""
    summary, pretrain, tokenizer = build_data(out, config)
    start = time.time()
    model, base_stats = pretrain_base(pretrain, tokenizer, config.base, config.seed, work_dir, progress=progress)
    model.save_pretrained(out / "base")
    tokenizer.save_pretrained(out / "base")
    write_run_record(out / "base", config.to_dict(), seed=config.seed, stage="base", **base_stats)
    summary["base"] = base_stats
    summary["timings_s"]["base"] = round(time.time() - start, 2)
    return summary


def build_data(out: Path, config: WorldConfig) -> tuple[dict, list[str], object]:
    """Everything but BASE (deterministic text files and the tokenizer); returns (summary, BASE corpus, tokenizer)."""
    timings: dict[str, float] = {}
    clock = time.time()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.time() - clock, 2)
        clock = time.time()

    langs = ("eng", *config.languages)
    topic_table = topic_words(config.n_topics, config.topic_nouns, config.topic_verbs)
    topics = list(topic_table)
    lexicon = build_lexicon(config.seed, topic_table, config.loanword_share, tbx_spelling=config.tbx_spelling)
    collocations = build_collocations(config.seed, topic_table)
    sampler = ClauseSampler(topic_table, config.topic_purity, config.named_entities, config.digits,
                            collocations=collocations, collocation_strength=config.collocation_strength)
    eval_sampler = ClauseSampler(topic_table, config.topic_purity, config.named_entities, config.digits,
                                 avoid=lexicon.loanwords if config.anchor_free_eval else frozenset(),
                                 collocations=collocations, collocation_strength=config.collocation_strength)
    items = draw_items(config, eval_sampler, lexicon, topics)
    guard = LeakGuard()
    forbid_all(items, lexicon, ("eng", "tbx", "mnx"), guard)
    lap("eval_items")

    # English pre-training corpus of BASE, with a small trace of tbx documents mixed in.
    rng = random.Random(f"pretrain-{config.seed}")
    english = take_until(documents(rng, sampler, lexicon, guard, "eng", topics, math_share=0.1,
                                   exercise_share=config.exercise_share,
                                   max_operand=config.math_max_operand),
                         config.en_pretrain_tokens, word_sizes)
    n_trace = round(config.base_trace_share * len(english) / max(1e-9, 1 - config.base_trace_share))
    trace_docs = documents(random.Random(f"trace-{config.seed}"), sampler, lexicon, guard, "tbx", topics)
    pretrain = list(english)
    for _ in range(n_trace):
        pretrain.insert(rng.randrange(len(pretrain) + 1), next(trace_docs))
    _write_lines(out / "corpus" / "en_pretrain.txt", pretrain)
    lap("en_pretrain")

    tokenizer = train_tokenizer(pretrain + prompt_alphabet(topics, max(4, len(pretrain) // 100)), config.vocab_size)
    tokenizer.save_pretrained(out / "tokenizer")
    lap("tokenizer")

    def token_sizes(docs: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(docs, add_special_tokens=False)["input_ids"]]

    replay_tokens = int(1.5 * config.ct_tokens * config.replay_share / max(1e-9, 1 - config.replay_share)) + 1
    replay = take_until(documents(random.Random(f"replay-{config.seed}"), sampler, lexicon, guard, "eng", topics,
                                  math_share=0.1, max_operand=config.math_max_operand), replay_tokens, token_sizes)
    _write_lines(out / "corpus" / "en_replay.txt", replay)
    sizes = {"en_pretrain_lines": len(pretrain), "en_pretrain_trace_lines": n_trace,
             "en_pretrain_tokens": sum(token_sizes(pretrain)), "en_replay_tokens": sum(token_sizes(replay))}
    for lang in config.languages:
        parallel_share, code_switch_rate = config.anchors(lang)
        docs = documents(random.Random(f"corpus-{config.seed}-{lang}"), sampler, lexicon, guard, lang, topics,
                         code_switch_rate=code_switch_rate, parallel_share=parallel_share)
        corpus = take_until(docs, config.ct_tokens, token_sizes)
        _write_lines(out / "corpus" / f"{lang}.txt", corpus)
        sizes[f"{lang}_ct_tokens"] = sum(token_sizes(corpus))
    lap("corpora")

    flan = flan_english(config.sft_items, config.seed, sampler, lexicon, topics, guard, config.choice_answer,
                        config.math_max_operand)
    _write_jsonl(out / "sft" / "flan_en.jsonl", flan)
    translator = NoisyTranslator(lexicon, config.seed, config.mt_noise())
    for lang in config.languages:
        _write_jsonl(out / "sft" / f"flan_mt_{lang}.jsonl",
                     flan_mt(flan, lang, translator, config.mt_translated_share, config.seed, guard))
    write_eval_sets(out / "eval", items, lexicon, langs, topics)
    (out / "lexicon.tsv").write_text(lexicon.to_tsv(tuple(config.languages)), encoding="utf-8")
    sizes["sft_items"] = len(flan)
    sizes["eval"] = {task: list(map(len, splits.values())) for task, splits in items.items()}
    lap("sft_eval")

    word = next(w for w in lexicon.english if w not in lexicon.loanwords)
    tok_probe = {lang: [lexicon.word(word, lang), tokenizer.tokenize(lexicon.word(word, lang))] for lang in langs}
    return {
        "topics": topics,
        "lexicon": {"english_words": len(lexicon.english), "loanwords": sorted(lexicon.loanwords)},
        "sizes": sizes,
        "tokenization_example": tok_probe,
        "timings_s": timings,
    }, pretrain, tokenizer
