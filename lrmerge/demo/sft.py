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

# shares of the SFT items per task shape, filled exactly (rejected items are redrawn within their task). Math gets
# the most: the addition facts are what SFT-flan has to learn there (English dev, one seed each, measured with
# experiments/task_probe.py: 400 math items 7-15%, 1000 37%, 1200 64%); topic, reading and selection are learnt
# from 300-400 items (96-98%, 83-84% and 100% with letter-and-text answers).
SFT_TASK_MIX = {"topic": 0.2, "reading": 0.2, "selection": 0.15, "math": 0.45}


def english_instance(task: str, rng: random.Random, sampler: ClauseSampler, lexicon: Lexicon,
                     topics: list[str], answer_format: str = "letter_text",
                     max_operand: int = 9) -> tuple[dict, object]:
    if task == "topic":
        topic = rng.choice(topics)
        clause = sampler.clause(rng, topic)
        prompt = prompts.topic_prompt(render(clause, "eng", lexicon), topics)
        return {"prompt": prompt, "response": prompts.letter_answer(topics.index(topic))}, clause
    if task == "reading":
        item = sample_reading(rng, sampler, topics)
        passage = render_item_texts(item, "eng", lexicon)[0]
        options = render_options(item.options, "eng", lexicon)
        prompt = prompts.choice_prompt(passage, render_question(item, "eng", lexicon), options)
        return {"prompt": prompt, "response": prompts.choice_answer(item.answer, options[item.answer], answer_format)}, item
    if task == "selection":
        item = sample_selection(rng, sampler, topics)
        context = "\n".join(render(c, "eng", lexicon) for c in item.context)  # turns, as lrmerge.data.mlic joins them
        options = render_options(item.options, "eng", lexicon)
        prompt = prompts.choice_prompt(context, prompts.RESPONSE_SELECTION_QUESTION, options)
        return {"prompt": prompt, "response": prompts.choice_answer(item.answer, options[item.answer], answer_format)}, item
    if task == "math":
        problem = sample_math(rng, max_operand)
        return {"prompt": prompts.math_prompt(problem.question()),
                "response": prompts.math_answer(problem.answer, problem.rationale())}, problem
    raise ValueError(f"unknown SFT task {task!r}; allowed: {tuple(SFT_TASK_MIX)}")


def flan_english(n_items: int, seed: int, sampler: ClauseSampler, lexicon: Lexicon, topics: list[str],
                 guard: LeakGuard, answer_format: str = "letter_text", max_operand: int = 9) -> list[dict]:
    """n_items English instances, each task shape its exact share of `SFT_TASK_MIX`, in a seeded random order."""
    rng = random.Random(f"sft-{seed}")
    quotas = {task: round(share * n_items) for task, share in SFT_TASK_MIX.items()}
    quotas["topic"] += n_items - sum(quotas.values())
    rows = []
    for task, quota in quotas.items():
        kept = 0
        for _ in range(200 * max(1, quota)):
            if kept == quota:
                break
            row, _ = english_instance(task, rng, sampler, lexicon, topics, answer_format, max_operand)
            if guard.clean(row["prompt"]):
                rows.append({**row, "task": task, "lang": "eng"})
                kept += 1
        if kept < quota:
            raise ValueError(f"WorldConfig.sft_items: cannot draw {quota} clean {task} items; lower it")
    rng.shuffle(rows)
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
