"""One entry point for every evaluation set: `load_task(benchmark, lang, split, source)`.

`source` is a hub dataset id, a benchmark's own folder or file, or an evaluation root holding one folder per
benchmark (`sib200/`, `belebele/`, `mgsm/`, `mlic/`), such as the demo world's `<world>/eval` or the shared
`data/` folder. `lang` is a project code (tam, ben, mvf, tbx ...; mapped by lrmerge.languages) or the
benchmark's own code (tam_Taml, bn, mn ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lrmerge.data.belebele import load_belebele
from lrmerge.data.common import check_choice, is_hub_id
from lrmerge.data.mgsm import load_mgsm
from lrmerge.data.mlic import load_mlic, mlic_tc_labels
from lrmerge.data.schema import EvalItem
from lrmerge.data.sib200 import load_sib200
from lrmerge.languages import BENCHMARKS, benchmark_codes

Benchmark = Literal["sib200", "belebele", "mgsm", "mlic_tc", "mlic_mrc", "mlic_rs", "mlic_math"]
Split = Literal["dev", "test"]
SPLITS = ("dev", "test")
BENCHMARK_FOLDER = {"sib200": "sib200", "belebele": "belebele", "mgsm": "mgsm", **{b: "mlic" for b in BENCHMARKS if b.startswith("mlic_")}}
CLASSIFICATION = ("sib200", "mlic_tc")


@dataclass(frozen=True)
class TaskData:
    benchmark: str
    lang: str  # the code the loader used
    split: str
    items: list[EvalItem]
    labels: tuple[str, ...] | None  # classification: labels in benchmark order; otherwise None


def benchmark_source(benchmark: str, source: str | Path) -> str | Path:
    """A hub id unchanged; an evaluation root narrowed to the benchmark's folder when it has one."""
    if is_hub_id(source):
        return source
    folder = Path(source) / BENCHMARK_FOLDER[benchmark]
    return folder if folder.is_dir() else Path(source)


def _load_one(benchmark: str, code: str, split: str, source: str | Path) -> TaskData:
    if benchmark == "sib200":
        items, labels = load_sib200(source, code, split)
        return TaskData(benchmark, code, split, items, labels)
    if benchmark == "belebele":
        return TaskData(benchmark, code, split, load_belebele(source, code, split), None)
    if benchmark == "mgsm":
        return TaskData(benchmark, code, split, load_mgsm(source, code, split), None)
    task = benchmark.removeprefix("mlic_")
    items = load_mlic(source, task, code, split)
    labels = mlic_tc_labels(source, code) if benchmark == "mlic_tc" else None
    return TaskData(benchmark, code, split, items, labels)


def load_task(benchmark: Benchmark, lang: str, split: Split, source: str | Path) -> TaskData:
    """Items (and labels, for classification) of one benchmark, language and split."""
    check_choice(benchmark, BENCHMARKS, "benchmark")
    check_choice(split, SPLITS, "split")
    source = benchmark_source(benchmark, source)
    codes = benchmark_codes(benchmark, lang)
    first_error: FileNotFoundError | None = None
    for code in codes:  # local folders may be named by the benchmark's code or by the project code (demo world)
        try:
            return _load_one(benchmark, code, split, source)
        except FileNotFoundError as err:
            first_error = first_error or err
            if is_hub_id(source):
                raise
    raise FileNotFoundError(f"{benchmark} {lang} {split}: tried codes {', '.join(codes)} in {source}: {first_error}")


def load_task_items(benchmark: Benchmark, lang: str, split: Split, source: str | Path) -> list[EvalItem]:
    """The normalised items of one benchmark, language and split (see `load_task` for labels)."""
    return load_task(benchmark, lang, split, source).items


def task_labels(benchmark: Benchmark, lang: str, source: str | Path) -> tuple[str, ...] | None:
    """The label list of a classification benchmark (SIB-200, MLiC-Eval TC) in benchmark order; None otherwise."""
    check_choice(benchmark, BENCHMARKS, "benchmark")
    if benchmark not in CLASSIFICATION:
        return None
    return load_task(benchmark, lang, "dev", source).labels
