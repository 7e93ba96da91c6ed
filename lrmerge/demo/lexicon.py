"""The world's vocabulary: English words by role and topic, and their enciphered tbx / mnx words.

tbx words are spelled with Tibetan letters U+0F40..U+0F6C (2-3 letters, each a single token of the base tokenizer),
mnx words with traditional Mongolian letters U+1820..U+1878 (each letter 3 UTF-8 byte tokens). mnx spells its
enciphered topic words (the words that carry a sentence's meaning) with one letter each, from letters no other mnx
word uses, and every other word with two of the remaining letters: a topic word is 3 byte tokens, the rest 6, which
keeps mnx texts short enough for the tiny demo models (measured: word-translation retrieval stays at 4-6% top-1
either way; with the far language's anchors, `WorldConfig.far_language_anchors`, a TIES merge reaches 34.7% on the
mnx topic test). Loanwords (a share of each topic's content words), names and digits stay in Latin script.
Every language's surface vocabulary is suffix-free (no word ends with another whole word), which lets the builder
guarantee that no eval text is a substring of a training line by checking whole words only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# SIB-200's seven categories, in its label order.
TOPICS: tuple[str, ...] = ("science/technology", "travel", "politics", "sports", "health", "entertainment", "geography")
TOPIC_LABELS_ZH = {"science/technology": "科技", "travel": "旅游", "politics": "政治", "sports": "体育",
                   "health": "健康", "entertainment": "娱乐", "geography": "地理"}

TOPIC_NOUNS = {
    "science/technology": ["computer", "robot", "laboratory", "scientist", "engine", "signal", "battery", "software",
                           "satellite", "telescope", "microchip", "algorithm"],
    "travel": ["airport", "hotel", "passport", "tourist", "luggage", "beach", "ticket", "train", "suitcase", "cruise",
               "hostel", "visa"],
    "politics": ["parliament", "minister", "election", "senator", "law", "party", "ballot", "government", "president",
                 "embassy", "treaty", "congress"],
    "sports": ["football", "stadium", "coach", "player", "goal", "team", "medal", "race", "tennis", "referee",
               "trophy", "marathon"],
    "health": ["doctor", "hospital", "medicine", "nurse", "patient", "vaccine", "clinic", "fever", "surgeon",
               "pharmacy", "virus", "diet"],
    "entertainment": ["movie", "actor", "concert", "singer", "theater", "song", "festival", "comedy", "guitar",
                      "dancer", "cinema", "album"],
    "geography": ["mountain", "river", "desert", "island", "valley", "ocean", "volcano", "glacier", "canyon",
                  "forest", "lake", "coast"],
}
TOPIC_VERBS = {
    "science/technology": ["invents", "measures", "programs", "tests", "computes", "designs"],
    "travel": ["visits", "books", "packs", "explores", "boards", "tours"],
    "politics": ["debates", "elects", "governs", "campaigns", "legislates", "vetoes"],
    "sports": ["scores", "trains", "wins", "kicks", "competes", "coaches"],
    "health": ["heals", "treats", "diagnoses", "cures", "vaccinates", "examines"],
    "entertainment": ["performs", "sings", "films", "dances", "rehearses", "applauds"],
    "geography": ["surrounds", "flows", "crosses", "erodes", "maps", "borders"],
}
GENERIC_NOUNS = ["man", "woman", "child", "friend", "family", "city", "village", "house", "year", "day", "group",
                 "people", "street", "morning", "week", "story"]
GENERIC_VERBS = ["sees", "likes", "finds", "takes", "wants", "needs", "knows", "shows"]
ADJECTIVES = ["big", "small", "new", "old", "good", "young", "happy", "large", "famous", "quiet"]
DETERMINERS = ["the", "this", "that", "every", "some"]
PREPOSITIONS = ["in", "near", "with", "from", "for"]
FUNCTION_WORDS = ["who", "what", "does", "did", "many", "how", "more", "has", "have", "buys", "gives", "loses",
                  "now", "each", "there", "are", "is", "and", "then", "total", "answer", "so", "to", "bag", "bags"]
MATH_ITEMS = ["apples", "books", "coins", "pens", "cards", "eggs", "flowers", "stamps"]
NAMES = ["Tom", "Maria", "Ravi", "Chen", "Aisha", "Omar", "Lena", "Kenji", "Nadia", "Pablo", "Sofia", "Yusuf"]

TBX_LETTERS = [chr(c) for c in range(0x0F40, 0x0F6D) if chr(c).isprintable()]  # Tibetan consonants
MNX_LETTERS = [chr(c) for c in range(0x1820, 0x1879)]  # traditional Mongolian letters
SCRIPT_LETTERS = {"tbx": TBX_LETTERS, "mnx": MNX_LETTERS}
WORD_LENGTHS = {"tbx": (2, 3), "mnx": (2, 2)}  # letters per enciphered word (mnx topic words: 1, see above)
SENTENCE_END = {"eng": ".", "tbx": "\u0f0d", "mnx": "\u1803"}  # period, Tibetan shad, Mongolian full stop
# mnx case particles follow their noun, joined by U+202F (narrow no-break space) as in real Mongolian script.
MNX_PARTICLE_JOINER = "\u202f"
MNX_ACCUSATIVE = "acc"  # pseudo-English key of the accusative particle in the lexicon


def topic_words(n_topics: int, n_nouns: int, n_verbs: int) -> dict[str, tuple[list[str], list[str]]]:
    """Topic -> (nouns, verbs), the first n of each list."""
    if n_nouns > 12 or n_verbs > 6:
        raise ValueError(f"topic_nouns must be <= 12 and topic_verbs <= 6, got {n_nouns}, {n_verbs}")
    return {t: (TOPIC_NOUNS[t][:n_nouns], TOPIC_VERBS[t][:n_verbs]) for t in TOPICS[:n_topics]}


@dataclass
class Lexicon:
    """English word -> word in each X language; `loanwords` are the English words kept unchanged in X."""

    english: list[str]  # every translatable English word, in a fixed order
    translations: dict[str, dict[str, str]]  # lang -> {english word: X word}
    loanwords: frozenset[str]

    def word(self, english_word: str, lang: str) -> str:
        if lang == "eng" or english_word in self.loanwords or english_word[0].isupper() or english_word.isdigit():
            return english_word
        return self.translations[lang][english_word]

    def to_tsv(self, langs: tuple[str, ...]) -> str:
        header = "\t".join(("eng", *langs))
        rows = ["\t".join((w, *(self.word(w, lang) for lang in langs))) for w in self.english]
        return header + "\n" + "\n".join(rows) + "\n"


TBX_SPELLINGS = ("tibetan", "english_words")
# "english_words": each tbx word is two English words (of this pool) in a row, so tbx shares BASE's English tokens
# and English SFT moves the very embeddings that carry tbx (a test of forgetting through shared parameters).
TBX_PIECE_WORDS = GENERIC_NOUNS + GENERIC_VERBS + ADJECTIVES


def build_lexicon(seed: int, topics: dict[str, tuple[list[str], list[str]]], loanword_share: float,
                  langs: tuple[str, ...] = ("tbx", "mnx"), tbx_spelling: str = "tibetan") -> Lexicon:
    """Encipher every English word into each X language (distinct, suffix-free words); pick the loanwords.

    tbx_spelling: "tibetan" (letters U+0F40..U+0F6C) or "english_words" (`TBX_PIECE_WORDS` pairs)."""
    if tbx_spelling not in TBX_SPELLINGS:
        raise ValueError(f"tbx_spelling must be one of {TBX_SPELLINGS}, got {tbx_spelling!r}")
    rng = random.Random(f"lexicon-{seed}")
    content = [w for nouns, verbs in topics.values() for w in nouns + verbs]
    english = list(dict.fromkeys(content + GENERIC_NOUNS + GENERIC_VERBS + ADJECTIVES + DETERMINERS + PREPOSITIONS
                                 + FUNCTION_WORDS + MATH_ITEMS + [MNX_ACCUSATIVE]))
    loanwords = set()
    for nouns, verbs in topics.values():
        words = nouns + verbs
        loanwords.update(rng.sample(words, round(loanword_share * len(words))))
    translations = {"tbx": dict(zip(english, _encipher(rng, SCRIPT_LETTERS["tbx"], WORD_LENGTHS["tbx"], len(english))))}
    if tbx_spelling == "english_words":
        pairs = [f"{a} {b}" for a in TBX_PIECE_WORDS for b in TBX_PIECE_WORDS if a != b]
        random.Random(f"tbx-pairs-{seed}").shuffle(pairs)
        translations["tbx"] = dict(zip(english, pairs))
    # mnx: topic words (enciphered ones) one letter each from their own letters, the rest two of the other letters
    topic = [w for w in content if w not in loanwords]
    letters = list(MNX_LETTERS)
    rng.shuffle(letters)
    topic_letters, other_letters = letters[:len(topic)], letters[len(topic):]
    if len(other_letters) < 10:
        raise ValueError(f"{len(topic)} enciphered topic words leave too few mnx letters ({len(other_letters)}) "
                         "for the other words; lower topic_nouns/topic_verbs or raise loanword_share")
    rest = [w for w in english if w not in topic]
    spelled = dict(zip(topic, topic_letters))
    spelled.update(zip(rest, _encipher(rng, other_letters, WORD_LENGTHS["mnx"], len(rest))))
    translations["mnx"] = {w: spelled[w] for w in english}
    check_suffix_free(NAMES, english + NAMES)
    return Lexicon(english=english, translations=translations, loanwords=frozenset(loanwords))


def _encipher(rng: random.Random, letters: list[str], lengths: tuple[int, int], n: int) -> list[str]:
    """n distinct words of lengths[0]..lengths[1] letters, none a suffix of another (words of one script)."""
    chosen: list[str] = []
    for _ in range(n):
        while True:
            candidate = "".join(rng.choice(letters) for _ in range(rng.randint(*lengths)))
            if all(not a.endswith(candidate) and not candidate.endswith(a) for a in chosen):
                chosen.append(candidate)
                break
    return chosen


def check_suffix_free(initials: list[str], words: list[str]) -> None:
    """Raise if a word ends with a sentence-initial word (e.g. 'Tom' / 'Atom'); the leak guarantee relies on it.

    English sentences start with a capital (a name or a capitalised determiner) and X sentences with an
    enciphered word; enciphered words are suffix-free among themselves by construction.
    """
    for short in initials:
        for long in words:
            if len(long) > len(short) and long.endswith(short):
                raise ValueError(f"lexicon is not suffix-free: {long!r} ends with {short!r}")
