"""FLAN-style SFT data of the world, built with `lrmerge.prompts` (the templates evaluation uses).

flan_en: English instances of four task shapes (topic, reading comprehension, response selection, GSM8K-style math
with a worked rationale). flan_mt_<x>: the same instances, a share of them machine-translated into X by the
world's `NoisyTranslator` (the paper translates half, section 4).
"""

from __future__ import annotations

import random

from lrmerge import prompts
from lrmerge.demo.grammar import ClauseSampler, NoisyTranslator, render
from lrmerge.demo.lexicon import Lexicon
from lrmerge.demo.tasks import (LeakGuard, render_item_texts, render_options, render_question, sample_math,
                                sample_reading, sample_selection)

# every task shape gets enough items to be learnt by a 4-layer model in one pass (RC and RS are copy / match tasks)
SFT_TASK_MIX = {"topic": 0.3, "reading": 0.25, "selection": 0.2, "math": 0.25}


def english_instance(task: str, rng: random.Random, sampler: ClauseSampler, lexicon: Lexicon,
                     topics: list[str]) -> tuple[dict, object]:
    if task == "topic":
        topic = rng.choice(topics)
        clause = sampler.clause(rng, topic)
        prompt = prompts.topic_prompt(render(clause, "eng", lexicon), topics)
        return {"prompt": prompt, "response": prompts.letter_answer(topics.index(topic))}, clause
    if task == "reading":
        item = sample_reading(rng, sampler, topics)
        passage = render_item_texts(item, "eng", lexicon)[0]
        prompt = prompts.choice_prompt(passage, render_question(item, "eng", lexicon),
                                        render_options(item.options, "eng", lexicon))
        return {"prompt": prompt, "response": prompts.letter_answer(item.answer)}, item
    if task == "selection":
        item = sample_selection(rng, sampler, topics)
        context = "\n".join(render(c, "eng", lexicon) for c in item.context)  # turns, as lrmerge.data.mlic joins them
        options = [render(c, "eng", lexicon) for c in item.options]
        prompt = prompts.choice_prompt(context, prompts.RESPONSE_SELECTION_QUESTION, options)
        return {"prompt": prompt, "response": prompts.letter_answer(item.answer)}, item
    if task == "math":
        problem = sample_math(rng)
        return {"prompt": prompts.math_prompt(problem.question()),
                "response": prompts.math_answer(problem.answer, problem.rationale())}, problem
    raise ValueError(f"unknown SFT task {task!r}; allowed: {tuple(SFT_TASK_MIX)}")


def flan_english(n_items: int, seed: int, sampler: ClauseSampler, lexicon: Lexicon, topics: list[str],
                 guard: LeakGuard) -> list[dict]:
    rng = random.Random(f"sft-{seed}")
    tasks, weights = list(SFT_TASK_MIX), list(SFT_TASK_MIX.values())
    rows = []
    while len(rows) < n_items:
        task = rng.choices(tasks, weights)[0]
        row, _ = english_instance(task, rng, sampler, lexicon, topics)
        if guard.clean(row["prompt"]):
            rows.append({**row, "task": task, "lang": "eng"})
    return rows


def flan_mt(rows: list[dict], lang: str, translator: NoisyTranslator, translated_share: float, seed: int,
            guard: LeakGuard) -> list[dict]:
    """A share of the English instances, prompt and response, translated into `lang`; the rest stay English."""
    rng = random.Random(f"mt-pick-{seed}-{lang}")
    out = []
    for row in rows:
        if rng.random() >= translated_share:
            out.append(dict(row))
            continue
        for _ in range(5):
            prompt, response = translator.translate_instance(row["prompt"], row["response"], lang)
            if guard.clean(prompt):
                out.append({**row, "prompt": prompt, "response": response, "lang": lang})
                break
        else:
            out.append(dict(row))
    return out
