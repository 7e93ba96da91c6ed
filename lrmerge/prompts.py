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


ANSWER_FORMATS: tuple[str, ...] = ("letter", "letter_text")


def choice_answer(index: int, option: str, answer_format: str = "letter") -> str:
    """The answer to a multiple-choice prompt: the option letter (``letter``, as lm-eval scores Belebele), or the
    letter followed by the option's text (``letter_text``: " B. stone"; the demo world's reading and response
    selection, where a tiny model can learn which text fits but not which letter a text was listed under). Its first
    line still parses as the letter, so generation is read the same way."""
    if answer_format == "letter":
        return letter_answer(index)
    if answer_format == "letter_text":
        return f"{letter_answer(index)}. {option}"
    raise ValueError(f"unknown answer format {answer_format!r}; allowed: {', '.join(ANSWER_FORMATS)}")


def math_answer(answer: int, rationale: str = "") -> str:
    """The SFT target for a math prompt: optional rationale, then the final number in a fixed phrase."""
    rationale = rationale.strip()
    return f" {rationale} The answer is {answer}." if rationale else f" The answer is {answer}."
