"""`lrmerge study`: run the notebook study per language with papermill, resumably.

Each stage is one notebook in ``notebooks/``. For every language, stages run in order; the executed copy and the
stage's outputs go to ``runs/<lang>/<stage>/``. A stage whose completion record matches the same parameters, the same
notebook and the same upstream stages is skipped (resume). The first failing stage stops the run and its failing cell
is shown. Cross-language stages (the multi-language merge of Table 5, the paper export) run once, after the languages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from lrmerge.profiles import PROFILES, get_profile, profile_parameters
from lrmerge.runs import atomic_write_text, config_key, library_versions, runs_root

COMPLETE = "_stage_complete.json"
CROSS_LANGUAGE = "all"  # run folder of the cross-language stages: runs/all/<stage>/


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str
    scope: Literal["language", "all"] = "language"


STAGES: tuple[Stage, ...] = (
    Stage("data", "01_data.ipynb"),
    Stage("pretraining", "02_continual_pretraining.ipynb"),
    Stage("sft", "03_sft.ipynb"),
    Stage("merging", "04_merging.ipynb"),
    Stage("evaluation", "05_evaluation.ipynb"),
    Stage("conflicts", "06_sign_conflicts.ipynb"),
    Stage("ties_sv", "07_ties_sv.ipynb"),
    Stage("multilingual", "08_multilingual_merge.ipynb", scope="all"),
    Stage("paper", "09_paper_figures_tables.ipynb", scope="all"),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def notebooks_dir() -> Path:
    env = os.environ.get("LRMERGE_NOTEBOOKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "notebooks"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def declared_parameters(notebook: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(notebook)).keys())


@dataclass
class StageResult:
    lang: str
    stage: str
    status: Literal["ran", "skipped", "failed"]
    seconds: float
    folder: Path
    message: str = ""


def stage_folder(lang: str, stage: Stage, root: Path) -> Path:
    return root / (CROSS_LANGUAGE if stage.scope == "all" else lang) / stage.name


def run_stage(
    stage: Stage,
    lang: str,
    languages: Sequence[str],
    profile: str,
    root: Path,
    upstream_key: str,
    kernel_name: str | None = None,
    overrides: dict | None = None,
) -> tuple[StageResult, str]:
    """Execute one stage notebook unless its completion record already matches; returns (result, stage key)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = notebooks_dir() / stage.notebook
    if not notebook.exists():
        raise FileNotFoundError(f"stage {stage.name!r}: notebook not found: {notebook}")
    folder = stage_folder(lang, stage, root)
    offered = profile_parameters(profile, stage.name)
    offered.update(
        lang=lang if stage.scope == "language" else CROSS_LANGUAGE,
        languages=",".join(languages),
        profile=profile,
        run_root=str(root),
        out_dir=str(folder),
        figures_dir=str(root / "exports" / "figures"),
        tables_dir=str(root / "exports" / "tables"),
    )
    offered.update(overrides or {})
    declared = declared_parameters(notebook)
    parameters = {name: value for name, value in offered.items() if name in declared}
    key = config_key({"parameters": parameters, "notebook": _file_digest(notebook), "upstream": upstream_key})
    record_path = folder / COMPLETE
    if record_path.exists() and json.loads(record_path.read_text()).get("key") == key:
        return StageResult(lang, stage.name, "skipped", 0.0, folder, "complete for the same parameters"), key

    if folder.exists():  # stale or partial outputs of an earlier run: start clean
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    executed = folder / stage.notebook
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            kernel_name=kernel_name or "python3",
            cwd=str(notebook.parent),
            progress_bar=False,
        )
    except PapermillExecutionError as error:
        seconds = time.perf_counter() - start
        message = (
            f"stage {stage.name!r} ({lang}) failed in cell {error.cell_index} "
            f"(executed copy: {executed}):\n{error.source}\n{error.ename}: {error.evalue}"
        )
        return StageResult(lang, stage.name, "failed", seconds, folder, message), key
    seconds = time.perf_counter() - start
    record = {"key": key, "stage": stage.name, "lang": lang, "parameters": parameters, "seconds": round(seconds, 2),
              "versions": library_versions(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_text(record_path, json.dumps(record, indent=2, default=str) + "\n")
    return StageResult(lang, stage.name, "ran", seconds, folder), key


def run_study(
    languages: Sequence[str],
    profile: str = "demo",
    stages: Sequence[str] | None = None,
    root: Path | None = None,
    kernel_name: str | None = None,
    overrides: dict | None = None,
    log=print,
) -> list[StageResult]:
    """Run the selected stages for each language, then the cross-language stages. Stops at the first failure."""
    check_languages(languages, profile)
    selected = list(stages or STAGE_NAMES)
    unknown = [name for name in selected if name not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; allowed: {', '.join(STAGE_NAMES)}")
    root = Path(root) if root else runs_root()
    results: list[StageResult] = []
    upstream_keys: dict[str, str] = {}

    def run_one(stage: Stage, lang: str, upstream: str) -> bool:
        log(f"[lrmerge study] {lang}: {stage.name} ...")
        result, key = run_stage(stage, lang, languages, profile, root, upstream, kernel_name, overrides)
        results.append(result)
        upstream_keys[lang if stage.scope == "language" else CROSS_LANGUAGE] = key
        log(f"[lrmerge study] {lang}: {stage.name} {result.status} ({result.seconds:.1f} s) -> {result.folder}")
        if result.status == "failed":
            log(result.message)
            return False
        return True

    for lang in languages:
        upstream = ""
        for stage in STAGES:
            if stage.scope != "language":
                continue
            if stage.name in selected:
                if not run_one(stage, lang, upstream):
                    return results
                upstream = upstream_keys[lang]
    cross_upstream = config_key(sorted(upstream_keys.items()))
    for stage in STAGES:
        if stage.scope == "all" and stage.name in selected:
            if not run_one(stage, CROSS_LANGUAGE, cross_upstream):
                return results
            cross_upstream = upstream_keys[CROSS_LANGUAGE]
    return results


def check_languages(languages: Sequence[str], profile: str) -> None:
    """Every language must be one the profile's data source serves (before anything is built)."""
    served = get_profile(profile).languages
    unknown = [lang for lang in languages if lang not in served]
    if unknown:
        raise ValueError(f"--lang: {', '.join(unknown)} not served by profile {profile!r}; its languages: "
                         f"{', '.join(served)}")


def summary_table(results: Sequence[StageResult]) -> str:
    lines = ["| language | stage | status | seconds |", "|---|---|---|---:|"]
    lines += [f"| {r.lang} | {r.stage} | {r.status} | {r.seconds:.1f} |" for r in results]
    total = sum(r.seconds for r in results)
    lines.append(f"| | total | | {total:.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- the CLI

def configure_parser(parser) -> None:
    parser.add_argument("--lang", nargs="+", default=["all"],
                        help="language codes (demo, quick: tbx mnx; real-cpu, real-cpu-quick, paper: tam tel ory ben "
                             "bod uig mvf), or 'all': the profile's languages")
    parser.add_argument("--profile", default="demo", choices=list(PROFILES),
                        help="quick (minutes, tests), demo (the embedded demo study), real-cpu (a paper language with "
                             "SmolLM2-135M and the real data on a CPU), real-cpu-quick (the same in minutes), paper "
                             "(Llama-2-7B and hub data on GPUs)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what each stage would download, train, evaluate and store, and exit")
    parser.add_argument("--stages", nargs="+", default=None, choices=STAGE_NAMES, help="subset of stages (default: all)")
    parser.add_argument("--root", default=None, help="run folder (default: $LRMERGE_RUNS or ./runs)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default python3)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override a notebook parameter for every stage that declares it, e.g. "
                             "--set ties_densities=0.01,0.2,0.4,0.6,0.8,1.0 (repeatable; Python literals are parsed)")


def parse_overrides(items: Sequence[str]) -> dict:
    """["name=value", ...] -> {name: value}; a Python literal (number, bool) is parsed, anything else kept as text."""
    import ast

    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"--set {item!r}: expected NAME=VALUE with NAME a notebook parameter name")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        overrides[name.strip()] = value if isinstance(value, (int, float, bool, str)) else text
    return overrides


def run(args) -> int:
    from lrmerge.requirements import RealRunUnavailable, check_real_run

    languages = list(args.lang)
    if languages == ["all"]:
        languages = list(get_profile(args.profile).languages)
    try:
        check_languages(languages, args.profile)
    except ValueError as error:
        print(f"lrmerge study: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        from lrmerge.study_plan import format_study_plan

        for lang in languages:
            print(format_study_plan(lang, args.profile))
        return 0
    if get_profile(args.profile).needs_gpu:
        try:
            for lang in languages:
                check_real_run(lang)
        except RealRunUnavailable as error:
            print(f"lrmerge study: {error}", file=sys.stderr)
            return 3
    try:
        overrides = parse_overrides(args.overrides)
    except ValueError as error:
        print(f"lrmerge study: {error}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    results = run_study(languages, args.profile, args.stages, Path(args.root) if args.root else None, args.kernel,
                        overrides)
    print()
    print(summary_table(results))
    print(f"\nwall time: {time.perf_counter() - start:.1f} s")
    return 1 if any(r.status == "failed" for r in results) else 0
