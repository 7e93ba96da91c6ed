"""SIB-200 topic classification (Adelani et al., 2024): 7 topics over FLORES-200 sentences.

Local layout (the benchmark's own release, and the demo world's `<world>/eval/sib200/`):
    <dir>/<lang_code>/{train,dev,test}.tsv   header `index_id<TAB>category<TAB>text`, CSV quoting (as pandas writes)
    <dir>/<lang_code>/labels.txt              one topic a line, benchmark order (or <dir>/labels.txt)
Hub: `Davlan/sib200`, config = the FLORES code (tam_Taml ...), splits train/validation/test.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

from lrmerge.data.common import bad_data, check_choice, is_hub_id, load_hub_rows, local_path, require_fields, require_text, row_where
from lrmerge.data.schema import ClassificationItem

SIB200_HUB_ID = "Davlan/sib200"
SIB200_COLUMNS = ("index_id", "category", "text")
# The order of the benchmark's labels.txt; used for hub data, which carries no label file.
SIB200_LABELS = ("science/technology", "travel", "politics", "sports", "health", "entertainment", "geography")
Sib200Split = Literal["train", "dev", "test"]
SIB200_SPLITS = ("train", "dev", "test")
_HUB_SPLIT = {"train": "train", "dev": "validation", "test": "test"}


def read_labels(path: Path) -> tuple[str, ...]:
    labels = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not labels:
        raise bad_data(str(path), "no labels")
    if len(set(labels)) != len(labels):
        raise bad_data(str(path), "duplicate labels")
    return labels


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t")  # CSV quoting: texts with quotes are "..." with "" escapes
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != list(SIB200_COLUMNS):
            raise bad_data(f"{path} header", f"expected columns {', '.join(SIB200_COLUMNS)}, got {header}")
        rows = []
        for number, fields in enumerate(reader, start=1):
            if not fields:
                continue
            if len(fields) != len(SIB200_COLUMNS):
                raise bad_data(row_where(path, number), f"expected {len(SIB200_COLUMNS)} tab-separated fields, got {len(fields)}")
            rows.append(dict(zip(SIB200_COLUMNS, fields)))
    return rows


def _items(rows: list[dict], labels: tuple[str, ...], where: str, prefix: str) -> list[ClassificationItem]:
    items = []
    for number, row in enumerate(rows, start=1):
        at = row_where(where, number)
        require_fields(row, SIB200_COLUMNS, at)
        label = require_text(row["category"], at, "category")
        if label not in labels:
            raise bad_data(at, f"field category {label!r} is not one of the labels {', '.join(labels)}")
        index_id = require_text(str(row["index_id"]), at, "index_id")
        items.append(ClassificationItem(id=f"{prefix}/{index_id}", text=require_text(row["text"], at, "text"), label=label))
    return items


def load_sib200(source: str | Path, lang_code: str, split: Sib200Split) -> tuple[list[ClassificationItem], tuple[str, ...]]:
    """SIB-200 items of one language and split, and the labels in benchmark order.

    Args:
        source: the folder holding `<lang_code>/` (local) or a hub id such as "Davlan/sib200".
        lang_code: FLORES-200 code, e.g. "tam_Taml" (demo world: "tbx_Tibt").
        split: "train", "dev" or "test".
    """
    check_choice(split, SIB200_SPLITS, "SIB-200 split")
    prefix = f"sib200/{lang_code}/{split}"
    if is_hub_id(source):
        rows, where = load_hub_rows(str(source), lang_code, _HUB_SPLIT[split])
        return _items(rows, SIB200_LABELS, where, prefix), SIB200_LABELS
    root = local_path(source, "SIB-200 source")
    folder = root / lang_code
    if not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(f"SIB-200: no folder for language {lang_code} in {root}; found: {', '.join(known) or 'none'}")
    label_file = next((p for p in (folder / "labels.txt", root / "labels.txt") if p.is_file()), None)
    if label_file is None:
        raise FileNotFoundError(f"SIB-200: no labels.txt in {folder} or {root}")
    path = folder / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"SIB-200: no {split} file {path}")
    labels = read_labels(label_file)
    return _items(_read_tsv(path), labels, str(path), prefix), labels
