"""mergekit-schema merge configs (YAML), validated strictly.

Accepted keys: ``merge_method``, ``base_model``, ``models: [{model, parameters: {weight, density}}]``,
``parameters`` (shared ones, see ``MERGE_METHODS[...].params``; per-model ones given here apply to every model,
as in mergekit), ``dtype``, ``out_dtype``. Unknown keys and parameter names raise a ValueError naming the key and
the closest valid name (mergekit silently ignores a misspelled ``densty:``). Defaults are mergekit 0.1.5's.
Extras beyond mergekit: ``election`` (sum|count), ``weighted_election``, ``divide`` (weight_sum|count),
``scope`` (per_tensor|global), and for ties_sv ``slack``, ``priority`` (model path or index in ``models``),
``slack_of`` (kept|discarded). We always compute in float32; ``dtype`` only sets the default output dtype.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from lrmerge.errors import UserError, plain_validation

from lrmerge.merge.methods import get_method
from lrmerge.merge.primitives import DIVIDES, ELECTIONS, SLACK_OF

DTYPES = ("float32", "float16", "bfloat16")
SCOPES = ("per_tensor", "global")
_CHOICES = {"election": ELECTIONS, "divide": tuple(d for d in DIVIDES if d != "none"), "slack_of": SLACK_OF,
            "scope": SCOPES}
_IGNORED_MERGEKIT = {"int8_mask": False, "rescale": False}  # accepted only with values that change nothing


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
        shared_names = list(spec.params) + list(_IGNORED_MERGEKIT)
        per_model_names = list(spec.model_params)
        _check_keys(self.parameters, shared_names + per_model_names, f"parameter for {self.merge_method}")
        for key, inert in _IGNORED_MERGEKIT.items():
            if key in self.parameters and self.parameters[key] != inert:
                raise ValueError(f"parameter {key}={self.parameters[key]!r} is not supported (only {inert!r})")
        shared = {**spec.params, **{k: v for k, v in self.parameters.items() if k in spec.params}}
        for key, allowed in _CHOICES.items():
            if key in shared and shared[key] not in allowed:
                raise ValueError(f"parameter {key}={shared[key]!r} is not one of {list(allowed)}")
        for key in ("normalize", "weighted_election"):
            if key in shared and not isinstance(shared[key], bool):
                raise ValueError(f"parameter {key} must be true or false, got {shared[key]!r}")
        if "lambda" in shared and (isinstance(shared["lambda"], bool) or not isinstance(shared["lambda"], (int, float))):
            raise ValueError(f"parameter lambda must be a number, got {shared['lambda']!r}")
        for key in ("lambda", "slack"):
            if isinstance(shared.get(key), float) and not math.isfinite(shared[key]):
                raise ValueError(f"parameter {key} must be a finite number, got {shared[key]!r}")

        weights, densities = [], []
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
                if not math.isfinite(value):
                    raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
                values[name] = float(value)
            if "density" in values and not 0.0 < values["density"] <= 1.0:
                raise ValueError(f"{where}: density must be in (0, 1], got {values['density']}")
            if spec.uses_masks and values["weight"] < 0:
                raise ValueError(f"{where}: weight must be >= 0 for {self.merge_method}, got {values['weight']}")
            weights.append(values["weight"])
            densities.append(values.get("density", 1.0))

        if all(w == 0 for w in weights):
            raise ValueError(f"every model weight is 0: the {self.merge_method} merge would return "
                             f"{'base_model unchanged' if spec.needs_base else 'an all-zero model'}; give a model a "
                             "non-zero weight")
        divides_by_sum = shared.get("normalize") and not spec.uses_masks  # linear / task_arithmetic with normalize
        if divides_by_sum and abs(sum(weights)) < 1e-12:
            raise ValueError(f"the model weights {weights} sum to 0 and normalize: true divides by that sum; change a "
                             "weight or set normalize: false")
        options = {("lambda_" if k == "lambda" else k): v for k, v in shared.items() if k != "scope"}
        if "priority" in options:
            options["priority"] = self._priority_index(options["priority"], [e.model for e in entries])
        if "slack" in options and not 0.0 <= float(options["slack"]) <= 1.0:
            raise ValueError(f"parameter slack must be in [0, 1], got {options['slack']}")
        return ResolvedMerge(self.merge_method, self.base_model, [e.model for e in entries], weights, densities,
                             options, shared.get("scope", "per_tensor"), self.dtype, self.out_dtype)

    @staticmethod
    def _priority_index(priority: Any, models: list[str]) -> int:
        if isinstance(priority, bool):
            raise ValueError(f"parameter priority must be a model path or index, got {priority!r}")
        if isinstance(priority, int):
            if not 0 <= priority < len(models):
                raise ValueError(f"parameter priority={priority} is not an index into models (0..{len(models) - 1})")
            return priority
        if priority in models:
            return models.index(priority)
        raise ValueError(f"parameter priority={priority!r} is not one of the models {models}")


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
    """A MergeConfig from an object, a dict or a YAML path (errors name the file and the field)."""
    if isinstance(config, MergeConfig):
        return config
    if isinstance(config, dict):
        try:
            return MergeConfig.model_validate(config)
        except ValidationError as error:
            raise UserError(f"merge config: {plain_validation(error)}") from error
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"merge config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from error
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from error
    try:
        return MergeConfig.model_validate(data)
    except ValidationError as error:
        raise UserError(f"{path}: {plain_validation(error)}") from error
    except ValueError as error:
        raise UserError(f"{path}: {error}") from error
