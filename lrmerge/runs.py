"""Run folders: atomic outputs and the record (config, seed, versions) kept next to every output."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

RUN_RECORD = "lrmerge_run.json"
TRACKED_LIBRARIES = ("lrmerge", "torch", "transformers", "datasets", "mergekit", "safetensors", "accelerate", "tokenizers")


def runs_root() -> Path:
    """Root of generated outputs: $LRMERGE_RUNS, else ./runs (ignored by git)."""
    return Path(os.environ.get("LRMERGE_RUNS", "runs")).resolve()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def config_key(config: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-serialisable config (keys sorted), used to key caches."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def write_run_record(folder: str | Path, config: dict, seed: int | None = None, **extra: Any) -> Path:
    """Write lrmerge_run.json (config, seed, library versions, time) into ``folder``."""
    record = {
        "config": config,
        "seed": seed,
        "versions": library_versions(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
    path = Path(folder) / RUN_RECORD
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_run_record(folder: str | Path) -> dict | None:
    path = Path(folder) / RUN_RECORD
    return json.loads(path.read_text()) if path.exists() else None


@contextlib.contextmanager
def atomic_output_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to ``final`` only if the block completes.

    An interrupted or failing block leaves nothing at ``final`` (and removes its temporary folder), so a
    half-written model or table can never be mistaken for a finished one.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite:
        raise FileExistsError(f"output folder already exists: {final} (pass overwrite=True to replace it)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        trash = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(trash)
        tmp.rename(final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        tmp.rename(final)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a file through a temporary sibling and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path
