"""Grid search of merges on dev sets (appendix B), resumable, and the evaluation of the chosen merge on test.

Candidates are configurations of the merge registry: TIES over the density grid {0.01, 0.2, 0.4, 0.6, 0.8, 1.0} for
each model (lambda: mergekit's ``normalize``, the paper's self-adaptive scaling), WAVG over a weight grid, TIES-SV over
a slack sweep at fixed densities. Each candidate's dev scores are cached in ``<work_dir>/scores/<key>.json`` keyed by
its merge config, the models and the tasks, so an interrupted search resumes where it stopped. Merged weights are
deleted after scoring unless ``keep_models``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import pandas as pd
from tqdm.auto import tqdm

from lrmerge.pipeline import model_identity
from lrmerge.runs import atomic_write_text, config_key

TIES_DENSITIES: tuple[float, ...] = (0.01, 0.2, 0.4, 0.6, 0.8, 1.0)  # appendix B, for each model
WAVG_WEIGHTS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # weight of SFT-flan; CT gets 1 - w
SLACK_SWEEP: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.08)  # TIES-SV; the paper restores 4%
PAPER_SLACK = 0.04
MethodName = Literal["linear", "ties", "ties_sv"]


@dataclass(frozen=True)
class MergeCandidate:
    """One point of the grid: a two-model merge of SFT-flan with one CT-X checkpoint (or several, Table 5)."""

    method: MethodName
    density_sft: float = 1.0
    density_ct: float = 1.0
    weight_sft: float = 1.0
    weight_ct: float = 1.0
    slack: float = 0.0

    @property
    def label(self) -> str:
        if self.method == "linear":
            return f"WAVG w_sft={self.weight_sft:g}"
        text = f"{'TIES-SV' if self.method == 'ties_sv' else 'TIES'} k_sft={self.density_sft:g} k_ct={self.density_ct:g}"
        return text + (f" slack={self.slack:g}" if self.method == "ties_sv" else "")

    def to_config(self, base: str, sft: str, cts: Sequence[str], dtype: str = "float32") -> dict:
        """The mergekit-schema config of this candidate (SFT-flan first: it is TIES-SV's priority model)."""
        if self.method == "linear":
            models = [{"model": sft, "parameters": {"weight": self.weight_sft}}]
            models += [{"model": ct, "parameters": {"weight": self.weight_ct / len(cts)}} for ct in cts]
            return {"merge_method": "linear", "models": models, "dtype": dtype}
        models = [{"model": sft, "parameters": {"weight": self.weight_sft, "density": self.density_sft}}]
        models += [{"model": ct, "parameters": {"weight": self.weight_ct, "density": self.density_ct}} for ct in cts]
        parameters: dict = {"normalize": True}
        if self.method == "ties_sv":
            parameters.update(slack=self.slack, priority=0)
        return {"merge_method": self.method, "base_model": base, "models": models, "parameters": parameters,
                "dtype": dtype}


def ties_grid(densities: Sequence[float] = TIES_DENSITIES) -> list[MergeCandidate]:
    return [MergeCandidate("ties", density_sft=s, density_ct=c) for s in densities for c in densities]


def wavg_grid(weights: Sequence[float] = WAVG_WEIGHTS) -> list[MergeCandidate]:
    return [MergeCandidate("linear", weight_sft=w, weight_ct=1.0 - w) for w in weights]


def slack_sweep(density_sft: float, density_ct: float, slacks: Sequence[float] = SLACK_SWEEP) -> list[MergeCandidate]:
    return [MergeCandidate("ties_sv", density_sft=density_sft, density_ct=density_ct, slack=s) for s in slacks]


# An evaluator scores a model folder on the search's tasks and split: returns {task name: accuracy in [0, 1]}.
Evaluator = Callable[[Path], dict[str, float]]


@dataclass
class GridResult:
    table: pd.DataFrame  # one row per candidate: method, label, parameters, per-task dev accuracy, dev_average
    best: MergeCandidate
    computed: list[str] = field(default_factory=list)  # keys scored in this call (not read from the cache)


def grid_search(
    candidates: Sequence[MergeCandidate],
    base: str,
    sft: str,
    cts: Sequence[str],
    evaluator: Evaluator,
    work_dir: str | Path,
    evaluation_key: dict,
    keep_models: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> GridResult:
    """Merge and score every candidate (cached), and pick the best by the average dev accuracy (first on ties).

    ``evaluation_key`` identifies what the evaluator measures (tasks, split, data source, mode): it is part of the
    cache key, so changing the tasks re-scores while an interrupted run of the same search resumes.
    """
    from lrmerge.merge import merge

    if not candidates:
        raise ValueError("grid_search: no candidates")
    work_dir = Path(work_dir)
    (work_dir / "scores").mkdir(parents=True, exist_ok=True)
    identities = {"base": model_identity(base), "sft": model_identity(sft), "cts": [model_identity(c) for c in cts]}
    rows, computed = [], []
    for candidate in tqdm(candidates, desc="grid search", disable=not progress):
        config = candidate.to_config(base, sft, cts)
        key = config_key({"candidate": asdict(candidate), "models": identities, "evaluation": evaluation_key})
        scores_path = work_dir / "scores" / f"{key}.json"
        if scores_path.exists():
            scores = json.loads(scores_path.read_text())["scores"]
        else:
            model_dir = work_dir / "models" / key
            merge(config, model_dir, device=device, overwrite=True, progress=False)
            try:
                scores = evaluator(model_dir)
            finally:
                if not keep_models:
                    shutil.rmtree(model_dir, ignore_errors=True)
            record = {"key": key, "candidate": asdict(candidate), "config": config, "scores": scores,
                      "evaluation": evaluation_key}
            atomic_write_text(scores_path, json.dumps(record, indent=2, default=str) + "\n")
            computed.append(key)
        rows.append({"key": key, "label": candidate.label, **asdict(candidate), **scores,
                     "dev_average": sum(scores.values()) / len(scores)})
    table = pd.DataFrame(rows)
    best_index = int(table["dev_average"].to_numpy().argmax())  # first maximum: grid order breaks ties
    return GridResult(table, candidates[best_index], computed)
