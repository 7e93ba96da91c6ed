"""Run folders: atomic outputs and the record (config, seed, versions) kept next to every output."""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from lrmerge.errors import UserError

RUN_RECORD = "lrmerge_run.json"
TRACKED_LIBRARIES = ("lrmerge", "torch", "transformers", "datasets", "mergekit", "safetensors", "accelerate", "tokenizers")


@contextlib.contextmanager
def exclusive(path: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``<path>.lock`` (blocking): work that several processes may start at once — the
    demo world, a model shared across languages — is done by the first while the others wait, then find it done."""
    import fcntl

    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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


def machine_facts() -> dict[str, Any]:
    """The machine a result was computed on: CPU model, the kernels torch picked for it, core count. Training on a
    CPU with other kernels (AVX2 vs AVX-512) rounds differently, so the same seed gives other weights there."""
    return dict(_machine_facts())


@functools.cache
def _machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"cpu": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        facts["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        facts["torch_cpu_capability"] = "unknown"
    return facts


def describe_machine(facts: dict[str, Any]) -> str:
    """One line for a report: 'AMD EPYC, torch CPU kernels AVX2, 2 logical CPUs'."""
    return (f"{facts.get('cpu', 'unknown CPU')}, torch CPU kernels {facts.get('torch_cpu_capability', 'unknown')}, "
            f"{facts.get('logical_cpus', '?')} logical CPUs")


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
        "machine": machine_facts(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }
    path = Path(folder) / RUN_RECORD
    path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_run_record(folder: str | Path) -> dict | None:
    path = Path(folder) / RUN_RECORD
    return json.loads(path.read_text()) if path.exists() else None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def respect_umask(path: Path, directory: bool) -> None:
    """mkdtemp / mkstemp create 0700 / 0600; give outputs the modes the user's umask asks for (0755 / 0644)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _real(path: str | Path) -> Path:
    """Absolute path with symlinks resolved (a missing tail is kept as given)."""
    return Path(os.path.realpath(os.path.abspath(str(path))))


def check_not_aliasing(final: str | Path, inputs: Iterable[str | Path], what: str = "output folder") -> None:
    """Refuse an output that is, contains or lies inside one of ``inputs`` (an --overwrite would delete it)."""
    out = _real(final)
    for given in inputs:
        if given is None:
            continue
        source = _real(given)
        if out == source:
            raise UserError(f"{what} {final} is the input {given}; choose a new folder for the output")
        if source.is_relative_to(out):
            raise UserError(f"{what} {final} contains the input {given}; choose a folder outside the inputs")
        if out.is_relative_to(source):
            raise UserError(f"{what} {final} lies inside the input {given}; choose a folder outside the inputs")


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name: str, marker: str) -> int | None:
    """PID recorded in a temp name ``.<final>.<marker>-<pid>-...`` (None for a foreign or older name)."""
    tail = name.split(f".{marker}-", 1)[-1]
    head = tail.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def remove_tree(path: Path) -> None:
    """rmtree that also removes read-only folders and files (it makes them writable first)."""
    def retry(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target) or ".", 0o700)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, onexc=retry) if sys.version_info >= (3, 12) else shutil.rmtree(path, onerror=retry)


def sweep_stale(final: str | Path) -> list[Path]:
    """Remove ``.<name>.tmp-*`` / ``.<name>.old-*`` siblings of ``final`` left by a killed process (its PID is
    gone). Temp folders of live processes (another run writing now) are left alone. Returns what was removed."""
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    for marker in ("tmp", "old"):
        for path in final.parent.glob(f".{glob.escape(final.name)}.{marker}-*"):
            pid = _owner_pid(path.name, marker)
            if pid is None or not pid_alive(pid):
                remove_tree(path)
                removed.append(path)
    return removed


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM, so every ``atomic_output_dir`` on the stack removes its temp folder."""


def _on_sigterm(signum, frame):
    raise Terminated(128 + signum)


def install_sigterm_cleanup() -> None:
    """Turn SIGTERM into ``Terminated`` (a SystemExit) while the default handler is in place, main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not in the main interpreter thread / not allowed here
        pass


def _check_final(final: Path) -> None:
    if final.name in ("", ".", ".."):
        raise UserError(f"output folder {str(final)!r} is not a new folder name; give a path such as ./merged")
    if final.is_symlink():
        raise UserError(f"output folder {final} is a symbolic link (to {os.readlink(final)}); give a real path")
    cwd = Path.cwd().resolve()
    if final.exists() and cwd.is_relative_to(final.resolve()):
        raise UserError(f"output folder {final} is or contains the current directory; choose another folder")


@contextlib.contextmanager
def atomic_output_dir(final: str | Path, overwrite: bool = False,
                      inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to ``final`` only if the block completes.

    An interrupted or failing block (SIGTERM included) leaves nothing at ``final`` and removes its temporary folder,
    so a half-written model or table can never be mistaken for a finished one; a SIGKILLed one's temp folder is
    swept by the next call for the same ``final``. ``final`` may not be, contain or lie inside one of ``inputs``.
    The folder gets the modes the umask asks for (0755 under umask 022).
    """
    final = Path(final)
    _check_final(final)
    check_not_aliasing(final, inputs)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"output folder already exists: {final} (pass --overwrite to replace it)")
    install_sigterm_cleanup()
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    try:
        respect_umask(tmp, directory=True)
        yield tmp
        if final.exists() or final.is_symlink():
            trash = final.with_name(f".{final.name}.old-{os.getpid()}-{tmp.name.rsplit('-', 1)[-1]}")
            final.rename(trash)
            try:
                tmp.rename(final)
            except BaseException:
                trash.rename(final)  # put the old output back
                raise
            remove_tree(trash)
        else:
            tmp.rename(final)
    except BaseException:
        remove_tree(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a file through a temporary sibling and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        respect_umask(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------------------------------- content identity

DIGEST_MEMO = "file_digests.json"
_MEMO: dict[str, list] = {}  # real path -> [size, mtime_ns, sha256]; mirrored in $LRMERGE_CACHE/file_digests.json
_MEMO_LOCK = threading.Lock()


def cache_home() -> Path:
    """Where small memos live: $LRMERGE_CACHE, else ~/.cache/lrmerge."""
    return Path(os.environ.get("LRMERGE_CACHE") or Path.home() / ".cache" / "lrmerge")


def _load_memo() -> dict[str, list]:
    try:
        return json.loads((cache_home() / DIGEST_MEMO).read_text())
    except (OSError, ValueError):
        return {}


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, computed once and remembered with its size and mtime_ns (in memory and in
    ``cache_home()/file_digests.json``): a file rewritten in place, even with the same size and header, gets a new
    mtime and so a new hash."""
    real = str(_real(path))
    stat = os.stat(real)
    with _MEMO_LOCK:
        known = _MEMO.get(real) or _load_memo().get(real)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            _MEMO[real] = known
            return known[2]
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    entry = [stat.st_size, stat.st_mtime_ns, value]
    with _MEMO_LOCK:
        _MEMO[real] = entry
        try:
            memo = _load_memo()
            memo[real] = entry
            atomic_write_text(cache_home() / DIGEST_MEMO, json.dumps(memo, sort_keys=True))
        except OSError:  # a read-only home: the in-memory memo still serves this process
            pass
    return value


def content_identity(folder: str | Path) -> dict[str, str]:
    """{file name: sha256} of a model folder's top-level files (weights, config, tokenizer), without the run record
    and hidden files: what a cache key needs to tell two models apart, whatever their paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    return {p.name: file_digest(p) for p in sorted(folder.iterdir())
            if p.is_file() and p.name != RUN_RECORD and not p.name.startswith(".")}
