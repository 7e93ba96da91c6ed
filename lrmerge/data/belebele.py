"""Belebele multiple-choice reading comprehension (Bandarkar et al., 2023): 900 questions per language
over 488 FLORES passages, four options each.

Sources:
    hub `facebook/belebele`, config = FLORES code (tam_Taml ...), split `test` (all 900 rows);
    a local .jsonl / .json / .parquet file with those rows, or `<dir>/<code>.jsonl`;
    a pre-split folder `<dir>/<code>/{dev,test}.jsonl` (the demo world's `<world>/eval/belebele/`).
Rows: link, question_number, flores_passage, question, mc_answer1..mc_answer4, correct_answer_num ("1".."4").

Dev/test rule (Table 6 lists 720 dev / 2,880 test: 4 Indian languages x 180 / 720 of the 900 rows): questions
are grouped by passage `link`; groups are visited in the order of sha256(link) and go to dev while dev stays
within round(0.2 * rows) questions (180 of 900), otherwise to test. So a passage never spans both splits, the
split does not depend on file order, and it is the same for every language (FLORES passages are parallel).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from lrmerge.data.common import bad_data, check_choice, is_hub_id, load_hub_rows, local_path, parse_int, read_json_rows, require_fields, require_text, row_where
from lrmerge.data.schema import ChoiceItem

BELEBELE_HUB_ID = "facebook/belebele"
BELEBELE_FIELDS = ("link", "question_number", "flores_passage", "question", "mc_answer1", "mc_answer2", "mc_answer3", "mc_answer4", "correct_answer_num")
BELEBELE_DEV_FRACTION = 0.2  # 180 of 900 rows per language
BelebeleSplit = Literal["dev", "test", "all"]
BELEBELE_SPLITS = ("dev", "test", "all")
_FILE_TYPES = (".jsonl", ".json", ".parquet")


def split_by_passage(rows: list[dict], dev_fraction: float = BELEBELE_DEV_FRACTION) -> dict[str, list[dict]]:
    """Deterministic dev/test split keeping each passage (link) in one split; see the module docstring."""
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(str(row["link"]), []).append(index)
    dev_size = round(dev_fraction * len(rows))
    dev: set[int] = set()
    for link in sorted(groups, key=lambda link: hashlib.sha256(link.encode()).hexdigest()):
        if len(dev) + len(groups[link]) <= dev_size:
            dev.update(groups[link])
    return {
        "dev": [row for i, row in enumerate(rows) if i in dev],
        "test": [row for i, row in enumerate(rows) if i not in dev],
    }


def _item(row: dict, where: str, lang_code: str) -> ChoiceItem:
    require_fields(row, BELEBELE_FIELDS, where)
    options = tuple(require_text(row[f"mc_answer{k}"], where, f"mc_answer{k}") for k in range(1, 5))
    correct = parse_int(row["correct_answer_num"], where, "correct_answer_num")
    if not 1 <= correct <= 4:
        raise bad_data(where, f"field correct_answer_num must be 1..4, got {row['correct_answer_num']!r}")
    link = require_text(str(row["link"]), where, "link")
    return ChoiceItem(
        id=f"belebele/{lang_code}/{link}#{row['question_number']}",
        passage=require_text(row["flores_passage"], where, "flores_passage"),
        question=require_text(row["question"], where, "question"),
        options=options,
        answer=correct - 1,
    )


def _items(rows: list[dict], where: str, lang_code: str) -> list[ChoiceItem]:
    return [_item(row, row_where(where, number), lang_code) for number, row in enumerate(rows, start=1)]


def _split_items(rows: list[dict], split: str, where: str, lang_code: str) -> list[ChoiceItem]:
    items = _items(rows, where, lang_code)  # validates every row, numbered as in the file
    if split == "all":
        return items
    chosen = {id(row) for row in split_by_passage(rows)[split]}
    return [item for row, item in zip(rows, items) if id(row) in chosen]


def load_belebele(source: str | Path, lang_code: str, split: BelebeleSplit) -> list[ChoiceItem]:
    """Belebele items of one language: "dev" / "test" by the passage rule (or the pre-split files), or "all".

    Args:
        source: hub id ("facebook/belebele"), a file of rows, or a folder (see the module docstring).
        lang_code: FLORES-200 code, e.g. "tam_Taml" (demo world: "tbx_Tibt").
    """
    check_choice(split, BELEBELE_SPLITS, "Belebele split")
    if is_hub_id(source):
        rows, where = load_hub_rows(str(source), lang_code, "test")
        return _split_items(rows, split, where, lang_code)
    path = local_path(source, "Belebele source")
    if path.is_dir():
        presplit = path / lang_code
        if presplit.is_dir():
            files = {name: presplit / f"{name}.jsonl" for name in ("dev", "test")}
            for file in files.values():
                if not file.is_file():
                    raise FileNotFoundError(f"Belebele: pre-split folder {presplit} lacks {file.name}")
            wanted = ("dev", "test") if split == "all" else (split,)
            return [item for name in wanted for item in _items(read_json_rows(files[name]), str(files[name]), lang_code)]
        candidates = [path / f"{lang_code}{suffix}" for suffix in _FILE_TYPES]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"Belebele: found neither {presplit}/{{dev,test}}.jsonl nor {lang_code}.jsonl/.json/.parquet in {source}")
    if path.suffix.lower() not in _FILE_TYPES:
        raise ValueError(f"Belebele: unsupported file {path}; expected {', '.join(_FILE_TYPES)}")
    return _split_items(read_json_rows(path), split, str(path), lang_code)
