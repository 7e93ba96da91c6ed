"""Evaluation items of the world, generated once in English structure and rendered in every language (parallel,
as SIB-200 and Belebele are), plus the `LeakGuard` that keeps every eval sentence out of all training text.

Task generators are shared with the SFT data (`lrmerge.demo.sft`) so train and eval differ only in their items.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Sequence

from lrmerge.demo.grammar import Clause, ClauseSampler, render
from lrmerge.demo.lexicon import MATH_ITEMS, NAMES, SENTENCE_END, Lexicon

_SENTENCE = re.compile(r"[^.?\u0f0d\u1803]*[.?\u0f0d\u1803]|[^.?\u0f0d\u1803]+$")
_WORD_START = re.compile(r"(?:^|(?<=[\s\u202f]))\S")


class LeakGuard:
    """Forbids the first sentence of every eval text (all languages) in training text.

    If an eval text were a substring of a training line, its first sentence would be a word-suffix of a training
    sentence (sentences end with . ? U+0F0D or U+1803; sentence-initial words are no proper suffix of any word,
    see `lexicon.check_suffix_free`), so checking word-suffixes of every training sentence suffices.
    """

    def __init__(self) -> None:
        self.forbidden: set[str] = set()

    def forbid(self, text: str) -> None:
        first = _SENTENCE.match(text.strip())
        self.forbidden.add((first.group(0) if first else text).strip())

    def clean(self, text: str) -> bool:
        for sentence in _SENTENCE.findall(text):
            sentence = sentence.strip()
            for match in _WORD_START.finditer(sentence):
                if sentence[match.start():] in self.forbidden:
                    return False
        return True


# ---------------------------------------------------------------- items in English structure


@dataclass(frozen=True)
class MathProblem:
    kind: str
    name: str
    other: str
    item: str
    a: int
    b: int

    @property
    def answer(self) -> int:
        return {"add": self.a + self.b, "sub": self.a - self.b, "mul": self.a * self.b}[self.kind]

    def question(self) -> str:
        n, it, a, b = self.name, self.item, self.a, self.b
        if self.kind == "add":
            return f"{n} has {a} {it}. {n} buys {b} more {it}. How many {it} does {n} have now?"
        if self.kind == "sub":
            return f"{n} has {a} {it}. {n} gives {b} {it} to {self.other}. How many {it} does {n} have now?"
        return f"{n} has {a} bags. Each bag has {b} {it}. How many {it} are there in total?"

    def rationale(self) -> str:
        op = {"add": "+", "sub": "-", "mul": "*"}[self.kind]
        return f"{self.name} has {self.a} {op} {self.b} = {self.answer} {self.item}."


def sample_math(rng: random.Random, max_operand: int = 9) -> MathProblem:
    """One addition with operands 1..max_operand (one operation, small numbers: a 4-layer model copies operands
    every time and the addition facts are the limit; with operands up to 60 and three operations SFT-flan sat at
    21.5% on English, with 1-9 it reached 45.5%, measured before this change)."""
    name, other = rng.sample(NAMES, 2)
    a, b = rng.randint(1, max_operand), rng.randint(1, max_operand)
    return MathProblem("add", name, other, rng.choice(MATH_ITEMS), a, b)


@dataclass(frozen=True)
class ReadingItem:
    """Belebele / MLiC MRC: a passage of three clauses with named subjects; the question "<Name> <verb> what?"
    asks for the object of one clause; options are four nouns (of any topic, or topic-neutral), exactly one of which (the
    answer) occurs in the passage. The answer is grounded in the passage: a reader that matches options against
    the passage gets it right; the topic is no cue."""

    passage: tuple[Clause, ...]
    target: int  # which clause is asked about
    options: tuple[str, ...]  # English nouns; rendered in each language by `render_options`
    answer: int


def _clause_nouns(clause: Clause) -> set[str]:
    return {clause.subject[-1], clause.object[-1], *clause.place[-1:]}


def sample_reading(rng: random.Random, sampler: ClauseSampler, topics: list[str]) -> ReadingItem:
    from lrmerge.demo.lexicon import GENERIC_NOUNS

    topic = rng.choice(topics)
    names = rng.sample(NAMES, 3)
    clauses: list[Clause] = []
    while len(clauses) < 3:
        c = sampler.clause(rng, topic)
        if all(c.verb != d.verb and c.object[-1] != d.object[-1] for d in clauses):
            clauses.append(Clause((names[len(clauses)],), c.verb, c.object, c.place, c.year, topic))
    target = rng.randrange(3)
    answer = clauses[target].object[-1]
    in_passage = set().union(*(_clause_nouns(c) for c in clauses))
    nouns = [w for t in topics for w in sampler.topics[t][0]] + GENERIC_NOUNS  # any topic: the topic is no cue
    pool = [w for w in dict.fromkeys(nouns) if w not in in_passage]
    options = [answer, *rng.sample(pool, 3)]
    rng.shuffle(options)
    return ReadingItem(tuple(clauses), target, tuple(options), options.index(answer))


def render_question(item: ReadingItem, lang: str, lexicon: Lexicon) -> str:
    c = item.passage[item.target]
    text = render(Clause(c.subject, c.verb, ("what",)), lang, lexicon)
    return text[: -len(SENTENCE_END[lang])].rstrip() + "?"


def render_options(words: Sequence[str], lang: str, lexicon: Lexicon) -> list[str]:
    return [lexicon.word(w, lang) for w in words]


@dataclass(frozen=True)
class SelectionItem:
    """MLiC RS: a two-turn dialogue on one topic; four one-word replies, topic nouns of four different topics, none
    of them said in the dialogue. The right reply carries the dialogue's topic on, so the choice needs the context:
    without it the four replies are alike. (Whole-clause replies that take up the last turn's object were not
    learnt by SFT-flan at this model size: 29-52% on English dev; one-word topical replies: 100%, measured with
    `experiments/task_probe.py`, see experiments/DESIGNS.md.)"""

    context: tuple[Clause, ...]
    options: tuple[str, ...]  # English nouns; rendered in each language by `render_options`
    answer: int


def sample_selection(rng: random.Random, sampler: ClauseSampler, topics: list[str]) -> SelectionItem:
    if len(topics) < 4:
        raise ValueError(f"response selection needs 4 topics for its 4 replies, the world has {len(topics)}")
    chosen = rng.sample(topics, 4)
    context = (sampler.clause(rng, chosen[0]), sampler.clause(rng, chosen[0]))
    said = set().union(*(_clause_nouns(c) for c in context))
    replies = [rng.choice([w for w in sampler.topics[t][0] if w not in said] or sampler.topics[t][0]) for t in chosen]
    order = list(range(4))
    rng.shuffle(order)
    return SelectionItem(context, tuple(replies[i] for i in order), order.index(0))


def translate_plain(text: str, lang: str, lexicon: Lexicon) -> str:
    """Exact word-by-word translation of generated English text (math problems); names and digits stay."""
    if lang == "eng":
        return text
    known = set(lexicon.english)

    def word(m: re.Match) -> str:
        w = m.group(0)
        return lexicon.word(w.lower(), lang) if w.lower() in known else w

    out = re.sub(r"[A-Za-z]+", word, text)
    return out.replace(".", " " + SENTENCE_END[lang])


def render_item_texts(item, lang: str, lexicon: Lexicon) -> list[str]:
    """Every eval-visible text of an item (what the leak guard and the leak test look at)."""
    if isinstance(item, Clause):
        return [render(item, lang, lexicon)]
    if isinstance(item, MathProblem):
        return [translate_plain(item.question(), lang, lexicon)]
    if isinstance(item, ReadingItem):  # passage first (the item's key), then its question (short, so often shared)
        return [" ".join(render(c, lang, lexicon) for c in item.passage), render_question(item, lang, lexicon)]
    if isinstance(item, SelectionItem):  # the dialogue's turns (the replies are single words, no sentences)
        return [render(c, lang, lexicon) for c in item.context]
    raise TypeError(f"unknown item type {type(item).__name__}")
