"""Glue between the study's stages: run folders, stage manifests, cached shared models, and evaluation tables.

Each stage notebook writes an ``outputs.json`` manifest into ``runs/<lang>/<stage>/`` naming what it produced
(model folders, tables); later stages read manifests instead of guessing paths. Models shared by every language
(SFT-flan is trained from BASE once) live in ``runs/shared/<name>-<config key>/`` and are reused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from lrmerge.runs import atomic_write_text, config_key

MANIFEST = "outputs.json"
SCORE_FRAME_COLUMNS = ("language", "model", "seed", "ct_tokens", "task", "protocol", "score", "n", "stderr",
                       "n_unparsable", "n_invalid_utf8")


def stage_dir(run_root: str | Path, lang: str, stage: str) -> Path:
    return Path(run_root) / lang / stage


def write_manifest(folder: str | Path, **outputs: Any) -> Path:
    """Record a stage's outputs (paths as strings, small values) in ``folder/outputs.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean = json.loads(json.dumps(outputs, default=str))
    return atomic_write_text(folder / MANIFEST, json.dumps(clean, indent=2, sort_keys=True) + "\n")


def read_manifest(run_root: str | Path, lang: str, stage: str) -> dict:
    """A finished stage's manifest; a clear error when the stage has not run yet."""
    path = stage_dir(run_root, lang, stage) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"stage {stage!r} has no outputs for language {lang!r} ({path} missing): "
                                f"run it first, e.g. `lrmerge study --lang {lang} --stages {stage}`")
    return json.loads(path.read_text())


def shared_dir(run_root: str | Path, name: str, config: Mapping) -> Path:
    """Folder of a model shared across languages, keyed by its config (``runs/shared/<name>-<key>``)."""
    return Path(run_root) / "shared" / f"{name}-{config_key(dict(config))}"


def parse_floats(text: str | Sequence[float]) -> list[float]:
    """Comma-separated numbers from a notebook parameter ("0.2,0.6,1.0"), or a sequence passed through."""
    if isinstance(text, str):
        values = [float(v) for v in text.split(",") if v.strip()]
    else:
        values = [float(v) for v in text]
    if not values:
        raise ValueError(f"expected comma-separated numbers, got {text!r}")
    return values


def parse_names(text: str | Sequence[str]) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()] if isinstance(text, str) else list(text)


def parse_seeds(text: str | int | Sequence[int]) -> list[int]:
    """Training seeds from a notebook parameter: "0,1,2", 0, or a list."""
    if isinstance(text, int):
        return [text]
    values = [int(v) for v in (text.split(",") if isinstance(text, str) else text) if str(v).strip()]
    if not values or len(set(values)) != len(values):
        raise ValueError(f"seeds: expected distinct comma-separated integers, got {text!r}")
    return values


def figure2_points_for(lang: str, figure2_points: int, figure2_languages: str | Sequence[str] = "") -> int:
    """CT checkpoints of ``lang`` that get a CTSFT-X-flan (and, in the evaluation, a TIES-X-flan) for Figure 2:
    ``figure2_points`` for the languages in ``figure2_languages`` (empty: every language), 1 for the others (the last
    checkpoint: Table 3's models). The paper draws Figure 2 for two of its seven languages (ben, tel)."""
    names = parse_names(figure2_languages)
    return figure2_points if not names or lang in names else 1


def curve_points(checkpoints: Sequence[str], n_points: int) -> list[str]:
    """``n_points`` of the CT checkpoints, evenly spaced from the last backwards (the last always included), in
    token order: where Figure 2 gets a CTSFT-X-flan and a TIES-X-flan."""
    if n_points < 1:
        raise ValueError(f"figure2_points must be >= 1, got {n_points}")
    step = max(1, len(checkpoints) // n_points)
    chosen = set(list(checkpoints)[::-1][::step][:n_points])
    return [c for c in checkpoints if c in chosen]


def merge_model_name(search: str) -> str:
    """Table 3's row of a merge search: TIES -> TIES-X-flan, WAVG -> WAVG-X-flan, dare_ties -> DARE-TIES-X-flan."""
    if search in ("TIES", "WAVG"):
        return f"{search}-X-flan"
    from lrmerge.merge.methods import get_method

    return f"{get_method(search).pretty or search}-X-flan".replace(" ", "-")


def seed_dir(folder: str | Path, seed: int) -> Path:
    return Path(folder) / f"seed-{seed}"


def read_source(run_root: str | Path, lang: str):
    """The language's resolved data source (stage 01's manifest): BASE, corpora, SFT data, evaluation sets."""
    from lrmerge.sources import read_source as _read

    return _read(run_root, lang)


def score_frame(results: Mapping, language: str, model: str, seed: int | None = None,
                ct_tokens: int | None = None) -> pd.DataFrame:
    """Tidy rows from ``{protocol: EvalResults}``: one per (task = benchmark key, protocol), score in percent."""
    from lrmerge.eval.tasks import get_task

    rows = []
    for protocol, evaluated in results.items():
        for task_name, result in evaluated.tasks.items():
            rows.append((language, model, seed, ct_tokens, get_task(task_name).benchmark, protocol,
                         100.0 * result.accuracy, result.n, 100.0 * result.stderr, result.n_unparsable,
                         result.n_invalid_utf8))
    return pd.DataFrame(rows, columns=list(SCORE_FRAME_COLUMNS))


def study_tasks(source, benchmarks: Sequence[str] | None = None, math_max_new_tokens: int | None = None) -> list:
    """The source's task specs; ``math_max_new_tokens`` caps generation on the math tasks (the demo world's
    worked answers are short; real MGSM chains of thought need the template's 256)."""
    from dataclasses import replace

    from lrmerge.data.schema import ChoiceItem
    from lrmerge.eval.tasks import tasks_for_language

    specs = tasks_for_language(source.lang, list(benchmarks) if benchmarks else list(source.tasks))
    specs = [replace(s, answer=source.choice_answer) if s.item_type is ChoiceItem else s for s in specs]
    if math_max_new_tokens:
        specs = [replace(s, max_new_tokens=math_max_new_tokens) if s.scorer == "number" else s for s in specs]
    return specs


def evaluate_models(models: Mapping[str, str | Path], source, split: str = "test", *,
                    protocols: Sequence[str] | str = ("loglik", "generate"), cache_dir: str | Path | None = None,
                    batch_size: int = 32, device: str = "auto", progress: bool = False,
                    math_max_new_tokens: int | None = None, seed: int | None = None,
                    ct_tokens: Mapping[str, int] | None = None, limit: int | None = None) -> pd.DataFrame:
    """Evaluate named model folders on the source's tasks under each protocol (``"study"``: each task under the
    protocol Tables 3-5 average, `study_protocol`); one tidy frame (cached per model content, task and protocol, so
    reruns are free). ``limit``: first n items (default: the source's limit)."""
    from lrmerge.eval.runner import PROTOCOLS as PROTOCOL_NAMES, evaluate_protocols

    specs = study_tasks(source, math_max_new_tokens=math_max_new_tokens)
    if isinstance(protocols, str):
        if protocols != "study":
            raise ValueError(f"protocols: {protocols!r}; pass 'study' or a sequence of {PROTOCOL_NAMES}")
        protocols = study_protocol_lists(specs)
    limit = limit if limit is not None else source.eval_limit.get(split)
    frames = []
    for name, folder in models.items():
        cache = model_cache_dir(cache_dir, folder) if cache_dir else None
        results = evaluate_protocols(folder, specs, protocols, split=split, source=source.eval_source,
                                     batch_size=batch_size, device=device, lang=source.lang, cache_dir=cache,
                                     limit=limit, progress=progress)
        frames.append(score_frame(results, source.lang, name, seed, (ct_tokens or {}).get(name)))
    return pd.concat(frames, ignore_index=True)


def model_cache_dir(cache_dir: str | Path, folder: str | Path) -> Path:
    """The evaluation cache of one model under ``cache_dir``, keyed by the model's content (`model_identity`)."""
    return Path(cache_dir) / config_key(model_identity(folder))


def dev_evaluator(source, limit: int | None = None, **options):
    """Evaluator for the merge grid: model folder -> {task: dev accuracy}, multiple-choice tasks by log-likelihood
    and math by generation (the study's scoring protocol); returns (evaluator, its cache key for the grid)."""
    from lrmerge.eval.runner import evaluate_protocols

    specs = study_tasks(source, math_max_new_tokens=options.pop("math_max_new_tokens", None))
    limit = limit if limit is not None else source.eval_limit.get("dev")
    wanted = study_protocol(specs)

    def evaluator(model_dir) -> dict[str, float]:
        results = evaluate_protocols(model_dir, specs, study_protocol_lists(specs), split="dev",
                                     source=source.eval_source, lang=source.lang, limit=limit, **options)
        return {spec.name: results[wanted[spec.name]].tasks[spec.name].accuracy for spec in specs}

    key = {"tasks": [repr(s) for s in specs], "split": "dev", "source": source.eval_source, "limit": limit,
           "protocols": wanted}
    return evaluator, key


def study_protocol(specs) -> dict[str, str]:
    """The protocol each task is averaged by in Tables 3-5: log-likelihood of the options for multiple-choice
    tasks, parsed greedy answers for math."""
    return {spec.name: ("loglik" if spec.scorer == "letter" else "generate") for spec in specs}


def study_protocol_lists(specs) -> dict[str, list[str]]:
    """`study_protocol` as `evaluate_protocols` takes it: task name -> [its one protocol]."""
    return {name: [protocol] for name, protocol in study_protocol(specs).items()}


def chance_level(source, tasks: Sequence[str] | None = None) -> dict[str, float]:
    """Accuracy of guessing per benchmark, in percent: 1 / number of options for multiple choice; for math, the share
    of the test's most common answer (what answering one number to every question scores: 14% on the demo world's
    one-digit sums), so that a model that always answers the same number reads as chance."""
    from collections import Counter

    from lrmerge.data.loaders import load_task
    from lrmerge.data.schema import ChoiceItem, ClassificationItem

    levels = {}
    for spec in study_tasks(source, tasks):
        where = source.eval_source
        data = load_task(spec.benchmark, source.lang, "test", where[spec.benchmark] if isinstance(where, dict) else where)
        item = data.items[0]
        if isinstance(item, ClassificationItem):
            levels[spec.benchmark] = 100.0 / len(data.labels)
        elif isinstance(item, ChoiceItem):
            levels[spec.benchmark] = 100.0 / len(item.options)
        else:
            answers = Counter(item.answer for item in data.items)
            levels[spec.benchmark] = 100.0 * max(answers.values()) / len(data.items)
    return levels


# ---------------------------------------------------------------------------------------- training stage configs

def ct_config(source, out_dir: str | Path, *, x_tokens: int, n_checkpoints: int, replay_share: float,
              lr: float, embedding_lr_multiplier: float, seq_len: int, batch_size: int, seed: int,
              warmup_ratio: float = 0.05, checkpoint_tokens: Sequence[int] | None = None, grad_accum: int = 1,
              precision: str = "auto", schedule: str = "cosine", save_steps: int = 10_000,
              shuffle_documents: bool = False):
    """CT-X on the source's X corpus with English replay (section 3.2); ``checkpoint_tokens``: total tokens seen
    (X + replay) at each checkpoint (default: ``n_checkpoints`` evenly spaced); ``shuffle_documents``: a
    seed-dependent document order (local corpora; without it CT's data order ignores the seed)."""
    from lrmerge.train.config import BatchConfig, CTConfig, OptimConfig

    return CTConfig(
        lang=source.lang, base_model=source.base, out_dir=Path(out_dir), seed=seed, precision=precision,
        x_corpus=source.corpus("ct"), replay_corpus=source.corpus("replay"),
        replay_share=replay_share, x_tokens=x_tokens, n_checkpoints=n_checkpoints,
        checkpoint_tokens=list(checkpoint_tokens) if checkpoint_tokens else None,
        optim=OptimConfig(lr=lr, embedding_lr_multiplier=embedding_lr_multiplier, warmup_ratio=warmup_ratio,
                          schedule=schedule),
        batch=BatchConfig(seq_len=seq_len, per_device_batch_size=batch_size, grad_accum_steps=grad_accum),
        save_steps=save_steps, shuffle_documents=shuffle_documents,
    )


def sft_config(source, stage: str, base_model: str | Path, out_dir: str | Path, sft_file: str | Path, *,
               epochs: float, lr: float, batch_size: int, max_len: int, replay_share: float, seed: int,
               grad_accum: int = 1, precision: str = "auto", save_steps: int = 10_000, group_by_length: bool = False):
    """SFT-flan (from BASE, English replay) or CTSFT-X-flan / -mt (from CT-X, English and X replay; footnote 1);
    ``group_by_length``: batches of similar lengths (less padding)."""
    from lrmerge.train.config import BatchConfig, OptimConfig, SFTConfig

    replay = [source.corpus("replay")]
    if stage != "sft-flan":
        replay.append(source.corpus("ct"))
    return SFTConfig(
        lang="eng" if stage == "sft-flan" else source.lang, stage=stage, base_model=str(base_model),
        out_dir=Path(out_dir), seed=seed, precision=precision,
        sft_files=[Path(sft_file)], replay_corpora=replay, replay_share=replay_share, epochs=epochs,
        max_len=max_len, optim=OptimConfig(lr=lr, warmup_ratio=0.05),
        batch=BatchConfig(seq_len=max_len, per_device_batch_size=batch_size, grad_accum_steps=grad_accum),
        save_steps=save_steps, group_by_length=group_by_length,
    )


def sft_identity(config) -> dict:
    """An SFT run's cache identity: its recipe and the content of its inputs (starting model, SFT files, replay
    corpora), never their paths, so that two languages' copies of the same English data find one shared SFT-flan."""
    from lrmerge.runs import file_digest

    recipe = config.model_dump(mode="json", exclude={"out_dir", "base_model", "sft_files", "replay_corpora"})
    replay = [{**corpus.model_dump(mode="json", exclude={"path"}),
               "sha256": file_digest(corpus.path) if corpus.path else None} for corpus in config.replay_corpora]
    return {**recipe, "base_identity": model_identity(config.base_model),
            "sft_files": [file_digest(path) for path in config.sft_files], "replay_corpora": replay}


def model_identity(path: str | Path) -> dict:
    """A model folder's identity for cache keys: the content hashes of its files (weights, config, tokenizer), not
    its path, so another model written to the same path never reuses the old one's answers."""
    from lrmerge.runs import content_identity

    return {"files": content_identity(path)}
