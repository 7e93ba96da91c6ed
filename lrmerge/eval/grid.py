"""Grid search of merges on dev sets (appendix B), resumable, and the evaluation of the chosen merge on test.

Candidates are configurations of the merge registry: TIES over the density grid {0.01, 0.2, 0.4, 0.6, 0.8, 1.0} for
each model (lambda: mergekit's ``normalize``, the paper's self-adaptive scaling), WAVG over a weight grid, TIES-SV over
a slack sweep at fixed densities; ``method_grid`` builds the grid of ANY registered method (DARE-TIES, breadcrumbs,
DELLA, layer swapping, ...) from per-parameter value lists, labelled by the method's name. Each candidate's dev
scores are cached in ``<work_dir>/scores/<key>.json`` keyed by its merge config, the models and the tasks, so an
interrupted search resumes where it stopped. Merged weights are deleted after scoring unless ``keep_models``.
"""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from lrmerge.pipeline import model_identity
from lrmerge.runs import atomic_write_text, config_key

TIES_DENSITIES: tuple[float, ...] = (0.01, 0.2, 0.4, 0.6, 0.8, 1.0)  # appendix B, for each model
WAVG_WEIGHTS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # weight of SFT-flan; CT gets 1 - w
SLACK_SWEEP: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.08)  # TIES-SV; the paper restores 4%
PAPER_SLACK = 0.04
MethodName = str  # any name in lrmerge.merge.methods.MERGE_METHODS ("linear", "ties", "ties_sv", "dare_ties", ...)
_SWEEPABLE = ("density_sft", "density_ct", "weight_sft", "weight_ct", "slack", "random_seed")


@dataclass(frozen=True)
class MergeCandidate:
    """One point of the grid: a two-model merge of SFT-flan with one CT-X checkpoint (or several, Table 5).

    ``method`` is any registered merge method; ``params`` holds its other parameters (registry names, e.g.
    ``gamma``, ``epsilon``, ``lambda``, ``bottom``/``top``) as sorted (name, value) pairs; ``random_seed`` seeds the
    random methods. Records written by older code (``MergeCandidate(**record)`` without the new fields) load
    unchanged, and their cache keys stay the same (``candidate_record``).
    """

    method: MethodName
    density_sft: float = 1.0
    density_ct: float = 1.0
    weight_sft: float = 1.0
    weight_ct: float = 1.0
    slack: float = 0.0
    params: tuple[tuple[str, Any], ...] = ()
    random_seed: int = 0

    def __post_init__(self):
        from lrmerge.merge.methods import get_method

        spec = get_method(self.method)  # unknown names raise, naming the registered ones
        items = self.params.items() if isinstance(self.params, dict) else self.params
        params = tuple(sorted((str(k), v) for k, v in items))
        allowed = set(spec.params) | set(spec.model_params)
        for key, _ in params:
            if key not in allowed or key in ("weight", "density", "slack"):
                raise ValueError(f"MergeCandidate: {key!r} is not a parameter of {self.method} "
                                 f"(allowed: {sorted(allowed - {'weight', 'density', 'slack'})})")
        object.__setattr__(self, "params", params)

    @property
    def spec(self):
        from lrmerge.merge.methods import get_method

        return get_method(self.method)

    @property
    def label(self) -> str:
        if self.method == "linear":
            return f"WAVG w_sft={self.weight_sft:g}" + "".join(f" {k}={v}" for k, v in self.params)
        if self.method in ("ties", "ties_sv"):
            text = f"{'TIES-SV' if self.method == 'ties_sv' else 'TIES'} k_sft={self.density_sft:g} k_ct={self.density_ct:g}"
            text += f" slack={self.slack:g}" if self.method == "ties_sv" else ""
            return text + "".join(f" {k}={v}" for k, v in self.params)
        spec = self.spec
        text = spec.pretty or self.method
        if "density" in spec.model_params:
            text += f" k_sft={self.density_sft:g} k_ct={self.density_ct:g}"
        if "weight" in spec.model_params and (self.weight_sft, self.weight_ct) != (1.0, 1.0):
            text += f" w_sft={self.weight_sft:g} w_ct={self.weight_ct:g}"
        text += "".join(f" {k}={v}" for k, v in self.params)
        return text + (f" seed={self.random_seed}" if spec.random and self.random_seed else "")

    def to_config(self, base: str, sft: str, cts: Sequence[str], dtype: str = "float32") -> dict:
        """The mergekit-schema config of this candidate (SFT-flan first: it is TIES-SV's priority model)."""
        extra = dict(self.params)
        if self.method == "linear":
            models = [{"model": sft, "parameters": {"weight": self.weight_sft}}]
            models += [{"model": ct, "parameters": {"weight": self.weight_ct / len(cts)}} for ct in cts]
            config = {"merge_method": "linear", "models": models, "dtype": dtype}
            if extra:
                config["parameters"] = extra
            return config
        spec = self.spec

        def model(path: str, weight: float, density: float) -> dict:
            params = {}
            if "weight" in spec.model_params:
                params["weight"] = weight
            if "density" in spec.model_params:
                params["density"] = density
            return {"model": path, "parameters": params} if params else {"model": path}

        models = [model(sft, self.weight_sft, self.density_sft)]
        models += [model(ct, self.weight_ct, self.density_ct) for ct in cts]
        parameters: dict = {"normalize": True} if self.method in ("ties", "ties_sv") else {}
        if self.method == "ties_sv":
            parameters.update(slack=self.slack, priority=0)
        parameters.update(extra)
        config = {"merge_method": self.method, "models": models, "parameters": parameters, "dtype": dtype}
        if spec.needs_base:
            config = {"merge_method": self.method, "base_model": base, **{k: v for k, v in config.items()
                                                                          if k != "merge_method"}}
        return config


def candidate_record(candidate: MergeCandidate) -> dict:
    """The candidate as a dict for records and cache keys: the fields older code wrote, plus ``params`` and
    ``random_seed`` only where they say something (so older caches keep their keys)."""
    record = asdict(candidate)
    if not candidate.params:
        record.pop("params")
    else:
        record["params"] = [list(item) for item in candidate.params]
    if not candidate.spec.random:
        record.pop("random_seed")
    return record


def method_grid(method: str, **values: Any) -> list[MergeCandidate]:
    """Candidates of ANY registered method: the product of per-parameter value lists, in the order given.

    ``values``: ``density_sft``, ``density_ct``, ``weight_sft``, ``weight_ct`` (None: 1 - weight_sft, as WAVG's
    grid), ``slack``, ``random_seed``, and any other registry parameter of the method by its name (``gamma``,
    ``epsilon``, ``lambda``, ``bottom``, ``top``, ...). A scalar is a one-value list. Example (Table 3 beside TIES):
    ``method_grid("dare_ties", density_sft=[0.2, 0.4], density_ct=[1.0])``,
    ``method_grid("layer_swap", bottom=[1, 2], top=[1, 2])``.
    """
    from lrmerge.merge.methods import get_method

    spec = get_method(method)
    allowed = set(_SWEEPABLE) | (set(spec.params) | set(spec.model_params)) - {"weight", "density"}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(f"method_grid({method!r}): unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")
    if any(k.startswith("density") for k in values) and "density" not in spec.model_params:
        raise ValueError(f"method_grid({method!r}): {method} has no density")
    lists = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in values.items()}
    complement = "weight_ct" in lists and lists["weight_ct"] == [None]
    if complement:
        lists.pop("weight_ct")
    keys = list(lists)
    out = []
    for combo in itertools.product(*(lists[k] for k in keys)):
        chosen = dict(zip(keys, combo))
        fields = {k: chosen.pop(k) for k in _SWEEPABLE if k in chosen}
        if complement:
            fields["weight_ct"] = 1.0 - fields.get("weight_sft", 1.0)
        out.append(MergeCandidate(method, **fields, params=tuple(chosen.items())))
    return out


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
        record_candidate = candidate_record(candidate)
        key = config_key({"candidate": record_candidate, "models": identities, "evaluation": evaluation_key})
        scores_path = work_dir / "scores" / f"{key}.json"
        if scores_path.exists():
            scores = json.loads(scores_path.read_text())["scores"]
        else:
            model_dir = work_dir / "models" / key
            merge(config, model_dir, device=device, overwrite=True, progress=False,
                  random_seed=candidate.random_seed)
            try:
                scores = evaluator(model_dir)
            finally:
                if not keep_models:
                    shutil.rmtree(model_dir, ignore_errors=True)
            record = {"key": key, "candidate": record_candidate, "config": config, "scores": scores,
                      "evaluation": evaluation_key}
            atomic_write_text(scores_path, json.dumps(record, indent=2, default=str) + "\n")
            computed.append(key)
        rows.append({"key": key, "label": candidate.label, **record_candidate, **scores,
                     "dev_average": sum(scores.values()) / len(scores)})
    table = pd.DataFrame(rows)
    best_index = int(table["dev_average"].to_numpy().argmax())  # first maximum: grid order breaks ties
    return GridResult(table, candidates[best_index], computed)
