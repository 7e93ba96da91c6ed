"""Local text for continual pre-training and replay: documents read from files by format, checked for the
language's script, split into training and held-out documents, and written as one-document-a-line files.

Formats (``auto`` picks by suffix): ``lines`` (.txt: one document a line), ``udhr_xml`` (.xml: the UDHR's
``<title>``/``<para>`` texts, one document each), ``sib200_tsv`` (.tsv with a ``text`` column: SIB-200 / FLORES
sentences), ``jsonl_text`` (.jsonl: the ``text`` field of each record).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Iterator, Sequence

from lrmerge.languages import script_share

_SUFFIX_FORMAT = {".txt": "lines", ".xml": "udhr_xml", ".tsv": "sib200_tsv", ".jsonl": "jsonl_text"}
_UDHR_TEXT = re.compile(r"<(title|para)>(.*?)</\1>", re.S)
_TAG = re.compile(r"<[^>]+>")
MIN_SCRIPT_SHARE = 0.5  # a corpus of language X: at least half of its letters in X's script


def file_format(path: Path, declared: str = "auto") -> str:
    if declared != "auto":
        return declared
    if path.suffix.lower() not in _SUFFIX_FORMAT:
        raise ValueError(f"{path}: cannot tell the text format from the suffix {path.suffix!r}; "
                         f"use one of {', '.join(_SUFFIX_FORMAT)} or set format:")
    return _SUFFIX_FORMAT[path.suffix.lower()]


def read_documents(path: Path, fmt: str = "auto") -> Iterator[str]:
    """Documents of one local file (whitespace-normalised, empty ones dropped)."""
    fmt = file_format(path, fmt)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if fmt == "lines":
        docs: Sequence[str] = text.splitlines()
    elif fmt == "udhr_xml":
        docs = [_TAG.sub(" ", body) for _, body in _UDHR_TEXT.findall(text)]
    elif fmt == "sib200_tsv":
        reader = csv.DictReader(text.splitlines(), delimiter="\t")
        if reader.fieldnames is None or "text" not in reader.fieldnames:
            raise ValueError(f"{path}: a sib200_tsv file needs a 'text' column, found {reader.fieldnames}")
        docs = [row["text"] or "" for row in reader]
    elif fmt == "jsonl_text":
        docs = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                record = json.loads(line)
                if "text" not in record:
                    raise ValueError(f"{path} row {number}: no field 'text'")
                docs.append(record["text"])
    else:
        raise ValueError(f"{path}: unknown text format {fmt!r}")
    for doc in docs:
        doc = " ".join(doc.split())
        if doc:
            yield doc


def gather_documents(files: Sequence[str], fmt: str, field: str) -> list[str]:
    """Documents of every file, in order; a missing file or a file with no text names the field."""
    documents: list[str] = []
    for index, name in enumerate(files):
        path = Path(name)
        where = f"{field}.files[{index}]"
        if not path.is_file():
            raise FileNotFoundError(f"{where}: file not found: {path}")
        try:
            docs = list(read_documents(path, fmt))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if not docs:
            raise ValueError(f"{where}: {path} holds no text")
        documents += docs
    return documents


def check_script(documents: Sequence[str], script: str, lang: str, field: str) -> float:
    """The share of letters in the language's script; an error when it is below MIN_SCRIPT_SHARE."""
    share = script_share(" ".join(documents[:2000]), script)
    if share < MIN_SCRIPT_SHARE:
        raise ValueError(f"{field}: the corpus has no {lang} text: only {share:.0%} of its letters are in the "
                         f"{script} script (needs {MIN_SCRIPT_SHARE:.0%}); wrong file or language?")
    return share


def split_heldout(documents: Sequence[str], every: int) -> tuple[list[str], list[str]]:
    """(training, held-out): every ``every``-th document (1-based) is held out; 0 holds none out."""
    if every <= 0:
        return list(documents), []
    train = [d for i, d in enumerate(documents, start=1) if i % every]
    held = [d for i, d in enumerate(documents, start=1) if not i % every]
    return train, held


def write_documents(path: Path, documents: Sequence[str]) -> Path:
    from lrmerge.runs import atomic_write_text

    return atomic_write_text(path, "".join(d.replace("\n", " ") + "\n" for d in documents))
