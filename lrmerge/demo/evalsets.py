"""Eval files of the world in the real benchmarks' schemas (SIB-200, Belebele, MGSM, MLiC-Eval TC/RS/MRC/Math).

Items are drawn once in English structure (distinct, dev and test disjoint) and rendered in every language, so the
sets are parallel across languages like SIB-200 and Belebele.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

from lrmerge.demo.config import FLORES_CODE, WorldConfig
from lrmerge.demo.grammar import ClauseSampler, render
from lrmerge.demo.lexicon import TOPIC_LABELS_ZH, Lexicon
from lrmerge.demo.tasks import (LeakGuard, render_item_texts, render_options, render_question, sample_math,
                                sample_reading, sample_selection, translate_plain)
from lrmerge.prompts import option_letter

SPLITS = ("dev", "test")


def draw_items(config: WorldConfig, sampler: ClauseSampler, lexicon: Lexicon, topics: list[str]) -> dict:
    """task -> split -> distinct items (English structures); no text repeats across tasks or splits."""
    rng = random.Random(f"eval-{config.seed}")
    seen: set[str] = set()
    draw = {
        "sib200": lambda: sampler.clause(rng, rng.choice(topics)),
        "mlic_tc": lambda: sampler.clause(rng, rng.choice(topics)),
        "belebele": lambda: sample_reading(rng, sampler, topics),
        "mlic_mrc": lambda: sample_reading(rng, sampler, topics),
        "mlic_rs": lambda: sample_selection(rng, sampler, topics),
        "mgsm": lambda: sample_math(rng, config.math_max_operand),
        "mlic_math": lambda: sample_math(rng, config.math_max_operand),
    }
    items: dict = {}
    for task, (n_dev, n_test) in config.sizes.items():
        items[task] = {}
        for split, n in zip(SPLITS, (n_dev, n_test)):
            chosen = []
            for _ in range(200 * n):
                item = draw[task]()
                key = render_item_texts(item, "eng", lexicon)[0]
                if key not in seen:
                    seen.add(key)
                    chosen.append(item)
                    if len(chosen) == n:
                        break
            else:
                raise ValueError(f"WorldConfig.sizes[{task!r}]: cannot draw {n} distinct {split} items; lower it")
            items[task][split] = chosen
    return items


def forbid_all(items: dict, lexicon: Lexicon, langs: tuple[str, ...], guard: LeakGuard) -> None:
    for splits in items.values():
        for chosen in splits.values():
            for item in chosen:
                for lang in langs:
                    for text in render_item_texts(item, lang, lexicon):
                        guard.forbid(text)


def _tsv(rows: list[list[str]], header: list[str] | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_eval_sets(folder: Path, items: dict, lexicon: Lexicon, langs: tuple[str, ...], topics: list[str]) -> None:
    for lang in langs:
        code = FLORES_CODE[lang]
        for split in SPLITS:
            files = {
                f"sib200/{code}/{split}.tsv": _sib(items["sib200"][split], lang, lexicon, split),
                f"belebele/{code}/{split}.jsonl": _belebele(items["belebele"][split], lang, lexicon, split),
                f"mgsm/{lang}/{split}.tsv": _tsv([[translate_plain(p.question(), lang, lexicon), str(p.answer)]
                                                  for p in items["mgsm"][split]]),
                f"mlic/tc/{lang}/{split}.json": _json([
                    {"id": f"tc-{split}-{i}", "text": render(c, lang, lexicon),
                     "label": {"en": c.topic, "zh": TOPIC_LABELS_ZH[c.topic]}}
                    for i, c in enumerate(items["mlic_tc"][split])]),
                f"mlic/rs/{lang}/{split}.json": _json([
                    {"id": f"rs-{split}-{i}", "context": [render(c, lang, lexicon) for c in it.context],
                     "options": render_options(it.options, lang, lexicon), "answer": option_letter(it.answer)}
                    for i, it in enumerate(items["mlic_rs"][split])]),
                f"mlic/mrc/{lang}/{split}.json": _json([
                    {"id": f"mrc-{split}-{i}", "context": render_item_texts(it, lang, lexicon)[0],
                     "question": render_question(it, lang, lexicon), "options": render_options(it.options, lang, lexicon),
                     "answer": option_letter(it.answer)}
                    for i, it in enumerate(items["mlic_mrc"][split])]),
                f"mlic/math/{lang}/{split}.json": _json([
                    {"id": f"math-{split}-{i}", "question": translate_plain(p.question(), lang, lexicon),
                     "cot": {"en": f"{p.rationale()} The answer is {p.answer}.",
                             "zh": f"{p.a} {'+-*'[('add', 'sub', 'mul').index(p.kind)]} {p.b} = {p.answer}，答案是 {p.answer}。"},
                     "answer": p.answer}
                    for i, p in enumerate(items["mlic_math"][split])]),
            }
            for rel, text in files.items():
                path = folder / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        (folder / f"sib200/{code}/labels.txt").write_text("\n".join(topics) + "\n", encoding="utf-8")


def _json(rows: list[dict]) -> str:
    return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"


def _sib(clauses: list, lang: str, lexicon: Lexicon, split: str) -> str:
    return _tsv([[str(i), c.topic, render(c, lang, lexicon)] for i, c in enumerate(clauses)],
                header=["index_id", "category", "text"])


def _belebele(readings: list, lang: str, lexicon: Lexicon, split: str) -> str:
    lines = []
    for i, it in enumerate(readings):
        row = {"link": f"demo://belebele/{split}/{i}", "question_number": 1,
               "flores_passage": render_item_texts(it, lang, lexicon)[0],
               "question": render_question(it, lang, lexicon)}
        row.update({f"mc_answer{k + 1}": option for k, option in enumerate(render_options(it.options, lang, lexicon))})
        row.update({"correct_answer_num": str(it.answer + 1), "dialect": FLORES_CODE[lang], "ds": "demo"})
        lines.append(json.dumps(row, ensure_ascii=False))
    return "\n".join(lines) + "\n"
