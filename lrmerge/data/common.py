"""Shared pieces of the benchmark loaders: where data comes from (a local path or the hub), row validation
with errors that name the file, row and field, and robust integer answers (commas, non-ASCII digits).
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable, Sequence

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class HubUnavailableError(ConnectionError):
    """A hub dataset was asked for but the hub cannot be reached (offline mode or no network)."""


def bad_data(where: str, problem: str) -> ValueError:
    return ValueError(f"{where}: {problem}")


def row_where(path: str | Path, row: int | str) -> str:
    """'<file> row <n>' (rows are 1-based data rows, header excluded) for error messages."""
    return f"{path} row {row}"


def is_hub_id(source: str | Path) -> bool:
    """A source is a hub dataset id when it is 'owner/name' and no such local path exists."""
    return isinstance(source, str) and not Path(source).exists() and bool(HUB_ID.match(source))


def local_path(source: str | Path, what: str) -> Path:
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{what}: no such file or folder: {path}")
    return path


def hub_offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _hub_error(dataset_id: str, detail: str, err: Exception) -> HubUnavailableError:
    prefix = f"needs the hub: {dataset_id}"
    if hub_offline():
        return HubUnavailableError(f"{prefix} ({detail}); set HF_HUB_OFFLINE=0 and network access ({type(err).__name__}: {err})")
    return HubUnavailableError(f"could not load {dataset_id} ({detail}) from the hub: {type(err).__name__}: {err}")


def load_hub_rows(dataset_id: str, config: str | None, split: str) -> tuple[list[dict[str, Any]], str]:
    """Rows of one split of a hub dataset as plain dicts, plus a label for error messages."""
    import datasets  # imported here: the local loaders do not need it

    where = f"hub {dataset_id}" + (f" config {config}" if config else "") + f" split {split}"
    try:
        table = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as err:  # offline, no network, unknown config: all surface with the dataset named
        raise _hub_error(dataset_id, where, err) from err
    return [dict(row) for row in table], where


def hub_file(dataset_id: str, filename: str) -> Path:
    """Download one file of a hub dataset repository (MLiC-Eval keeps plain JSON files)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(dataset_id, filename, repo_type="dataset"))
    except Exception as err:
        raise _hub_error(dataset_id, f"file {filename}", err) from err


def read_json_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a .jsonl file (one object a line), a .json file (a list of objects) or a .parquet file."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict(orient="records")
    text = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise bad_data(f"{path} line {number}", f"not valid JSON ({err.msg})") from err
    elif suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            raise bad_data(str(path), f"not valid JSON (line {err.lineno}: {err.msg})") from err
        if not isinstance(rows, list):
            raise bad_data(str(path), f"expected a JSON list of objects, got {type(rows).__name__}")
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .jsonl, .json or .parquet")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise bad_data(row_where(path, number), f"expected a JSON object, got {type(row).__name__}")
    return rows


def require_fields(row: dict[str, Any], fields: Iterable[str], where: str) -> None:
    missing = [field for field in fields if field not in row or row[field] is None]
    if missing:
        raise bad_data(where, f"missing field(s) {', '.join(missing)}; row has {', '.join(map(str, row)) or 'no fields'}")


def require_text(value: Any, where: str, field: str) -> str:
    """A non-empty string field (surrounding whitespace stripped)."""
    if not isinstance(value, str):
        raise bad_data(where, f"field {field} must be text, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise bad_data(where, f"field {field} is empty")
    return value


def parse_int(value: Any, where: str, field: str) -> int:
    """An integer answer from an int, or text such as '1,250', '-3', '12.0', '১২' (Bengali) or '౧౨' (Telugu).

    Thousands separators (',', thin and narrow no-break spaces, '_') are dropped; any Unicode decimal digit
    (Bengali U+09E6..09EF, Telugu U+0C66..0C6F, Tibetan, Mongolian, ...) counts; a fractional part must be zero.
    """
    if isinstance(value, bool):
        raise bad_data(where, f"field {field} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise bad_data(where, f"field {field} must be an integer, got {value!r}")
    if not isinstance(value, str):
        raise bad_data(where, f"field {field} must be an integer, got {type(value).__name__}")
    text = re.sub(r"[,_\s\u00a0\u2009\u202f]", "", value)
    text = "".join(str(unicodedata.decimal(ch)) if unicodedata.decimal(ch, None) is not None else ch for ch in text)
    match = re.fullmatch(r"([-+\u2212]?)(\d+)(?:\.(0*))?", text)
    if not match:
        raise bad_data(where, f"field {field} is not an integer: {value!r}")
    sign = -1 if match.group(1) in {"-", "\u2212"} else 1
    return sign * int(match.group(2))


def check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value
