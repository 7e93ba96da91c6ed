"""MLiC-Eval (Zhang et al., 2024a): tasks for minority languages of China (bo, ug, mn, kk).

Layout (hub `pkupie/milic-eval`, or a local root with the same layout, with or without the leading `data/`;
the demo world writes `<world>/eval/mlic/<task>/<lang>/{dev,test}.json`):
    data/<task>/<lang>/{train_1,train_2,train_3,dev,test}.json     each a JSON list of objects
Tasks:
    tc    {id, text, label: {en, zh}}                              -> ClassificationItem (label = en)
    mrc   {id, context: [...], question, options: [...], answer: "A"} -> ChoiceItem
    rs    {id, context: [...], options: [...], answer: "A"}      -> ChoiceItem (fixed question)
    math  {id, question, cot: {en, zh}, answer}                   -> MathItem (rationale = cot.en)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from lrmerge.data.common import bad_data, check_choice, hub_file, is_hub_id, local_path, parse_int, read_json_rows, require_fields, require_text, row_where
from lrmerge.data.schema import ChoiceItem, ClassificationItem, MathItem
from lrmerge.prompts import OPTION_LETTERS, RESPONSE_SELECTION_QUESTION

MLIC_HUB_ID = "pkupie/milic-eval"
MlicTask = Literal["tc", "mrc", "rs", "math"]
MLIC_TASKS = ("tc", "mrc", "rs", "math")
MlicSplit = Literal["train_1", "train_2", "train_3", "dev", "test"]
MLIC_SPLITS = ("train_1", "train_2", "train_3", "dev", "test")


def mlic_file(source: str | Path, task: str, lang: str, split: str) -> Path:
    """The JSON file of one task/language/split, downloaded from the hub when source is a hub id."""
    check_choice(task, MLIC_TASKS, "MLiC-Eval task")
    check_choice(split, MLIC_SPLITS, "MLiC-Eval split")
    relative = f"{task}/{lang}/{split}.json"
    if is_hub_id(source):
        return hub_file(str(source), f"data/{relative}")
    root = local_path(source, "MLiC-Eval source")
    candidates = [root / "data" / relative, root / relative]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"MLiC-Eval: no {split} file for task {task}, language {lang}: tried {', '.join(map(str, candidates))}")
    return path


def _passage(context: Any, where: str) -> str:
    if isinstance(context, str):
        return require_text(context, where, "context")
    if not isinstance(context, list) or not context:
        raise bad_data(where, "field context must be a non-empty list of text")
    return "\n".join(require_text(turn, f"{where} context[{i}]", "context") for i, turn in enumerate(context))


def _choice(row: dict, where: str, item_id: str, question: str) -> ChoiceItem:
    options = row["options"]
    if not isinstance(options, list) or len(options) < 2:
        raise bad_data(where, "field options must be a list of at least 2 texts")
    options = tuple(require_text(o, f"{where} options[{i}]", "options") for i, o in enumerate(options))
    letter = require_text(str(row["answer"]), where, "answer").upper()
    index = OPTION_LETTERS.find(letter) if len(letter) == 1 else -1
    if not 0 <= index < len(options):
        raise bad_data(where, f"field answer {row['answer']!r} is not one of the option letters {OPTION_LETTERS[:len(options)]}")
    return ChoiceItem(id=item_id, passage=_passage(row["context"], where), question=question, options=options, answer=index)


def _english(value: Any, where: str, field: str) -> str:
    if not isinstance(value, dict) or "en" not in value:
        raise bad_data(where, f"field {field} must be an object with an 'en' entry")
    return require_text(value["en"], where, f"{field}.en")


def mlic_item(task: str, row: dict, where: str, prefix: str) -> ClassificationItem | ChoiceItem | MathItem:
    """One normalised item from one MLiC-Eval row (see the module docstring for the schemas)."""
    require_fields(row, ("id",), where)
    item_id = f"{prefix}/{row['id']}"
    if task == "tc":
        require_fields(row, ("text", "label"), where)
        return ClassificationItem(id=item_id, text=require_text(row["text"], where, "text"), label=_english(row["label"], where, "label"))
    if task == "mrc":
        require_fields(row, ("context", "question", "options", "answer"), where)
        return _choice(row, where, item_id, require_text(row["question"], where, "question"))
    if task == "rs":
        require_fields(row, ("context", "options", "answer"), where)
        return _choice(row, where, item_id, RESPONSE_SELECTION_QUESTION)
    if task == "math":
        require_fields(row, ("question", "answer"), where)
        rationale = _english(row["cot"], where, "cot") if row.get("cot") is not None else ""
        return MathItem(id=item_id, question=require_text(row["question"], where, "question"), answer=parse_int(row["answer"], where, "answer"), rationale=rationale)
    raise ValueError(f"unknown MLiC-Eval task {task!r}; allowed: {', '.join(MLIC_TASKS)}")


def load_mlic(source: str | Path, task: MlicTask, lang: str, split: MlicSplit) -> list:
    """MLiC-Eval items of one task, language ("bo", "ug", "mn"; demo "tbx", "mnx") and split."""
    path = mlic_file(source, task, lang, split)
    prefix = f"mlic/{task}/{lang}/{split}"
    return [mlic_item(task, row, row_where(path, number), prefix) for number, row in enumerate(read_json_rows(path), start=1)]


def mlic_tc_labels(source: str | Path, lang: str, splits: tuple[str, ...] = ("dev", "test")) -> tuple[str, ...]:
    """The topic labels of MLiC-Eval TC for one language, sorted: the union over the given splits, so that
    dev and test are scored against the same label list (the benchmark ships no label file)."""
    labels = {item.label for split in splits for item in load_mlic(source, "tc", lang, split)}
    if not labels:
        raise ValueError(f"MLiC-Eval TC {lang}: no labels found in splits {', '.join(splits)} of {source}")
    return tuple(sorted(labels))
