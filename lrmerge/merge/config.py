"""mergekit-schema merge configs (YAML), validated strictly.

Accepted keys: ``merge_method``, ``base_model``, ``models: [{model, parameters: {weight, density}}]``,
``parameters`` (shared ones, see ``MERGE_METHODS[...].params``; per-model ones given here apply to every model,
as in mergekit), ``dtype``, ``out_dtype``. Unknown keys and parameter names raise a ValueError naming the key and
the closest valid name (mergekit silently ignores a misspelled ``densty:``). Defaults are mergekit 0.1.5's.
Extras beyond mergekit: ``election`` (sum|count), ``weighted_election``, ``divide`` (weight_sum|count|none),
``scope`` (per_tensor|global, magnitude-trimming methods), for ties_sv ``slack``, ``priority`` (model path or index
in ``models``), ``slack_of`` (kept|discarded), and for layer_swap ``bottom``, ``top`` (block counts) and ``outer``
(the language expert: path or index). Per-model ``gamma`` (breadcrumbs) and ``epsilon`` (della) and the shared
``rescale`` (sparsifying methods) as in mergekit; ``int8_mask`` is accepted and changes nothing. The random methods
take their seed from ``merge(..., random_seed=N)`` / ``lrmerge merge --random-seed N`` (mergekit's option), not from
the YAML. We always compute in float32; ``dtype`` only sets the default output dtype.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from lrmerge.merge.methods import CHOICES, get_method

DTYPES = ("float32", "float16", "bfloat16")
# mergekit parameters accepted where they change nothing: int8_mask (mask dtype), rescale without a sparsifier
_IGNORED_MERGEKIT = {"int8_mask": False, "rescale": False}


def _check_value(key: str, value: Any, default: Any) -> None:
    """A shared parameter's value has its default's type (or one of CHOICES[key])."""
    if key in CHOICES:
        if value not in CHOICES[key]:
            raise ValueError(f"parameter {key}={value!r} is not one of {list(CHOICES[key])}")
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"parameter {key} must be true or false, got {value!r}")
    elif key in ("priority", "outer"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"parameter {key} must be a model path or index, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"parameter {key} must be an integer, got {value!r}")
    elif isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"parameter {key} must be a number, got {value!r}")


def _unknown(kind: str, key: str, allowed: list[str]) -> ValueError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ValueError(f"unknown {kind} {key!r}{hint} (allowed: {sorted(allowed)})")


def _check_keys(data: Any, allowed: list[str], kind: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{kind} must be a mapping, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            raise _unknown(kind, str(key), allowed)


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    parameters: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        _check_keys(data, ["model", "parameters"], "key in a models entry")
        return data


class MergeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    merge_method: str
    base_model: str | None = None
    models: list[ModelEntry]
    parameters: dict[str, Any] = {}
    dtype: Literal["float32", "float16", "bfloat16"] | None = None
    out_dtype: Literal["float32", "float16", "bfloat16"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        _check_keys(data, ["merge_method", "base_model", "models", "parameters", "dtype", "out_dtype"], "config key")
        return data

    @model_validator(mode="after")
    def _semantics(self) -> "MergeConfig":
        self.resolve()
        return self

    def resolve(self) -> "ResolvedMerge":
        spec = get_method(self.merge_method)
        if spec.needs_base and not self.base_model:
            raise ValueError(f"merge_method {self.merge_method!r} needs base_model")
        if not spec.needs_base and self.base_model:
            raise ValueError(f"merge_method {self.merge_method!r} takes no base_model (mergekit would merge it as an "
                             "input needing a weight); list it under models with a weight instead")
        entries = [e for e in self.models if not (self.base_model and e.model == self.base_model)]
        if self.base_model and any(e.model == self.base_model and e.parameters for e in self.models):
            raise ValueError(f"base_model {self.base_model!r} is listed in models with parameters; remove them")
        if not entries:
            raise ValueError("models: at least one model besides base_model is needed")
        inert = {k: v for k, v in _IGNORED_MERGEKIT.items() if k not in spec.params}
        shared_names = list(spec.params) + list(inert)
        per_model_names = list(spec.model_params)
        _check_keys(self.parameters, shared_names + per_model_names, f"parameter for {self.merge_method}")
        for key in inert:
            if key in self.parameters and not isinstance(self.parameters[key], bool):
                raise ValueError(f"parameter {key} must be true or false, got {self.parameters[key]!r}")
        shared = {**spec.params, **{k: v for k, v in self.parameters.items() if k in spec.params}}
        for key, value in shared.items():
            _check_value(key, value, spec.params[key])
        if shared.get("scope", "per_tensor") == "global" and "global_scope" not in spec.supports:
            raise ValueError(f"parameter scope='global' is not supported by {self.merge_method}")

        weights, densities, extras = [], [], {name: [] for name in spec.model_params if name not in ("weight", "density")}
        for entry in entries:
            where = f"models[{entry.model}].parameters"
            _check_keys(entry.parameters, per_model_names, f"parameter in {where} for {self.merge_method}")
            values = {}
            for name, default in spec.model_params.items():
                value = entry.parameters.get(name, self.parameters.get(name, default))
                if value is None:
                    raise ValueError(f"{where}: {name} is required for {self.merge_method}")
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{where}: {name} must be a number, got {value!r}")
                values[name] = float(value)
            if "density" in values and not 0.0 < values["density"] <= 1.0:
                raise ValueError(f"{where}: density must be in (0, 1], got {values['density']}")
            if "negative_weights" not in spec.supports and values.get("weight", 0.0) < 0:
                raise ValueError(f"{where}: weight must be >= 0 for {self.merge_method}, got {values['weight']}")
            weights.append(values.get("weight", 1.0))
            densities.append(values.get("density", 1.0))
            for name in extras:
                extras[name].append(values[name])

        options = {("lambda_" if k == "lambda" else k): v for k, v in shared.items() if k != "scope"}
        options.update(extras)
        models = [e.model for e in entries]
        if self.merge_method == "layer_swap" and len(models) != 2:
            raise ValueError(f"layer_swap merges exactly two models (task expert, language expert); got {len(models)}")
        for key in ("priority", "outer"):
            if key in options:
                options[key] = self._priority_index(options[key], models, key)
        if "slack" in options and not 0.0 <= float(options["slack"]) <= 1.0:
            raise ValueError(f"parameter slack must be in [0, 1], got {options['slack']}")
        for key in ("bottom", "top"):
            if key in options and options[key] < 0:
                raise ValueError(f"parameter {key} must be >= 0, got {options[key]}")
        return ResolvedMerge(self.merge_method, self.base_model, models, weights, densities,
                             options, shared.get("scope", "per_tensor"), self.dtype, self.out_dtype)

    @staticmethod
    def _priority_index(priority: Any, models: list[str], key: str = "priority") -> int:
        if isinstance(priority, bool):
            raise ValueError(f"parameter {key} must be a model path or index, got {priority!r}")
        if isinstance(priority, int):
            if not 0 <= priority < len(models):
                raise ValueError(f"parameter {key}={priority} is not an index into models (0..{len(models) - 1})")
            return priority
        if priority in models:
            return models.index(priority)
        raise ValueError(f"parameter {key}={priority!r} is not one of the models {models}")


@dataclass(frozen=True)
class ResolvedMerge:
    method: str
    base_model: str | None
    models: list[str]
    weights: list[float]
    densities: list[float]
    options: dict[str, Any]  # keyword arguments for the method function
    scope: str
    dtype: str | None
    out_dtype: str | None


def load_config(config: "MergeConfig | dict | str | Path") -> MergeConfig:
    """A MergeConfig from an object, a dict or a YAML path (errors name the file)."""
    if isinstance(config, MergeConfig):
        return config
    if isinstance(config, dict):
        return MergeConfig.model_validate(config)
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"merge config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
        return MergeConfig.model_validate(data)
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: {error}") from error
