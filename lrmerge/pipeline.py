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
SCORE_FRAME_COLUMNS = ("language", "model", "task", "score", "n", "stderr", "n_unparsable", "n_invalid_utf8")


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


def score_frame(results, language: str, model: str, benchmark_of: Mapping[str, str]) -> pd.DataFrame:
    """Tidy rows (language, model, task = benchmark, score in percent, n, stderr, unparsable counts) from
    EvalResults; ``benchmark_of`` maps a task name (``sib200_tbx_Tibt``) to its benchmark (``sib200``)."""
    rows = []
    for task_name, result in results.tasks.items():
        rows.append((language, model, benchmark_of[task_name], 100.0 * result.accuracy, result.n, 100.0 * result.stderr,
                     result.n_unparsable, result.n_invalid_utf8))
    return pd.DataFrame(rows, columns=list(SCORE_FRAME_COLUMNS))


def study_tasks(lang: str, benchmarks: Sequence[str] | None = None, math_max_new_tokens: int | None = None) -> list:
    """The language's task specs; ``math_max_new_tokens`` caps generation on the math tasks (the demo world's
    worked answers are short; real MGSM chains of thought need the template's 256)."""
    from dataclasses import replace

    from lrmerge.eval.tasks import tasks_for_language

    specs = tasks_for_language(lang, list(benchmarks) if benchmarks else None)
    if math_max_new_tokens:
        specs = [replace(s, max_new_tokens=math_max_new_tokens) if s.scorer == "number" else s for s in specs]
    return specs


def evaluate_models(models: Mapping[str, str | Path], lang: str, source: str | Path, split: str = "test",
                    tasks: Sequence[str] | None = None, cache_dir: str | Path | None = None, batch_size: int = 32,
                    device: str = "auto", progress: bool = False, math_max_new_tokens: int | None = None) -> pd.DataFrame:
    """Evaluate named model folders on ``lang``'s tasks; one tidy frame (per-task caches make reruns free)."""
    from lrmerge.eval.runner import evaluate

    specs = study_tasks(lang, tasks, math_max_new_tokens)
    frames = []
    for name, folder in models.items():
        cache = Path(cache_dir) / config_key(model_identity(folder)) if cache_dir else None
        results = evaluate(folder, specs, split=split, source=source, lang=lang, batch_size=batch_size,
                           device=device, cache_dir=cache, progress=progress)
        frames.append(score_frame(results, lang, name, {spec.name: spec.benchmark for spec in specs}))
    return pd.concat(frames, ignore_index=True)


def chance_level(lang: str, source: str | Path, tasks: Sequence[str] | None = None) -> dict[str, float]:
    """Accuracy of random guessing per benchmark, in percent (1 / number of options; 0 for math)."""
    from lrmerge.data.loaders import load_task
    from lrmerge.data.schema import ChoiceItem, ClassificationItem
    from lrmerge.eval.tasks import tasks_for_language

    levels = {}
    for spec in tasks_for_language(lang, list(tasks) if tasks else None):
        data = load_task(spec.benchmark, lang, "test", source)
        item = data.items[0]
        if isinstance(item, ClassificationItem):
            levels[spec.benchmark] = 100.0 / len(data.labels)
        elif isinstance(item, ChoiceItem):
            levels[spec.benchmark] = 100.0 / len(item.options)
        else:
            levels[spec.benchmark] = 0.0
    return levels


# ---------------------------------------------------------------------------------------- training stage configs

def ct_config(world, lang: str, out_dir: str | Path, *, x_tokens: int, n_checkpoints: int, replay_share: float,
              lr: float, embedding_lr_multiplier: float, seq_len: int, batch_size: int, seed: int,
              warmup_ratio: float = 0.05):
    """CT-X on the demo world's X corpus with English replay (the paper's recipe at demo scale)."""
    from lrmerge.train.config import BatchConfig, CorpusSource, CTConfig, OptimConfig

    return CTConfig(
        lang=lang, base_model=str(world.base), out_dir=Path(out_dir), seed=seed,
        x_corpus=CorpusSource(path=world.corpus(lang)), replay_corpus=CorpusSource(path=world.en_replay),
        replay_share=replay_share, x_tokens=x_tokens, n_checkpoints=n_checkpoints,
        optim=OptimConfig(lr=lr, embedding_lr_multiplier=embedding_lr_multiplier, warmup_ratio=warmup_ratio),
        batch=BatchConfig(seq_len=seq_len, per_device_batch_size=batch_size),
        save_steps=10_000,
    )


def sft_config(world, lang: str, stage: str, base_model: str | Path, out_dir: str | Path, sft_file: str | Path, *,
               epochs: float, lr: float, batch_size: int, max_len: int, replay_share: float, seed: int):
    """SFT-flan (from BASE, English replay) or CTSFT-X-flan / -mt (from CT-X, English and X replay; footnote 1)."""
    from lrmerge.train.config import BatchConfig, CorpusSource, OptimConfig, SFTConfig

    replay = [CorpusSource(path=world.en_replay)]
    if stage != "sft-flan":
        replay.append(CorpusSource(path=world.corpus(lang)))
    return SFTConfig(
        lang=lang, stage=stage, base_model=str(base_model), out_dir=Path(out_dir), seed=seed,
        sft_files=[Path(sft_file)], replay_corpora=replay, replay_share=replay_share, epochs=epochs,
        max_len=max_len, optim=OptimConfig(lr=lr, warmup_ratio=0.05),
        batch=BatchConfig(seq_len=max_len, per_device_batch_size=batch_size), save_steps=10_000,
    )


def model_identity(path: str | Path) -> dict:
    """A model folder's identity for cache keys: the content hashes of its files (weights, config, tokenizer), not
    its path, so another model written to the same path never reuses the old one's answers."""
    from lrmerge.runs import content_identity

    return {"files": content_identity(path)}
