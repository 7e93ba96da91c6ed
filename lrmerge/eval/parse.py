"""Answer parsing the MLiC-Eval way: an option letter on the first line, or the last number of a math answer.

Pure string functions; the scorers of :mod:`lrmerge.eval.tasks` ("letter", "number") call these.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Sequence

from lrmerge.prompts import OPTION_LETTERS

# "A", "A.", "(A)", "[A]", "Answer: A", "The answer is (B)", "Option C", " B) text". The letter must not be the start
# of a word ("After ...", "I think"), so it is followed by a non-alphanumeric character or the end of the line.
_LETTER = re.compile(
    r"^\s*(?:(?i:(?:the\s+)?(?:correct\s+)?(?:answer|option)(?:\s+is)?)\s*[:：]?\s*)?[(\[]?\s*([A-Z])(?![^\W_])"
)
# A number in any script's decimal digits (\d is Unicode-aware): thousands groups "70,000", decimals "2.5", and a
# minus sign ("-" or U+2212) only when it does not sit right after a word or number ("5-3" is 5 and 3, not -3).
_NUMBER = re.compile(r"(?:(?<![\w.])[-\u2212])?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)")


def first_line(generation: str) -> str:
    """The first line of a generation, leading spaces dropped (prompts end with 'Answer:', answers with ' A')."""
    return generation.lstrip(" \t").split("\n", 1)[0]


def parse_letter(generation: str, allowed: Sequence[str] | str = OPTION_LETTERS) -> str | None:
    """The option letter on the first line of ``generation``, or None if there is no valid letter among ``allowed``."""
    match = _LETTER.match(first_line(generation))
    if match is None:
        return None
    letter = match.group(1)
    return letter if letter in allowed else None


def _ascii_digits(text: str) -> str:
    return "".join(str(unicodedata.digit(ch)) if ch.isdecimal() else ch for ch in text)


def parse_number(generation: str) -> Decimal | None:
    """The LAST number in ``generation`` as an exact Decimal (commas, minus, decimals, any Unicode decimal digits)."""
    matches = _NUMBER.findall(generation)
    if not matches:
        return None
    text = _ascii_digits(matches[-1]).replace(",", "").replace("\u2212", "-")
    return Decimal(text)


def numbers_equal(parsed: Decimal | None, gold: int | str | Decimal) -> bool:
    return parsed is not None and parsed == Decimal(str(gold))
