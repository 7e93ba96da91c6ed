"""Sentences of the world: one clause structure, rendered in English, tbx (same word order) and mnx (SOV, particles).

    eng  The young doctor treats the patient near the river in 1998.
    tbx  <det> <adj> <doctor> <treats> <det> <patient> <near> <det> <river> <in> 1998 །      (word by word)
    mnx  <det> <adj> <doctor> <det> <patient>+ACC <det> <river>+NEAR 1998+IN <treats> ᠃    (verb last)

`+` is U+202F, which joins Mongolian case particles to their noun. The imperfect MT system of the -mt SFT data
(`NoisyTranslator`) works word by word on text and keeps the source word order.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Sequence

from lrmerge.demo.lexicon import (ADJECTIVES, DETERMINERS, GENERIC_NOUNS, GENERIC_VERBS, MNX_ACCUSATIVE,
                                  MNX_PARTICLE_JOINER, NAMES, PREPOSITIONS, SENTENCE_END, Lexicon)


@dataclass(frozen=True)
class Clause:
    """Subject verb object [preposition place] [in year]; noun phrases are lists of English words."""

    subject: tuple[str, ...]
    verb: str
    object: tuple[str, ...]
    place: tuple[str, ...] = ()  # (preposition, det, noun) or ()
    year: str = ""
    topic: str | None = None  # the clause's topic (None: topic-neutral)

    def content_words(self) -> list[str]:
        return [self.subject[-1], self.verb, self.object[-1]]


class ClauseSampler:
    """Draws topical clauses. `purity`: chance that a topical slot takes a topic word (else a neutral word)."""

    def __init__(self, topics: dict[str, tuple[list[str], list[str]]], purity: float, named_entities: bool,
                 digits: bool, avoid: frozenset[str] = frozenset()):
        self.topics = {t: ([w for w in nouns if w not in avoid], [w for w in verbs if w not in avoid])
                       for t, (nouns, verbs) in topics.items()}
        for topic, (nouns, verbs) in self.topics.items():
            if not nouns or not verbs:
                raise ValueError(f"topic {topic!r} has no nouns or verbs left after removing loanwords")
        self.purity, self.named_entities, self.digits = purity, named_entities, digits

    def _noun_phrase(self, rng: random.Random, noun: str) -> tuple[str, ...]:
        det = rng.choice(DETERMINERS)
        return (det, rng.choice(ADJECTIVES), noun) if rng.random() < 0.4 else (det, noun)

    def clause(self, rng: random.Random, topic: str | None) -> Clause:
        if topic is None:
            slots = [False, False, False]
        else:
            slots = [rng.random() < self.purity for _ in range(3)]
            if not any(slots):
                slots[rng.randrange(3)] = True
        nouns, verbs = self.topics[topic] if topic is not None else ([], [])
        subj_noun = rng.choice(nouns) if slots[0] else rng.choice(GENERIC_NOUNS)
        verb = rng.choice(verbs) if slots[1] else rng.choice(GENERIC_VERBS)
        obj_noun = rng.choice(nouns) if slots[2] else rng.choice(GENERIC_NOUNS)
        if self.named_entities and rng.random() < 0.3:
            subject: tuple[str, ...] = (rng.choice(NAMES),)
        else:
            subject = self._noun_phrase(rng, subj_noun)
        place: tuple[str, ...] = ()
        if rng.random() < 0.5:
            place = (rng.choice(PREPOSITIONS), rng.choice(DETERMINERS), rng.choice(GENERIC_NOUNS))
        year = str(rng.randint(1950, 2024)) if self.digits and rng.random() < 0.25 else ""
        return Clause(subject, verb, self._noun_phrase(rng, obj_noun), place, year, topic)


def _translate_words(words: Sequence[str], lang: str, lexicon: Lexicon, rng: random.Random | None,
                     code_switch_rate: float) -> list[str]:
    out = []
    for w in words:
        if rng is not None and code_switch_rate > 0 and rng.random() < code_switch_rate:
            out.append(w)  # code-switching: the English word stays
        else:
            out.append(lexicon.word(w, lang))
    return out


def render(clause: Clause, lang: str, lexicon: Lexicon, rng: random.Random | None = None,
           code_switch_rate: float = 0.0) -> str:
    """The clause as one sentence of `lang`; with `rng` and a code-switch rate, some words stay English."""
    def tr(words: Sequence[str]) -> list[str]:
        return _translate_words(words, lang, lexicon, rng, code_switch_rate)

    year_pp = ("in", clause.year) if clause.year else ()
    if lang in ("eng", "tbx"):
        words = tr([*clause.subject, clause.verb, *clause.object, *clause.place, *year_pp])
        if lang == "eng":
            words[0] = words[0][0].upper() + words[0][1:]
            return " ".join(words) + SENTENCE_END["eng"]
        return " ".join(words) + " " + SENTENCE_END["tbx"]
    if lang == "mnx":
        j = MNX_PARTICLE_JOINER
        obj = tr(clause.object)
        obj[-1] += j + tr([MNX_ACCUSATIVE])[0]
        words = tr(clause.subject) + obj
        if clause.place:
            prep, *np = clause.place
            place = tr(np)
            place[-1] += j + tr([prep])[0]
            words += place
        if clause.year:
            words.append(clause.year + j + tr(["in"])[0])
        words += tr([clause.verb])
        return " ".join(words) + " " + SENTENCE_END["mnx"]
    raise ValueError(f"unknown language {lang!r}; allowed: ('eng', 'tbx', 'mnx')")


_WORD = re.compile(r"[A-Za-z]+|\S")


class NoisyTranslator:
    """The world's deliberately imperfect MT system (paper section 7.2, Table 14), word by word from English.

    Each known English word is dropped (drop_rate), doubled (repeat_rate) or left untranslated
    (untranslated_rate: code-switching); source word order is kept (so mnx comes out in English order).
    Unknown words (instruction words, letters, numbers) pass through unchanged.
    """

    def __init__(self, lexicon: Lexicon, seed: int, drop_rate: float = 0.1, repeat_rate: float = 0.05,
                 untranslated_rate: float = 0.1):
        self.lexicon, self.rng = lexicon, random.Random(f"mt-{seed}")
        self.drop_rate, self.repeat_rate, self.untranslated_rate = drop_rate, repeat_rate, untranslated_rate
        self.known = set(lexicon.english)

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        if src != "eng":
            raise ValueError(f"NoisyTranslator translates from 'eng' only, got src={src!r}")
        if tgt not in self.lexicon.translations:
            raise ValueError(f"NoisyTranslator: unknown target {tgt!r}; allowed: {tuple(self.lexicon.translations)}")
        return [self._line(line, tgt) for line in texts]

    def _line(self, text: str, tgt: str) -> str:
        pieces = re.split(r"(\s+)", text)  # keep whitespace (newlines of prompts) as it is
        out = []
        for piece in pieces:
            if not piece or piece.isspace():
                out.append(piece)
                continue
            out.append(self._word(piece, tgt))
        return "".join(out).replace("  ", " ")

    def _word(self, token: str, tgt: str) -> str:
        match = re.fullmatch(r"([A-Za-z]+)(\W*)", token)
        if not match or match.group(1).lower() not in self.known:
            return token
        word, tail = match.group(1).lower(), match.group(2)
        if tail == ".":
            tail = " " + SENTENCE_END[tgt]
        r = self.rng.random()
        if r < self.drop_rate:
            return tail.strip()
        if r < self.drop_rate + self.untranslated_rate:
            return match.group(1) + tail
        x = self.lexicon.word(word, tgt)
        if r < self.drop_rate + self.untranslated_rate + self.repeat_rate:
            x = f"{x} {x}"
        return x + tail
