"""SFT-flan data from its parts (FLAN + GSM8K in the paper; offline: GSM8K train and SIB-200 topic
classification in English), written as one JSONL of {prompt, response, task, lang} records with the study's
prompt templates (`lrmerge.prompts`, the same ones evaluation uses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from lrmerge import prompts
from lrmerge.sources.spec import SFTPart

FLAN_FIELDS = ("inputs", "targets")  # Muennighoff/flan rows


def part_records(part: SFTPart, where: str) -> list[dict]:
    """The records of one part; errors name the part (``source.sft_flan[1]``) and its file."""
    from lrmerge.data.common import is_hub_id

    if not is_hub_id(part.source) and not Path(part.source).exists():
        raise FileNotFoundError(f"{where}.source: no such file or folder: {part.source}")
    try:
        records = _records(part)
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise type(err)(f"{where} ({part.kind}): {err}") from None
    if not records:
        raise ValueError(f"{where} ({part.kind}): {part.source} gave no records")
    return records[: part.limit] if part.limit else records


def _records(part: SFTPart) -> list[dict]:
    if part.kind == "jsonl":
        from lrmerge.train.data import read_sft_jsonl

        return [{**r, "task": r.get("task", "jsonl"), "lang": r.get("lang", part.lang)} for r in read_sft_jsonl(part.source)]
    if part.kind == "gsm8k":
        from lrmerge.data.gsm8k import gsm8k_sft_records, load_gsm8k

        return gsm8k_sft_records(load_gsm8k(part.source, "train"), part.lang)
    if part.kind == "sib200_topic":
        from lrmerge.data.loaders import benchmark_source
        from lrmerge.data.sib200 import load_sib200
        from lrmerge.languages import benchmark_codes

        folder = benchmark_source("sib200", part.source)
        items, labels = load_sib200(folder, benchmark_codes("sib200", part.lang)[0], "train")
        return [{"prompt": prompts.topic_prompt(item.text, labels),
                 "response": prompts.letter_answer(labels.index(item.label)), "task": "sib200_topic", "lang": part.lang}
                for item in items]
    if part.kind == "flan_hub":
        from datasets import load_dataset

        rows = load_dataset(part.source, split="train", streaming=True)
        out = []
        for row in rows:
            missing = [f for f in FLAN_FIELDS if f not in row]
            if missing:
                raise KeyError(f"rows lack the fields {missing} (have {sorted(row)})")
            out.append({"prompt": row["inputs"], "response": " " + row["targets"].strip(), "task": "flan", "lang": "eng"})
            if part.limit and len(out) >= part.limit:
                break
        return out
    raise ValueError(f"unknown SFT part kind {part.kind!r}")


def build_sft_file(parts: Sequence[SFTPart], path: Path, field: str = "source.sft_flan") -> dict:
    """Write the records of every part to ``path`` (JSONL); returns counts per part kind."""
    from lrmerge.runs import atomic_write_text

    records, counts = [], {}
    for index, part in enumerate(parts):
        rows = part_records(part, f"{field}[{index}]")
        counts[f"{part.kind}:{Path(part.source).name}"] = len(rows)
        records += rows
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return counts
