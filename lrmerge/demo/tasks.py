"""Evaluation items of the world, generated once in English structure and rendered in every language (parallel,
as SIB-200 and Belebele are), plus the `LeakGuard` that keeps every eval sentence out of all training text.

Task generators are shared with the SFT data (`lrmerge.demo.sft`) so train and eval differ only in their items.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

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


def sample_math(rng: random.Random) -> MathProblem:
    kind = rng.choice(("add", "sub", "mul"))
    name, other = rng.sample(NAMES, 2)
    if kind == "mul":
        a, b = rng.randint(2, 9), rng.randint(2, 12)
    else:
        a, b = rng.randint(5, 60), rng.randint(1, 40)
        if kind == "sub":
            a, b = max(a, b + 1), min(a, b)
    return MathProblem(kind, name, other, rng.choice(MATH_ITEMS), a, b)


@dataclass(frozen=True)
class ReadingItem:
    """Belebele / MLiC MRC: a passage of clauses with named subjects; 'Who <verb> <object>?'; options are names."""

    passage: tuple[Clause, ...]
    target: int  # which clause is asked about
    options: tuple[str, ...]
    answer: int


def sample_reading(rng: random.Random, sampler: ClauseSampler, topics: list[str]) -> ReadingItem:
    topic = rng.choice(topics)
    names = rng.sample(NAMES, 4)
    clauses: list[Clause] = []
    while len(clauses) < 3:
        c = sampler.clause(rng, topic)
        if all(c.verb != d.verb for d in clauses):
            clauses.append(Clause((names[len(clauses)],), c.verb, c.object, c.place, c.year, topic))
    target = rng.randrange(3)
    options = list(names)
    rng.shuffle(options)
    return ReadingItem(tuple(clauses), target, tuple(options), options.index(names[target]))


def render_question(item: ReadingItem, lang: str, lexicon: Lexicon) -> str:
    c = item.passage[item.target]
    text = render(Clause(("who",), c.verb, c.object), lang, lexicon)
    text = text[: -len(SENTENCE_END[lang])].rstrip() + "?"
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class SelectionItem:
    """MLiC RS: a two-turn context on one topic; four candidate responses, one on the same topic."""

    context: tuple[Clause, ...]
    options: tuple[Clause, ...]
    answer: int


def sample_selection(rng: random.Random, sampler: ClauseSampler, topics: list[str]) -> SelectionItem:
    chosen = rng.sample(topics, min(4, len(topics)))
    context = (sampler.clause(rng, chosen[0]), sampler.clause(rng, chosen[0]))
    options = [sampler.clause(rng, t) for t in chosen]
    while len(options) < 4:
        options.append(sampler.clause(rng, None))
    order = list(range(4))
    rng.shuffle(order)
    return SelectionItem(context, tuple(options[i] for i in order), order.index(0))


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
    if isinstance(item, ReadingItem):
        return [" ".join(render(c, lang, lexicon) for c in item.passage)]
    if isinstance(item, SelectionItem):
        return [render(c, lang, lexicon) for c in item.context + item.options]
    raise TypeError(f"unknown item type {type(item).__name__}")
