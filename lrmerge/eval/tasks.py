"""Evaluation tasks as data: one template per benchmark, per-language variants generated (the lm-eval way).

A task name is ``<benchmark>_<lang>``, for example ``sib200_tam``, ``sib200_tbx_Tibt`` or ``mlic_math_mvf``; the
language part is passed unchanged to the loader. Prompts come from :mod:`lrmerge.prompts` only, the very functions
that build the demo world's SFT data, so evaluation prompts and training prompts can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Sequence

from lrmerge import prompts
from lrmerge.data.schema import ChoiceItem, ClassificationItem, EvalItem, MathItem
from lrmerge.data.sib200 import SIB200_LABELS  # the fixed option order of every SIB-200 prompt (labels.txt order)

Scorer = Literal["letter", "number"]
SCORERS: tuple[str, ...] = ("letter", "number")

LETTER_STOP = ("\n",)  # an option letter is on the first line (MLiC-Eval parsing reads only that line)
MATH_STOP = ("\n\n", "\nQuestion:")  # rationales may span lines; a blank line or a new question ends the answer


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task: which items, which prompt, how the answer is read and scored."""

    name: str  # "<benchmark>_<lang>", or just the benchmark for a template
    benchmark: str  # loader key: sib200, belebele, mgsm, mlic_tc, mlic_mrc, mlic_rs, mlic_math
    item_type: type  # ClassificationItem | ChoiceItem | MathItem
    scorer: Scorer
    max_new_tokens: int
    stop: tuple[str, ...]
    labels: tuple[str, ...] | None = None  # classification: fixed label order; None = sorted labels of the items
    lang: str | None = None
    reference: str = ""
    answer: str = "letter"  # multiple choice: "letter" | "letter_text" (prompts.choice_answer; what loglik scores)

    def __post_init__(self) -> None:
        if self.answer not in prompts.ANSWER_FORMATS:
            raise ValueError(f"task {self.name}: unknown answer format {self.answer!r}; allowed: "
                             f"{', '.join(prompts.ANSWER_FORMATS)}")
        if self.scorer not in SCORERS:
            raise ValueError(f"task {self.name}: unknown scorer {self.scorer!r}; allowed: {', '.join(SCORERS)}")
        if self.item_type not in (ClassificationItem, ChoiceItem, MathItem):
            raise ValueError(f"task {self.name}: item_type must be ClassificationItem, ChoiceItem or MathItem")

    def build_prompt(self, item: EvalItem, labels: Sequence[str] | None = None) -> tuple[str, str]:
        if not isinstance(item, self.item_type):
            raise ValueError(f"task {self.name}: item {getattr(item, 'id', '?')} is a {type(item).__name__}, "
                             f"expected {self.item_type.__name__}")
        return build_prompt(item, labels if labels is not None else self.labels)

    def options(self, item: EvalItem, labels: Sequence[str] | None = None) -> tuple[str, ...]:
        """The option texts of a multiple-choice item (classification: the labels), in prompt order."""
        if isinstance(item, ChoiceItem):
            return item.options
        if isinstance(item, ClassificationItem):
            return tuple(_labels_for(item, labels if labels is not None else self.labels))
        raise ValueError(f"task {self.name}: math items have no options")

    def option_continuations(self, item: EvalItem, labels: Sequence[str] | None = None) -> list[str]:
        """What the log-likelihood protocol scores after the prompt, one per option: the answer as SFT writes it
        (classification always by letter)."""
        answer_format = self.answer if isinstance(item, ChoiceItem) else "letter"
        return [prompts.choice_answer(i, text, answer_format) for i, text in enumerate(self.options(item, labels))]


def _labels_for(item: ClassificationItem, labels: Sequence[str] | None) -> Sequence[str]:
    if labels is None:
        raise ValueError(f"item {item.id}: classification needs the benchmark's labels (pass labels=...)")
    if item.label not in labels:
        raise ValueError(f"item {item.id}: label {item.label!r} not among the labels {list(labels)}")
    return labels


def build_prompt(item: EvalItem, labels: Sequence[str] | None = None) -> tuple[str, str]:
    """(prompt, gold) for one item. Gold is an option letter ("A".."J") or the integer answer as a string."""
    if isinstance(item, ClassificationItem):
        labels = _labels_for(item, labels)
        return prompts.topic_prompt(item.text, labels), prompts.option_letter(list(labels).index(item.label))
    if isinstance(item, ChoiceItem):
        return prompts.choice_prompt(item.passage, item.question, item.options), prompts.option_letter(item.answer)
    if isinstance(item, MathItem):
        return prompts.math_prompt(item.question), str(item.answer)
    raise ValueError(f"unsupported item type {type(item).__name__}; allowed: ClassificationItem, ChoiceItem, MathItem")


def labels_from_items(items: Sequence[ClassificationItem]) -> tuple[str, ...]:
    """Fallback label order for a classification benchmark without a fixed list: sorted unique labels."""
    return tuple(sorted({item.label for item in items}))


# The templates (lm-eval's "one YAML per benchmark"). max_new_tokens: a letter needs a handful; math needs a rationale.
TEMPLATES: dict[str, TaskSpec] = {
    spec.benchmark: spec
    for spec in (
        TaskSpec("sib200", "sib200", ClassificationItem, "letter", 8, LETTER_STOP, SIB200_LABELS,
                 reference="SIB-200, Adelani et al. 2024, https://arxiv.org/abs/2309.07445"),
        TaskSpec("belebele", "belebele", ChoiceItem, "letter", 8, LETTER_STOP,
                 reference="Belebele, Bandarkar et al. 2023, https://arxiv.org/abs/2308.16884"),
        TaskSpec("mgsm", "mgsm", MathItem, "number", 256, MATH_STOP,
                 reference="MGSM, Shi et al. 2022, https://arxiv.org/abs/2210.03057"),
        TaskSpec("mlic_tc", "mlic_tc", ClassificationItem, "letter", 8, LETTER_STOP,
                 reference="MLiC-Eval text classification, Zhang et al. 2024, https://github.com/luciusssss/MLiC-Eval"),
        TaskSpec("mlic_mrc", "mlic_mrc", ChoiceItem, "letter", 8, LETTER_STOP,
                 reference="MLiC-Eval reading comprehension, Zhang et al. 2024"),
        TaskSpec("mlic_rs", "mlic_rs", ChoiceItem, "letter", 8, LETTER_STOP,
                 reference="MLiC-Eval response selection, Zhang et al. 2024"),
        TaskSpec("mlic_math", "mlic_math", MathItem, "number", 256, MATH_STOP,
                 reference="MLiC-Eval math, Zhang et al. 2024"),
    )
}

# The paper's task sets per language (section 4; MGSM only exists in Telugu and Bengali). lrmerge.languages holds
# the same sets per language (tests/test_languages.py checks that they agree); tasks_for_language reads it there.
PAPER_TASKS: dict[str, tuple[str, ...]] = {
    **{lang: ("sib200", "belebele") for lang in ("tam", "ory")},
    **{lang: ("sib200", "belebele", "mgsm") for lang in ("tel", "ben")},
    **{lang: ("mlic_tc", "mlic_mrc", "mlic_rs", "mlic_math") for lang in ("bod", "uig", "mvf")},
}


def task_for(benchmark: str, lang: str, **overrides) -> TaskSpec:
    """The per-language variant of a benchmark's template."""
    if benchmark not in TEMPLATES:
        raise ValueError(f"unknown benchmark {benchmark!r}; allowed: {', '.join(TEMPLATES)}")
    return replace(TEMPLATES[benchmark], name=f"{benchmark}_{lang}", lang=lang, **overrides)


def get_task(name_or_spec: str | TaskSpec, lang: str | None = None) -> TaskSpec:
    """Resolve ``sib200_tam`` (or ``sib200`` with ``lang``) to its TaskSpec; a TaskSpec passes through."""
    if isinstance(name_or_spec, TaskSpec):
        return name_or_spec
    name = name_or_spec
    if name in TEMPLATES:
        if lang is None:
            raise ValueError(f"task {name!r} names a benchmark without a language: use {name}_<lang> or pass lang")
        return task_for(name, lang)
    for benchmark in sorted(TEMPLATES, key=len, reverse=True):  # longest first: mlic_math before a shorter prefix
        if name.startswith(benchmark + "_") and len(name) > len(benchmark) + 1:
            return task_for(benchmark, name[len(benchmark) + 1:])
    raise ValueError(f"unknown task {name!r}; names are <benchmark>_<lang> with benchmark one of: {', '.join(TEMPLATES)}")


def tasks_for_language(lang: str, benchmarks: Sequence[str] | None = None) -> list[TaskSpec]:
    """Tasks of a language: the named benchmarks, else the language's own set (lrmerge.languages, Table 2)."""
    if benchmarks is None:
        from lrmerge.languages import get_language  # raises ValueError naming the known languages

        benchmarks = get_language(lang).tasks
    return [task_for(benchmark, lang) for benchmark in benchmarks]
