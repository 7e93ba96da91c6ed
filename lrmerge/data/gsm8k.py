"""GSM8K (Cobbe et al., 2021): the 7,473 training problems join FLAN in the SFT data (paper section 4).

Rows are JSONL `{"question", "answer"}`; the answer is a worked rationale with `<<expr=value>>` calculator
annotations, then a last line `#### N`. Sources: a .jsonl file, a folder with `{train,test}.jsonl`, or hub
`openai/gsm8k` config `main`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from lrmerge.data.common import bad_data, check_choice, is_hub_id, load_hub_rows, local_path, parse_int, read_json_rows, require_fields, require_text, row_where
from lrmerge.data.schema import MathItem
from lrmerge.prompts import math_answer, math_prompt

GSM8K_HUB_ID = "openai/gsm8k"
GSM8K_CONFIG = "main"
Gsm8kSplit = Literal["train", "test"]
GSM8K_SPLITS = ("train", "test")
CALCULATOR_ANNOTATION = re.compile(r"<<[^<>]*>>")
FINAL_ANSWER = "####"


def parse_gsm8k_answer(answer: str, where: str = "GSM8K answer") -> tuple[str, int]:
    """(rationale without calculator annotations, final integer) from a GSM8K answer field."""
    answer = require_text(answer, where, "answer")
    if FINAL_ANSWER not in answer:
        raise bad_data(where, f"field answer has no final `{FINAL_ANSWER} N` line")
    rationale, final = answer.rsplit(FINAL_ANSWER, 1)
    rationale = CALCULATOR_ANNOTATION.sub("", rationale).strip()
    return rationale, parse_int(final.strip(), where, "answer (after ####)")


def _items(rows: list[dict], where: str, prefix: str) -> list[MathItem]:
    items = []
    for number, row in enumerate(rows, start=1):
        at = row_where(where, number)
        require_fields(row, ("question", "answer"), at)
        rationale, answer = parse_gsm8k_answer(row["answer"], at)
        items.append(MathItem(id=f"{prefix}/{number - 1}", question=require_text(row["question"], at, "question"), answer=answer, rationale=rationale))
    return items


def load_gsm8k(source: str | Path, split: Gsm8kSplit) -> list[MathItem]:
    """GSM8K items with rationales: source is a .jsonl file, a folder with `<split>.jsonl`, or a hub id."""
    check_choice(split, GSM8K_SPLITS, "GSM8K split")
    prefix = f"gsm8k/{split}"
    if is_hub_id(source):
        rows, where = load_hub_rows(str(source), GSM8K_CONFIG, split)
        return _items(rows, where, prefix)
    path = local_path(source, "GSM8K source")
    if path.is_dir():
        path = path / f"{split}.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"GSM8K: no {split} file {path}")
    return _items(read_json_rows(path), str(path), prefix)


def gsm8k_sft_records(items: list[MathItem], lang: str = "eng") -> list[dict[str, str]]:
    """SFT records {"prompt", "response", "task": "gsm8k", "lang"} in the study's math prompt format."""
    return [{"prompt": math_prompt(item.question), "response": math_answer(item.answer, item.rationale), "task": "gsm8k", "lang": lang} for item in items]
