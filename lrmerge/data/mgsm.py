"""MGSM math word problems (Shi et al., 2022): the 250 GSM8K test problems translated; integer answers.

Sources:
    a TSV file without header, `question<TAB>answer` (the benchmark's `mgsm_<lang>.tsv`), or a folder
    holding `mgsm_<lang>.tsv`;
    a pre-split folder `<dir>/<lang>/{dev,test}.tsv` (the demo world's `<world>/eval/mgsm/`);
    hub `juletxara/mgsm`, config = language (bn, te, en ...), split `test`, integer in `answer_number`.
Dev/test rule (Table 6: dev 50 / test 200): the first fifth of the rows in file order is dev (50 of 250),
the rest is test. Answers may carry thousands separators or native digits (Bengali, Telugu): see parse_int.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lrmerge.data.common import bad_data, check_choice, is_hub_id, load_hub_rows, local_path, parse_int, require_fields, require_text, row_where
from lrmerge.data.schema import MathItem

MGSM_HUB_ID = "juletxara/mgsm"
MGSM_DEV_FRACTION = 0.2  # first 50 of 250 rows
MgsmSplit = Literal["dev", "test", "all"]
MGSM_SPLITS = ("dev", "test", "all")


def read_mgsm_tsv(path: Path, id_prefix: str) -> list[MathItem]:
    """All rows of a `question<TAB>answer` file (no header); ids are the 0-based row number."""
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    items = []
    for number, line in enumerate(lines, start=1):
        where = row_where(path, number)
        if "\t" not in line:
            raise bad_data(where, "expected `question<TAB>answer`, found no tab (missing answer column)")
        question, answer = line.rsplit("\t", 1)
        items.append(MathItem(id=f"{id_prefix}/{number - 1}", question=require_text(question, where, "question"), answer=parse_int(answer, where, "answer")))
    return items


def dev_test_split(items: list, split: str, dev_fraction: float = MGSM_DEV_FRACTION) -> list:
    """The first round(dev_fraction * n) items are dev, the rest test ("all": every item)."""
    if split == "all":
        return list(items)
    cut = round(dev_fraction * len(items))
    return list(items[:cut]) if split == "dev" else list(items[cut:])


def load_mgsm(source: str | Path, lang: str, split: MgsmSplit) -> list[MathItem]:
    """MGSM items of one language ("bn", "te", "en"; demo world "eng", "tbx", "mnx")."""
    check_choice(split, MGSM_SPLITS, "MGSM split")
    prefix = f"mgsm/{lang}"
    if is_hub_id(source):
        rows, where = load_hub_rows(str(source), lang, "test")
        items = []
        for number, row in enumerate(rows, start=1):
            at = row_where(where, number)
            require_fields(row, ("question", "answer_number"), at)
            items.append(MathItem(id=f"{prefix}/{number - 1}", question=require_text(row["question"], at, "question"), answer=parse_int(row["answer_number"], at, "answer_number")))
        return dev_test_split(items, split)
    path = local_path(source, "MGSM source")
    if path.is_dir():
        presplit = path / lang
        if presplit.is_dir():
            wanted = ("dev", "test") if split == "all" else (split,)
            files = [presplit / f"{name}.tsv" for name in wanted]
            for file in files:
                if not file.is_file():
                    raise FileNotFoundError(f"MGSM: pre-split folder {presplit} lacks {file.name}")
            return [item for file in files for item in read_mgsm_tsv(file, f"{prefix}/{file.stem}")]
        path = path / f"mgsm_{lang}.tsv"
        if not path.is_file():
            raise FileNotFoundError(f"MGSM: found neither {presplit}/{{dev,test}}.tsv nor {path}")
    return dev_test_split(read_mgsm_tsv(path, prefix), split)
