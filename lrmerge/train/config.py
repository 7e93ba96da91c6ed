"""Configs of the training stages (CT-X, SFT), validated before any training starts.

Every bad field fails with a pydantic ``ValidationError`` (a ``ValueError``) whose message names the field:
unknown corpus file, zero or negative token budget, replay share outside [0, 1), unknown language, unknown schedule.
Real runs (Appendix B): AdamW with betas (0.9, 0.95), peak LR 2e-5, 1M-token batches, bf16, Llama-2-7B;
the YAML plans for each language are ``configs/real/<lang>.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The seven languages of the paper (Table 2) and English; the demo world adds its own (lrmerge.demo.config).
PAPER_LANGUAGES = {
    "tam": "Tamil", "tel": "Telugu", "ory": "Odia", "ben": "Bengali",
    "bod": "Tibetan", "uig": "Uyghur", "mvf": "Mongolian (traditional script)",
}
ENGLISH = "eng"

Schedule = Literal["cosine", "constant_with_warmup"]
Precision = Literal["auto", "bf16", "fp32"]


def known_languages() -> dict[str, str]:
    """Paper languages, English and the demo world's languages (``lrmerge.demo.config.LANGUAGES``)."""
    try:
        from lrmerge.demo.config import LANGUAGES as demo_languages
    except ImportError:  # the demo world is optional for real runs
        demo_languages = ()
    demo = {code: f"demo language {code}" for code in demo_languages}
    return {**demo, **PAPER_LANGUAGES, ENGLISH: "English"}


def _check_language(value: str) -> str:
    allowed = known_languages()
    if value not in allowed:
        raise ValueError(f"unknown language {value!r}; allowed: {sorted(allowed)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelled field is an error, not silently ignored


class CorpusSource(_Strict):
    """Pre-training text: a local file (one document per line) or a hub dataset streamed by its text field."""

    path: Path | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    split: str = "train"
    text_field: str = "text"
    tokens: int | None = Field(None, gt=0, description="size of the corpus in tokens (Table 2), for plans only")

    @model_validator(mode="after")
    def _one_source(self) -> "CorpusSource":
        if (self.path is None) == (self.hub_id is None):
            raise ValueError("give exactly one of 'path' (local text file) or 'hub_id' (hub dataset)")
        if self.path is not None and not Path(self.path).is_file():
            raise ValueError(f"path: corpus file not found: {self.path}")
        return self

    def describe(self) -> str:
        if self.path is not None:
            return str(self.path)
        config = f"[{self.hub_config}]" if self.hub_config else ""
        return f"{self.hub_id}{config}:{self.split}.{self.text_field}"


class OptimConfig(_Strict):
    """AdamW + warmup + schedule (Appendix B: betas 0.9/0.95, peak 2e-5 for 7B)."""

    lr: float = Field(2e-5, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Schedule = "cosine"
    warmup_ratio: float = Field(0.01, ge=0, lt=1)
    embedding_lr_multiplier: float = Field(1.0, gt=0, description="LR factor for embed_tokens and lm_head")
    max_grad_norm: float = Field(1.0, gt=0)


class BatchConfig(_Strict):
    seq_len: int = Field(2048, gt=0)
    per_device_batch_size: int = Field(1, gt=0)
    grad_accum_steps: int = Field(1, gt=0)
    n_devices: int = Field(1, gt=0, description="devices assumed by plans; runs use the real world size")

    def tokens_per_step(self, world_size: int | None = None) -> int:
        return self.seq_len * self.per_device_batch_size * self.grad_accum_steps * (world_size or self.n_devices)


class StageConfig(_Strict):
    lang: str
    base_model: str = Field(description="HF folder or hub id of the model to start from")
    out_dir: Path
    seed: int = 0
    precision: Precision = "auto"  # auto: bf16 where the device supports it, fp32 on CPU
    optim: OptimConfig = OptimConfig()
    batch: BatchConfig = BatchConfig()
    save_steps: int = Field(200, gt=0, description="resumable trainer checkpoints every this many steps")
    save_total_limit: int | None = Field(2, gt=0)
    stop_after_steps: int | None = Field(None, gt=0, description="stop early (resumable), e.g. to split a job")
    throughput_tokens_per_s: float = Field(3000.0, gt=0, description="per-device assumption for plans (7B, FSDP, A100)")
    cpu_threads: int | None = Field(None, gt=0, description="torch threads on CPU; 1 is fastest on a shared machine")

    @field_validator("lang")
    @classmethod
    def _lang_known(cls, value: str) -> str:
        return _check_language(value)

    @field_validator("base_model")
    @classmethod
    def _model_exists(cls, value: str) -> str:
        # a local folder with config.json, or a hub id "owner/name" (not checked: nothing is downloaded before training)
        path = Path(value)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ValueError(f"model folder {value} has no config.json")
        elif path.is_absolute() or value.startswith(".") or value.count("/") != 1:
            raise ValueError(f"model folder not found (and not a hub id 'owner/name'): {value}")
        return value


class CTConfig(StageConfig):
    """CT-X: continual pre-training on language X with English replay at a share of the tokens."""

    x_corpus: CorpusSource
    replay_corpus: CorpusSource | None = None
    replay_share: float = Field(0.25, ge=0, lt=1, description="share of trained tokens from the English replay")
    x_tokens: int = Field(gt=0, description="tokens of language X to train on (Table 2, 'used')")
    checkpoint_tokens: list[int] | None = Field(None, description="total tokens seen (incl. replay) per checkpoint")
    n_checkpoints: int = Field(8, gt=0, description="evenly spaced checkpoints when checkpoint_tokens is not given")
    shuffle_documents: bool = Field(False, description="read each corpus's documents in a seed-dependent order "
                                    "(local corpora held in memory; the demo's seeds vary CT data order this way)")

    @model_validator(mode="after")
    def _replay(self) -> "CTConfig":
        if self.replay_share > 0 and self.replay_corpus is None:
            raise ValueError(f"replay_corpus: required when replay_share={self.replay_share} > 0")
        if self.checkpoint_tokens is not None:
            if not self.checkpoint_tokens or any(t <= 0 for t in self.checkpoint_tokens):
                raise ValueError(f"checkpoint_tokens: must be positive token counts, got {self.checkpoint_tokens}")
            if max(self.checkpoint_tokens) > self.total_tokens:
                raise ValueError(
                    f"checkpoint_tokens: {max(self.checkpoint_tokens)} exceeds the run's {self.total_tokens} tokens")
        return self

    @property
    def total_tokens(self) -> int:
        """X tokens plus replay so that replay is ``replay_share`` of all tokens trained."""
        return round(self.x_tokens / (1.0 - self.replay_share))

    def resolved_checkpoint_tokens(self) -> list[int]:
        if self.checkpoint_tokens is not None:
            return sorted(set(self.checkpoint_tokens))
        n = self.n_checkpoints
        return [round(self.total_tokens * (i + 1) / n) for i in range(n)]


class SFTConfig(StageConfig):
    """SFT on prompt/response JSONL (loss on responses only), with plain-LM replay (footnote 1)."""

    stage: Literal["sft-flan", "ctsft-flan", "ctsft-mt"] = "sft-flan"
    sft_files: list[Path] = Field(min_length=1)
    replay_corpora: list[CorpusSource] = Field(default_factory=list, description="English and X pre-training text")
    replay_share: float = Field(0.05, ge=0, lt=1, description="share of training sequences that are plain LM text")
    epochs: float = Field(1.0, gt=0)
    max_len: int = Field(512, gt=0, description="prompt+response tokens kept per example (truncated)")
    replay_len: int | None = Field(None, gt=0, description="tokens per replay chunk; default: mean SFT example length")
    group_by_length: bool = Field(False, description="batches of similar lengths (less padding; the demo's SFT "
                                  "data mixes 25- and 100-token examples)")

    @field_validator("sft_files")
    @classmethod
    def _files_exist(cls, files: list[Path]) -> list[Path]:
        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            raise ValueError(f"SFT JSONL file(s) not found: {missing}")
        return files

    @model_validator(mode="after")
    def _replay(self) -> "SFTConfig":
        if self.replay_share > 0 and not self.replay_corpora:
            raise ValueError(f"replay_corpora: required when replay_share={self.replay_share} > 0")
        return self


def load_config(path: str | Path, stage: Literal["ct", "sft"], overrides: dict[str, Any] | None = None):
    """Load a YAML file (the whole file, or its ``ct:`` / ``sft:`` section) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason})") from error
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    if stage in data and isinstance(data[stage], dict):
        data = data[stage]
    data = _deep_update(dict(data), overrides or {})
    cls = {"ct": CTConfig, "sft": SFTConfig}[stage]
    return cls.model_validate(data)


def _deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _deep_update(dict(base[key]), value)
        else:
            base[key] = value
    return base
