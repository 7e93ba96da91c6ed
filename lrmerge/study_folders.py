"""Run folders of `lrmerge study`: one run at a time per run folder, and stage folders that never lose completed work.

A rerun stage's old folder waits aside (``.<stage>.old-<pid>-*``) while the new one is built at its place; it comes
back if the new run fails, is interrupted or is killed (``recover_stage_folder`` on the next run), and the failed
attempt is kept as ``<stage>.failed/``. A stage is complete only with its completion record *and* its outputs.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Iterator

from lrmerge.errors import UserError
from lrmerge.runs import pid_alive, remove_tree

COMPLETE = "_stage_complete.json"
LOCK_FILE = ".lrmerge-study.lock"
MANIFEST = "outputs.json"  # lrmerge.pipeline.MANIFEST (not imported: pipeline pulls in pandas)


@contextlib.contextmanager
def run_folder_lock(root: Path) -> Iterator[Path]:
    """Hold ``<root>/.lrmerge-study.lock`` (one ``lrmerge study`` per run folder; re-entrant in one process)."""
    import fcntl

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    real = str(path.resolve())
    if _HELD.get(real):
        _HELD[real] += 1
        try:
            yield path
        finally:
            _HELD[real] -= 1
        return
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise UserError(f"run folder {root} is in use by another `lrmerge study` (pid {owner}); wait for it to "
                            "finish or pass another --root") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _HELD[real] = 1
        try:
            yield path
        finally:
            _HELD.pop(real, None)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


_HELD: dict[str, int] = {}


def aside_name(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def is_complete(folder: Path, key: str | None = None) -> bool:
    """The completion record is there (with ``key`` when given) and so is the stage's outputs.json."""
    record = folder / COMPLETE
    if not (record.exists() and (folder / MANIFEST).exists()):
        return False
    if key is None:
        return True
    try:
        return json.loads(record.read_text()).get("key") == key
    except ValueError:
        return False


def keep_failed(folder: Path) -> Path:
    failed = folder.with_name(f"{folder.name}.failed")
    remove_tree(failed)
    if folder.exists():
        folder.rename(failed)
    return failed


def recover_stage_folder(folder: Path) -> None:
    """After a killed run: the old outputs that waited aside come back unless the new folder is complete."""
    for aside in sorted(folder.parent.glob(f".{folder.name}.old-*")) if folder.parent.is_dir() else []:
        pid = aside.name.split(".old-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and pid_alive(int(pid)) and int(pid) != os.getpid():
            continue
        if is_complete(folder):
            remove_tree(aside)
        else:
            keep_failed(folder)
            aside.rename(folder)
