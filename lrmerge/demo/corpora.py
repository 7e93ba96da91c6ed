"""Monolingual corpora of the world: one document per line, each document 3-6 sentences on one topic.

English pre-training text (with a small trace of tbx documents), English replay text, and the X corpora for CT
(code-switched words, a share of parallel English-X lines). Every sentence passes the `LeakGuard`.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator

from lrmerge.demo.grammar import ClauseSampler, render
from lrmerge.demo.lexicon import Lexicon
from lrmerge.demo.tasks import LeakGuard, sample_math


def _clean_clause(rng: random.Random, sampler: ClauseSampler, topic: str | None, guard: LeakGuard,
                  lexicon: Lexicon, langs: tuple[str, ...]):
    while True:
        clause = sampler.clause(rng, topic)
        if all(guard.clean(render(clause, lang, lexicon)) for lang in langs):
            return clause


def documents(rng: random.Random, sampler: ClauseSampler, lexicon: Lexicon, guard: LeakGuard, lang: str,
              topics: list[str], code_switch_rate: float = 0.0, parallel_share: float = 0.0,
              math_share: float = 0.0, exercise_share: float = 0.0, max_operand: int = 9) -> Iterator[str]:
    """Endless documents in `lang`. English documents may include math-story sentences (no questions) and
    matching exercises (`matching_exercise`)."""
    langs = ("eng", lang) if lang != "eng" else ("eng",)
    while True:
        if lang == "eng" and rng.random() < exercise_share:
            text = matching_exercise(rng, sampler, lexicon, topics)
            if guard.clean(text):
                yield text
            continue
        if lang == "eng" and rng.random() < math_share:
            problem = sample_math(rng, max_operand)
            story = problem.question().rsplit(". ", 1)[0] + "."  # the statements, not the question
            if guard.clean(story):
                yield story + " " + problem.rationale()
            continue
        topic = rng.choice(topics) if rng.random() < 0.9 else None
        clauses = [_clean_clause(rng, sampler, topic, guard, lexicon, langs) for _ in range(rng.randint(3, 6))]
        if lang == "eng":
            yield " ".join(render(c, "eng", lexicon) for c in clauses)
        elif rng.random() < parallel_share:
            yield " ".join(f"{render(c, 'eng', lexicon)} {render(c, lang, lexicon)}" for c in clauses)
        else:
            sentences = []
            for c in clauses:
                text = render(c, lang, lexicon, rng, code_switch_rate)
                sentences.append(text if guard.clean(text) else render(c, lang, lexicon))
            yield " ".join(sentences)


def take_until(docs: Iterator[str], budget: int, sizes: Callable[[list[str]], list[int]], chunk: int = 256) -> list[str]:
    """Documents until their total size (tokens or words, `sizes` gives one per document) reaches `budget`."""
    out: list[str] = []
    total = 0
    while total < budget:
        batch = [next(docs) for _ in range(chunk)]
        for doc, size in zip(batch, sizes(batch)):
            if total >= budget:
                break
            out.append(doc)
            total += size
    return out


def word_sizes(docs: list[str]) -> list[int]:
    return [len(d.split()) for d in docs]


def matching_exercise(rng: random.Random, sampler: ClauseSampler, lexicon: Lexicon, topics: list[str]) -> str:
    """A school-book exercise of BASE's English text: sentences, four lettered words, the letter of the one word the
    sentences contain. Not the prompt format of any task (no "Answer:"), but the skill that grounded reading
    comprehension and response selection need (as a real pre-training corpus teaches Llama-2 to read)."""
    from lrmerge.demo.lexicon import GENERIC_NOUNS
    from lrmerge.prompts import option_letter

    topic = rng.choice(topics)
    clauses = [sampler.clause(rng, topic) for _ in range(rng.randint(1, 3))]
    nouns = {w for c in clauses for w in (c.subject[-1], c.object[-1], *c.place[-1:])}
    answer = rng.choice(sorted(nouns - {c.subject[-1] for c in clauses if c.subject[-1][0].isupper()}) or sorted(nouns))
    pool = [w for t in topics for w in sampler.topics[t][0]] + GENERIC_NOUNS
    options = [answer, *rng.sample([w for w in dict.fromkeys(pool) if w not in nouns], 3)]
    rng.shuffle(options)
    listed = " ".join(f"{option_letter(i)}. {w}" for i, w in enumerate(options))
    text = " ".join(render(c, "eng", lexicon) for c in clauses)
    return f"{text} Which word is in the text? {listed} It is {option_letter(options.index(answer))}."
