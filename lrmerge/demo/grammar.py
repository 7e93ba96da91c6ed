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
_OPTION_LINE = re.compile(r"^[A-J]\. ")
ANSWER_CUE = "answer"  # the lexicon word of "Answer:" / "The answer is N." (instruction cue of every prompt)


@dataclass(frozen=True)
class MTNoise:
    """The knobs of the world's MT system; all zero (and translate_answer_cue True) is an exact word-by-word
    translation. See `WorldConfig` for what each knob models (paper section 7.2, Table 14)."""

    mistranslation_rate: float = 0.0  # share of content words always rendered as one fixed wrong X word
    hallucination_rate: float = 0.0  # share of instances with the recurring hallucinated X sentence added
    drop_rate: float = 0.0  # per word: omitted
    repeat_rate: float = 0.0  # per word: repeated (3 times, as NLLB loops)
    untranslated_rate: float = 0.0  # per word: left in English (wrong-language words)
    untranslated_options_rate: float = 0.0  # share of multiple-choice instances whose option lines stay English
    translate_answer_cue: bool = True  # "Answer:" is translated like any word (True) or kept as the template's


class NoisyTranslator:
    """The world's deliberately imperfect MT system (paper section 7.2, Table 14), word by word from English.

    Source word order is kept (so mnx comes out in English order, even with every knob at zero); words outside the
    lexicon (instruction words, letters, numbers, names) pass through. `MTNoise` holds the knobs. Mistranslations
    are consistent (the same English word always gets the same wrong X word, drawn once per seed and language);
    the hallucinated sentence is one fixed X sentence per language, as NLLB repeats the same invented sentence.
    """

    def __init__(self, lexicon: Lexicon, seed: int, noise: MTNoise | None = None):
        self.lexicon, self.rng, self.seed = lexicon, random.Random(f"mt-{seed}"), seed
        self.noise = noise or MTNoise()
        self.known = set(lexicon.english)
        self._wrong: dict[str, dict[str, str]] = {}
        self._hallucination: dict[str, str] = {}

    def wrong_words(self, tgt: str) -> dict[str, str]:
        """English content word -> the wrong X word the system always produces for it (a share of the words)."""
        if tgt not in self._wrong:
            from lrmerge.demo.lexicon import ADJECTIVES, GENERIC_NOUNS, GENERIC_VERBS

            rng = random.Random(f"mt-wrong-{self.seed}-{tgt}")
            content = [w for w in self.lexicon.english if w not in self.lexicon.loanwords and w not in
                       set(GENERIC_NOUNS + GENERIC_VERBS + ADJECTIVES) and w in self.lexicon.translations[tgt]
                       and not _is_function_word(w)]
            chosen = rng.sample(content, round(self.noise.mistranslation_rate * len(content)))
            self._wrong[tgt] = {w: self.lexicon.word(rng.choice([v for v in content if v != w]), tgt) for w in chosen}
        return self._wrong[tgt]

    def hallucination(self, tgt: str) -> str:
        if tgt not in self._hallucination:
            from lrmerge.demo.lexicon import GENERIC_NOUNS, GENERIC_VERBS

            rng = random.Random(f"mt-hallucination-{self.seed}-{tgt}")
            clause = Clause(("the", rng.choice(GENERIC_NOUNS)), rng.choice(GENERIC_VERBS),
                            ("the", rng.choice(GENERIC_NOUNS)), ("with", "the", rng.choice(GENERIC_NOUNS)))
            self._hallucination[tgt] = render(clause, tgt, self.lexicon)
        return self._hallucination[tgt]

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        """Each text word by word, with the per-word knobs (no instance-level noise)."""
        if src != "eng":
            raise ValueError(f"NoisyTranslator translates from 'eng' only, got src={src!r}")
        self._check(tgt)
        return [self._line(line, tgt) for line in texts]

    def translate_instance(self, prompt: str, response: str, tgt: str) -> tuple[str, str]:
        """An SFT instance: the per-word knobs on every line, option lines kept English in a share of
        multiple-choice instances, the hallucinated sentence appended to the longest line in a share of instances."""
        self._check(tgt)
        keep_options = self.rng.random() < self.noise.untranslated_options_rate
        hallucinate = self.rng.random() < self.noise.hallucination_rate
        lines = prompt.split("\n")
        out = [line if keep_options and _OPTION_LINE.match(line) else self._line(line, tgt) for line in lines]
        if hallucinate:
            longest = max(range(len(out)), key=lambda i: len(out[i]))
            out[longest] = out[longest] + " " + self.hallucination(tgt)
        return "\n".join(out), self._line(response, tgt)

    def _check(self, tgt: str) -> None:
        if tgt not in self.lexicon.translations:
            raise ValueError(f"NoisyTranslator: unknown target {tgt!r}; allowed: {tuple(self.lexicon.translations)}")

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
        if word == ANSWER_CUE and not self.noise.translate_answer_cue:
            return token
        if tail == ".":
            tail = " " + SENTENCE_END[tgt]
        noise = self.noise
        if noise.drop_rate or noise.untranslated_rate or noise.repeat_rate:
            r = self.rng.random()
            if r < noise.drop_rate:
                return tail.strip()
            if r < noise.drop_rate + noise.untranslated_rate:
                return match.group(1) + tail
            repeat = r < noise.drop_rate + noise.untranslated_rate + noise.repeat_rate
        else:
            repeat = False
        x = self.wrong_words(tgt).get(word) or self.lexicon.word(word, tgt)
        if repeat:
            x = f"{x} {x} {x}"
        return x + tail


def _is_function_word(word: str) -> bool:
    from lrmerge.demo.lexicon import DETERMINERS, FUNCTION_WORDS, MATH_ITEMS, PREPOSITIONS

    return word in set(FUNCTION_WORDS + DETERMINERS + PREPOSITIONS + MATH_ITEMS) or word == MNX_ACCUSATIVE
