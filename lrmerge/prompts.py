"""Every prompt of the study, in one place: the SFT data of the demo world and the evaluation use the same templates.

Answers are short and parseable the MLiC-Eval way: an option letter on the first line, or a worked rationale that
ends with "The answer is N." (the last number is the answer). The instruction words stay English for every
language, as in the paper's English SFT data; the -mt variant translates them along with the content.
"""

from __future__ import annotations

from typing import Sequence

OPTION_LETTERS = "ABCDEFGHIJ"


def option_letter(index: int) -> str:
    if not 0 <= index < len(OPTION_LETTERS):
        raise ValueError(f"option index {index} outside 0..{len(OPTION_LETTERS) - 1}")
    return OPTION_LETTERS[index]


def _option_lines(options: Sequence[str]) -> str:
    return "\n".join(f"{option_letter(i)}. {option}" for i, option in enumerate(options))


def topic_prompt(text: str, labels: Sequence[str]) -> str:
    """Topic classification (SIB-200, MLiC-Eval TC). Labels are listed in their fixed benchmark order."""
    return f"Classify the topic of the text.\nText: {text}\nOptions:\n{_option_lines(labels)}\nAnswer:"


def choice_prompt(passage: str, question: str, options: Sequence[str]) -> str:
    """Multiple-choice reading comprehension (Belebele, MLiC-Eval MRC) and response selection (MLiC-Eval RS)."""
    return f"Read the passage and answer the question.\nPassage: {passage}\nQuestion: {question}\nOptions:\n{_option_lines(options)}\nAnswer:"


RESPONSE_SELECTION_QUESTION = "Which response fits the dialogue best?"


def math_prompt(question: str) -> str:
    """Math word problems (MGSM, GSM8K, MLiC-Eval Math); chain of thought allowed in the answer."""
    return f"Solve the problem.\nQuestion: {question}\nAnswer:"


def letter_answer(index: int) -> str:
    """The SFT target for a multiple-choice prompt (leading space: the prompt ends with 'Answer:')."""
    return f" {option_letter(index)}"


def math_answer(answer: int, rationale: str = "") -> str:
    """The SFT target for a math prompt: optional rationale, then the final number in a fixed phrase."""
    rationale = rationale.strip()
    return f" {rationale} The answer is {answer}." if rationale else f" The answer is {answer}."
