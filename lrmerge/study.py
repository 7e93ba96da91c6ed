"""`lrmerge study`: run the notebook study per language with papermill, resumably.

Each stage is one notebook in ``notebooks/``. For every language, stages run in order; the executed copy and the
stage's outputs go to ``runs/<lang>/<stage>/``. A stage whose completion record matches the same parameters, the same
notebook and the same keys of the stages it reads (``Stage.reads``, not every earlier stage) is skipped (resume),
provided its ``outputs.json`` is there. The first failing stage stops the run and its failing cell is shown.
Cross-language stages (the multi-language merge of Table 5, the paper export) run once, after the stages they read
(with ``--jobs``, Table 5 overlaps the languages' evaluations).

Reliability: one run at a time per run folder (a lock file, ``.lrmerge-study.lock``); a rerun stage builds into a
fresh folder while the old one waits aside, and the old one comes back if the new run fails or is killed (a failed
attempt is kept in ``<stage>.failed/`` for inspection); ``--set`` names and values are checked against the notebooks'
``parameters`` cells before anything runs. The paper stage exports its figures and tables to ``--export DIR``
(default ``<root>/exports``), never into the checkout unless asked; README.md is rewritten only with
``--update-readme``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from lrmerge.errors import UserError
from lrmerge.profiles import PROFILES, get_profile, profile_parameters
from lrmerge.runs import (atomic_write_text, config_key, install_sigterm_cleanup, library_versions, machine_facts,
                          remove_tree, runs_root)
from lrmerge.study_folders import (COMPLETE, LOCK_FILE, MANIFEST, aside_name, is_complete, keep_failed,  # noqa: F401
                                   recover_stage_folder, run_folder_lock)
from lrmerge.study_params import check_overrides, coerce_parameter, notebook_parameters  # noqa: F401

CROSS_LANGUAGE = "all"  # run folder of the cross-language stages: runs/all/<stage>/


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str
    scope: Literal["language", "all"] = "language"
    # stages whose manifests this one reads (the language's own; a cross-language stage reads every language's,
    # and "multilingual" from the cross-language folder): a change reruns only the stages that read it
    reads: tuple[str, ...] = ()
    # builds what the languages share (the demo world and its BASE): with --jobs it runs first, one language at a
    # time with every core (every other stage needs it; BASE trains on all of them, `demo.base.pretrain_base`)
    builds_shared: bool = False


_MODELS = ("data", "pretraining", "sft")
STAGES: tuple[Stage, ...] = (
    Stage("data", "01_data.ipynb", builds_shared=True),
    Stage("pretraining", "02_continual_pretraining.ipynb", reads=("data",)),
    Stage("sft", "03_sft.ipynb", reads=("data", "pretraining")),
    Stage("merging", "04_merging.ipynb", reads=_MODELS),
    Stage("evaluation", "05_evaluation.ipynb", reads=(*_MODELS, "merging")),
    Stage("conflicts", "06_sign_conflicts.ipynb", reads=_MODELS),
    Stage("ties_sv", "07_ties_sv.ipynb", reads=(*_MODELS, "merging")),
    Stage("multilingual", "08_multilingual_merge.ipynb", scope="all", reads=(*_MODELS, "merging")),
    Stage("paper", "09_paper_figures_tables.ipynb", scope="all",
          reads=("data", "evaluation", "conflicts", "ties_sv", "multilingual")),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
STAGE_BY_NAME = {stage.name: stage for stage in STAGES}


def notebooks_dir() -> Path:
    env = os.environ.get("LRMERGE_NOTEBOOKS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "notebooks"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def stage_key(root: Path, lang: str, stage: Stage) -> str | None:
    """The key in a stage's completion record on disk (None when it has not completed)."""
    folder = stage_folder(lang, stage, root)
    if not is_complete(folder):
        return None
    try:
        return json.loads((folder / COMPLETE).read_text()).get("key")
    except ValueError:
        return None


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
    *,
    export_dir: str | Path | None = None,
    update_readme: bool = False,
) -> tuple[StageResult, str]:
    """Execute one stage notebook unless its completion record already matches; returns (result, stage key).

    ``upstream_key`` identifies what the stage reads (``run_study`` derives it from ``stage.reads``)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    root = Path(root).resolve()
    notebook = notebooks_dir() / stage.notebook
    if not notebook.exists():
        raise FileNotFoundError(f"stage {stage.name!r}: notebook not found: {notebook}")
    folder = stage_folder(lang, stage, root)
    export = Path(export_dir).resolve() if export_dir else root / "exports"
    offered = profile_parameters(profile, stage.name)
    offered.update(
        lang=lang if stage.scope == "language" else CROSS_LANGUAGE,
        languages=",".join(languages),
        profile=profile,
        run_root=str(root),
        out_dir=str(folder),
        figures_dir=str(export / "figures"),
        tables_dir=str(export / "tables"),
        update_readme=bool(update_readme),
    )
    declared = notebook_parameters(notebook)
    for name, value in (overrides or {}).items():  # run_study has checked the names against every selected stage
        if name in declared:
            offered[name] = coerce_parameter(name, value, declared[name][0], stage.notebook)
    parameters = {name: value for name, value in offered.items() if name in declared}
    key = config_key({"parameters": parameters, "notebook": _file_digest(notebook), "upstream": upstream_key})

    with run_folder_lock(root):
        recover_stage_folder(folder)
        if is_complete(folder, key):
            return StageResult(lang, stage.name, "skipped", 0.0, folder, "complete for the same parameters"), key
        aside = None
        if folder.exists():  # earlier outputs wait aside until this run has succeeded
            aside = aside_name(folder)
            folder.rename(aside)
        folder.mkdir(parents=True)
        executed = folder / stage.notebook
        start = time.perf_counter()
        message = ""
        try:
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=parameters,
                kernel_name=kernel_name or "python3",
                cwd=str(notebook.parent),
                progress_bar=False,
            )
            if not (folder / MANIFEST).exists():
                message = (f"stage {stage.name!r} ({lang}) finished without writing {MANIFEST} into {folder}; "
                           "its notebook must call lrmerge.pipeline.write_manifest(out_dir, ...)")
        except PapermillExecutionError as error:
            message = (f"stage {stage.name!r} ({lang}) failed in cell {error.cell_index} "
                       f"(executed copy: {folder.with_name(folder.name + '.failed') / stage.notebook}):\n{error.source}\n"
                       f"{error.ename}: {error.evalue}")
        except BaseException:  # interrupted (SIGINT / SIGTERM): the old outputs come back
            keep_failed(folder)
            if aside is not None:
                aside.rename(folder)
            raise
        seconds = time.perf_counter() - start
        if message:
            failed = keep_failed(folder)
            if aside is not None:
                aside.rename(folder)  # a failed rerun never destroys completed work
            return StageResult(lang, stage.name, "failed", seconds, failed, message), key
        record = {"key": key, "stage": stage.name, "lang": lang, "parameters": parameters,
                  "seconds": round(seconds, 2), "versions": library_versions(), "machine": machine_facts(),
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write_text(folder / COMPLETE, json.dumps(record, indent=2, default=str) + "\n")
        if aside is not None:
            remove_tree(aside)
        remove_tree(folder.with_name(f"{folder.name}.failed"))
    return StageResult(lang, stage.name, "ran", seconds, folder), key


def check_languages(languages: Sequence[str], profile: str) -> None:
    """Every language must be known and served by the profile's data source (checked before anything is built)."""
    from lrmerge.languages import LANGUAGES

    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown or not languages:
        raise UserError(f"--lang: unknown language(s) {unknown or ['(none)']}; known: {', '.join(LANGUAGES)}, or all")
    served = get_profile(profile).languages
    other = [lang for lang in languages if lang not in served]
    if other:
        raise UserError(f"--lang: {', '.join(other)} not served by profile {profile!r}; its languages: "
                        f"{', '.join(served)}")


def run_study(
    languages: Sequence[str],
    profile: str = "demo",
    stages: Sequence[str] | None = None,
    root: Path | None = None,
    kernel_name: str | None = None,
    overrides: dict | None = None,
    log=print,
    *,
    export_dir: str | Path | None = None,
    update_readme: bool = False,
    jobs: int = 1,
) -> list[StageResult]:
    """Run the selected stages for each language, then the cross-language stages. Stops at the first failure.

    ``jobs``: stages run at once. With more than one (and several languages), the stages that build what the
    languages share (``Stage.builds_shared``: the demo world) run first, one language at a time, with every core;
    then ``jobs`` workers take the remaining stages as they become ready (`stage_graph`: a stage once the stages it
    reads are done, e.g. one language's TIES-SV beside its evaluation, Table 5 as soon as every language has
    merged), each kernel with ``cpu_count // jobs`` torch threads (OMP_NUM_THREADS); SFT-flan, shared by the
    languages, is trained once under a file lock.

    Everything is checked before anything runs: the profile, the stages, the languages and the ``overrides`` (names
    against the selected notebooks' ``parameters`` cells, values parsed with their types). ``export_dir``: where the
    paper stage writes figures and tables (default ``<root>/exports``); ``update_readme``: let it rewrite README.md."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; allowed: {', '.join(PROFILES)}")
    selected = list(stages or STAGE_NAMES)
    unknown = [name for name in selected if name not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; allowed: {', '.join(STAGE_NAMES)}")
    check_languages(languages, profile)
    chosen = [stage for stage in STAGES if stage.name in selected]
    for stage in chosen:
        if not (notebooks_dir() / stage.notebook).exists():
            raise FileNotFoundError(f"stage {stage.name!r}: notebook not found: {notebooks_dir() / stage.notebook}")
    checked = check_overrides(overrides, [notebooks_dir() / stage.notebook for stage in chosen])
    root = (Path(root) if root else runs_root()).resolve()
    results: list[StageResult] = []
    keys: dict[tuple[str, str], str | None] = {}  # (lang or "all", stage) -> key of this run or on disk

    def key_of(lang: str, name: str) -> str | None:
        if (lang, name) not in keys:
            keys[lang, name] = stage_key(root, lang, STAGE_BY_NAME[name])
        return keys[lang, name]

    def upstream(stage: Stage, lang: str) -> str:
        scopes = [lang] if stage.scope == "language" else list(languages)
        reads = [[where, name, key_of(where if STAGE_BY_NAME[name].scope == "language" else CROSS_LANGUAGE, name)]
                 for where in scopes for name in stage.reads]
        return config_key(reads)

    def run_one(stage: Stage, lang: str) -> bool:
        log(f"[lrmerge study] {lang}: {stage.name} ...")
        result, key = run_stage(stage, lang, languages, profile, root, upstream(stage, lang), kernel_name, checked,
                                export_dir=export_dir, update_readme=update_readme)
        results.append(result)
        keys[lang, stage.name] = key if result.status != "failed" else None
        log(f"[lrmerge study] {lang}: {stage.name} {result.status} ({result.seconds:.1f} s) -> {result.folder}")
        if result.status == "failed":
            log(result.message)
            return False
        return True

    def chain(lang: str) -> bool:
        return all(run_one(stage, lang) for stage in chosen if stage.scope == "language")

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    install_sigterm_cleanup()  # SIGTERM unwinds like Ctrl-C: a stage being rebuilt gets its old outputs back
    with run_folder_lock(root):
        if jobs == 1 or len(languages) == 1:
            if not all(chain(lang) for lang in languages):
                return results
            for stage in chosen:
                if stage.scope == "all" and not run_one(stage, CROSS_LANGUAGE):
                    return results
            return results
        first = [stage for stage in chosen if stage.builds_shared]
        if not all(run_one(stage, lang) for stage in first for lang in languages):
            return results
        tasks, needs = stage_graph([stage for stage in chosen if not stage.builds_shared], languages)
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        previous = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        os.environ.update({name: threads for name in previous})  # inherited by the notebook kernels
        try:
            run_graph(tasks, needs, jobs, lambda task: run_one(STAGE_BY_NAME[task[1]], task[0]))
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return results


Task = tuple[str, str]  # (language or CROSS_LANGUAGE, stage name)


def stage_graph(stages: Sequence[Stage], languages: Sequence[str]) -> tuple[list[Task], dict[Task, set[Task]]]:
    """The stages of a study as tasks in priority order (stage order, then language order), each with the tasks it
    waits for: the stages of its language that it reads (``Stage.reads``: the sign conflicts need the SFT models,
    not the merges; TIES-SV needs the merges, not the evaluation), and for a cross-language stage the stages of
    every language it reads (Table 5 needs every language's merging) and the cross-language stages before it."""
    tasks: list[Task] = [(lang, stage.name) for stage in stages if stage.scope == "language" for lang in languages]
    names = {stage.name for stage in stages}
    needs: dict[Task, set[Task]] = {(lang, stage.name): {(lang, name) for name in stage.reads if name in names}
                                    for stage in stages if stage.scope == "language" for lang in languages}
    cross: list[Task] = []
    for stage in (s for s in stages if s.scope == "all"):
        task = (CROSS_LANGUAGE, stage.name)
        needs[task] = {(lang, name) for lang in languages for name in stage.reads
                       if name in names and STAGE_BY_NAME[name].scope == "language"} | set(cross)
        cross.append(task)
    return tasks + cross, needs


def run_graph(tasks: Sequence[Task], needs: dict[Task, set[Task]], workers: int, run) -> bool:
    """Run every task on ``workers`` threads, each as soon as the tasks it needs have succeeded (the first ready
    one in ``tasks`` order); after a failure nothing new starts. ``run(task) -> bool``; True when all succeeded."""
    import threading

    done: set[Task] = set()
    started: set[Task] = set()
    failed: list[Task] = []
    errors: list[BaseException] = []
    changed = threading.Condition()

    def worker() -> None:
        while True:
            with changed:
                while True:
                    if failed or len(started) == len(tasks):
                        return
                    task = next((t for t in tasks if t not in started and needs.get(t, set()) <= done), None)
                    if task is not None:
                        started.add(task)
                        break
                    changed.wait()
            try:
                ok = run(task)
            except BaseException as error:  # noqa: BLE001 - re-raised in the calling thread
                ok = False
                errors.append(error)
            with changed:
                (done.add if ok else failed.append)(task)
                changed.notify_all()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(min(workers, len(tasks)))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    return not failed


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
                             "--set ties_densities=0.01,0.2,0.4,0.6,0.8,1.0 (repeatable; checked against the "
                             "notebooks' parameters cells and parsed with the parameter's type)")
    parser.add_argument("--export", default=None, metavar="DIR",
                        help="where the paper stage writes figures/ and tables/ (default: <root>/exports; "
                             "`make study` passes the checkout, .)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="stages run at once, each kernel with cpu_count/N threads: the languages' chains side by "
                             "side, Table 5 as soon as every language has merged (`make study`: 2, one per core)")
    parser.add_argument("--update-readme", action="store_true",
                        help="let the paper stage rewrite the results section of README.md")
    parser.add_argument("--world-seed", type=int, default=None, metavar="K",
                        help="demo profiles: build the demo world (lexicon, corpora, tasks, BASE) from seed K instead "
                             "of 0, another BASE for the whole study; with --root, runs of several worlds stand side "
                             "by side and their spread is the part the training seeds' error bars do not cover")


def parse_overrides(items: Sequence[str], literal: bool = True) -> dict:
    """["name=value", ...] -> {name: value}; a Python literal (number, bool) is parsed, anything else kept as text.
    ``literal=False`` keeps every value as text (``run_study`` then parses it with the notebook parameter's type)."""
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise UserError(f"--set {item!r}: expected NAME=VALUE with NAME a notebook parameter name")
        if not literal:
            overrides[name.strip()] = text
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        overrides[name.strip()] = value if isinstance(value, (int, float, bool, str)) else text
    return overrides


def world_seed_options(profile: str, world_seed: int, source_options: str | None = None) -> str:
    """The ``source_options`` JSON of ``profile`` (or the ones given with --set) with the demo world's seed set."""
    spec = get_profile(profile)
    if spec.provider != "demo":
        raise UserError(f"--world-seed: profile {profile!r} reads {spec.provider!r} data, not the demo world "
                        f"(profiles with a world: {', '.join(p for p in PROFILES if get_profile(p).provider == 'demo')})")
    if world_seed < 0:
        raise UserError(f"--world-seed: {world_seed} is negative; a world seed is 0 or more")
    try:
        options = json.loads(source_options) if source_options else dict(spec.provider_options)
    except json.JSONDecodeError as error:
        raise UserError(f"--set source_options: not JSON ({error})") from None
    return json.dumps({**options, "world_seed": world_seed}, sort_keys=True)


def run(args) -> int:
    from lrmerge.requirements import RealRunUnavailable, check_real_run

    languages = list(args.lang)
    if languages == ["all"]:
        languages = list(get_profile(args.profile).languages)
    check_languages(languages, args.profile)
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
    overrides = parse_overrides(args.overrides, literal=False)
    if args.world_seed is not None:
        overrides["source_options"] = world_seed_options(args.profile, args.world_seed, overrides.get("source_options"))
    start = time.perf_counter()
    results = run_study(languages, args.profile, args.stages, Path(args.root) if args.root else None, args.kernel,
                        overrides, export_dir=Path(args.export).resolve() if args.export else None,
                        update_readme=args.update_readme, jobs=args.jobs)
    print()
    print(summary_table(results))
    print(f"\nwall time: {time.perf_counter() - start:.1f} s")
    return 1 if any(r.status == "failed" for r in results) else 0
