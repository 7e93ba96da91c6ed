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


@dataclass(frozen=True)
class Collocations:
    """Word-specific partners, as real words have them ("doctor treats patient"); without them the words of a topic
    would be exchangeable and no corpus statistic could tell which X word translates which English word.

    Per topic, verb j takes two preferred subject nouns and two preferred object nouns such that every noun has its
    own (subject-of, object-of) verb pair; every noun has a preferred adjective, every topic verb a preferred
    place (preposition, place noun).
    """

    subjects: dict[str, tuple[str, ...]]  # topic verb -> preferred subject nouns
    objects: dict[str, tuple[str, ...]]  # topic verb -> preferred object nouns
    adjective: dict[str, str]  # noun -> preferred adjective
    place: dict[str, tuple[str, str]]  # topic verb -> (preposition, place noun)


def build_collocations(seed: int, topics: dict[str, tuple[list[str], list[str]]]) -> Collocations:
    rng = random.Random(f"collocations-{seed}")
    subjects, objects, adjective, place = {}, {}, {}, {}
    for nouns, verbs in topics.values():
        order = rng.sample(nouns, len(nouns))
        n = len(order)
        for j, verb in enumerate(verbs):
            # subjects: consecutive pairs; objects: pairs shifted by 3, so (subject-of, object-of) differ per noun
            subjects[verb] = tuple(order[(2 * j + k) % n] for k in range(2))
            objects[verb] = tuple(order[(2 * j + 3 + k) % n] for k in range(2))
            place[verb] = (rng.choice(PREPOSITIONS), rng.choice(GENERIC_NOUNS))
        for noun in nouns:
            adjective[noun] = rng.choice(ADJECTIVES)
    for noun in GENERIC_NOUNS:
        adjective[noun] = rng.choice(ADJECTIVES)
    return Collocations(subjects, objects, adjective, place)


class ClauseSampler:
    """Draws topical clauses. `purity`: chance that a topical slot takes a topic word (else a neutral word);
    `collocation_strength`: chance that a word takes its preferred partner (`Collocations`) rather than any."""

    def __init__(self, topics: dict[str, tuple[list[str], list[str]]], purity: float, named_entities: bool,
                 digits: bool, avoid: frozenset[str] = frozenset(), collocations: Collocations | None = None,
                 collocation_strength: float = 0.0):
        self.topics = {t: ([w for w in nouns if w not in avoid], [w for w in verbs if w not in avoid])
                       for t, (nouns, verbs) in topics.items()}
        for topic, (nouns, verbs) in self.topics.items():
            if not nouns or not verbs:
                raise ValueError(f"topic {topic!r} has no nouns or verbs left after removing loanwords")
        if collocation_strength > 0 and collocations is None:
            raise ValueError("ClauseSampler: collocation_strength > 0 needs collocations")
        self.purity, self.named_entities, self.digits = purity, named_entities, digits
        self.collocations, self.strength, self.avoid = collocations, collocation_strength, avoid

    def _use_partner(self, rng: random.Random) -> bool:
        return self.collocations is not None and self.strength > 0 and rng.random() < self.strength

    def _partner_noun(self, rng: random.Random, table: dict[str, tuple[str, ...]], verb: str) -> str | None:
        """A preferred subject / object noun of `verb` (None: no draw, no partners, or all of them avoided)."""
        if verb not in table or not self._use_partner(rng):
            return None
        allowed = [w for w in table[verb] if w not in self.avoid]
        return rng.choice(allowed) if allowed else None

    def _noun_phrase(self, rng: random.Random, noun: str) -> tuple[str, ...]:
        det = rng.choice(DETERMINERS)
        if rng.random() >= 0.4:
            return (det, noun)
        partner = self._use_partner(rng) and noun in self.collocations.adjective
        return (det, self.collocations.adjective[noun] if partner else rng.choice(ADJECTIVES), noun)

    def clause(self, rng: random.Random, topic: str | None) -> Clause:
        if topic is None:
            slots = [False, False, False]
        else:
            slots = [rng.random() < self.purity for _ in range(3)]
            if not any(slots):
                slots[rng.randrange(3)] = True
        nouns, verbs = self.topics[topic] if topic is not None else ([], [])
        verb = rng.choice(verbs) if slots[1] else rng.choice(GENERIC_VERBS)
        col = self.collocations
        subj_noun = obj_noun = None
        if slots[0]:
            subj_noun = (self._partner_noun(rng, col.subjects, verb) if col else None) or rng.choice(nouns)
        if slots[2]:
            obj_noun = (self._partner_noun(rng, col.objects, verb) if col else None) or rng.choice(nouns)
        subj_noun = subj_noun or rng.choice(GENERIC_NOUNS)
        obj_noun = obj_noun or rng.choice(GENERIC_NOUNS)
        if self.named_entities and rng.random() < 0.3:
            subject: tuple[str, ...] = (rng.choice(NAMES),)
        else:
            subject = self._noun_phrase(rng, subj_noun)
        place: tuple[str, ...] = ()
        if rng.random() < 0.5:
            partner = col is not None and verb in col.place and self._use_partner(rng)
            prep, noun = col.place[verb] if partner else (rng.choice(PREPOSITIONS), rng.choice(GENERIC_NOUNS))
            place = (prep, rng.choice(DETERMINERS), noun)
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
        obj[-1] += j + lexicon.word(MNX_ACCUSATIVE, "mnx")  # particles are never code-switched
        words = tr(clause.subject) + obj
        if clause.place:
            prep, *np = clause.place
            place = tr(np)
            place[-1] += j + lexicon.word(prep, "mnx")
            words += place
        if clause.year:
            words.append(clause.year + j + lexicon.word("in", "mnx"))
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
        number = re.fullmatch(r"(\d+)\.", token)
        if number:  # a sentence ending in a year or count
            return f"{number.group(1)} {SENTENCE_END[tgt]}"
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
