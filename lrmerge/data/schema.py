"""Normalised evaluation items: every loader (real benchmark files, hub datasets, the demo world) returns these.

One item type per task shape, so one prompt template and one scorer serve every benchmark of that shape:
  ClassificationItem  SIB-200, MLiC-Eval TC
  ChoiceItem          Belebele, MLiC-Eval MRC and RS (answer is the 0-based index of the right option)
  MathItem            MGSM, GSM8K, MLiC-Eval Math (integer answer, optional worked rationale)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassificationItem:
    id: str
    text: str
    label: str


@dataclass(frozen=True)
class ChoiceItem:
    id: str
    passage: str
    question: str
    options: tuple[str, ...]
    answer: int  # 0-based index into options

    def __post_init__(self) -> None:
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"item {self.id}: answer index {self.answer} outside options 0..{len(self.options) - 1}")


@dataclass(frozen=True)
class MathItem:
    id: str
    question: str
    answer: int
    rationale: str = ""


EvalItem = ClassificationItem | ChoiceItem | MathItem
