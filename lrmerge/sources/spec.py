"""What a study language reads, as data: a `SourceSpec` (what a provider or a user's YAML names: hub ids or local
files) and the `ResolvedSource` that stage 01 writes into its manifest (local files, checked) and that every later
stage reads. Nothing after stage 01 looks anywhere else for BASE, corpora, SFT data or evaluation sets.

A spec field names either a hub dataset/model (``hub_id``) or local files (``files`` / ``path``); resolution checks
each before any training starts and fails with one line naming the field (``source.ct_corpus.files[1]: ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lrmerge.data.common import HUB_ID

TextFormat = Literal["auto", "lines", "udhr_xml", "sib200_tsv", "jsonl_text"]
SFTKind = Literal["jsonl", "gsm8k", "sib200_topic", "flan_hub"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_hub_id(value: str, field: str) -> str:
    if not HUB_ID.match(value):
        raise ValueError(f"{field}: {value!r} is not a hub id of the form 'owner/name'")
    return value


class ModelSpec(_Strict):
    """BASE: a local HF folder (``path``), a hub model id (``hub_id``), or a packaged model (``package``)."""

    path: str | None = None
    hub_id: str | None = None
    package: Literal["smollm2-135m-instruct"] | None = None

    @model_validator(mode="after")
    def _one(self) -> "ModelSpec":
        given = [name for name in ("path", "hub_id", "package") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of path, hub_id, package (got {given or 'none'})")
        if self.hub_id:
            check_hub_id(self.hub_id, "hub_id")
        return self

    def describe(self) -> str:
        return self.path or self.hub_id or f"package {self.package}"


class TextSpec(_Strict):
    """Plain text for CT or replay: local ``files`` (format by suffix, see `lrmerge.sources.text`) or a hub dataset
    streamed by its text field. ``heldout_every``: every n-th document of local files is kept out of training and
    written as the language's held-out text (perplexity); 0 keeps none."""

    files: list[str] = Field(default_factory=list)
    format: TextFormat = "auto"
    hub_id: str | None = None
    hub_config: str | None = None
    split: str = "train"
    text_field: str = "text"
    heldout_every: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _one(self) -> "TextSpec":
        if bool(self.files) == bool(self.hub_id):
            raise ValueError("give exactly one of files (local text) or hub_id (hub dataset)")
        if self.hub_id:
            check_hub_id(self.hub_id, "hub_id")
        return self

    def describe(self) -> str:
        if self.files:
            return ", ".join(self.files)
        return f"{self.hub_id}[{self.hub_config or ''}]:{self.split}.{self.text_field}"


class SFTPart(_Strict):
    """One part of the SFT data. kinds: ``jsonl`` (records {prompt, response}), ``gsm8k`` (GSM8K rows with worked
    answers), ``sib200_topic`` (SIB-200 train sentences of ``lang`` as topic classification), ``flan_hub`` (the FLAN
    collection from the hub). ``source``: a local file/folder or a hub id. ``limit``: first n records (None: all)."""

    kind: SFTKind
    source: str
    lang: str = "eng"
    limit: int | None = Field(None, gt=0)


class MTSpec(_Strict):
    """The -mt SFT data: a ready JSONL (``file``), or a translation model (``model``, NLLB) that translates
    ``translated_share`` of the SFT-flan records in stage 01. Neither: CTSFT-X-mt is skipped."""

    file: str | None = None
    model: str | None = None
    translated_share: float = Field(0.5, ge=0, le=1)


class EvalSpec(_Strict):
    """Evaluation sets: ``source`` is an evaluation root in the real schemas (sib200/, belebele/, mgsm/, mlic/) or
    a hub id; ``tasks``: benchmarks to score (default: the language's own, Table 2); ``unavailable``: the
    language's benchmarks this source cannot give, with the reason (reported in the tables); ``limit``: first n
    items per task and split (quick profiles)."""

    source: str
    per_task: dict[str, str] = Field(default_factory=dict, description="benchmark -> its own source (hub ids differ)")
    tasks: list[str] | None = None
    unavailable: dict[str, str] = Field(default_factory=dict)
    limit: dict[str, int] = Field(default_factory=dict)
    choice_answer: Literal["letter", "letter_text"] = Field(
        "letter", description="how reading comprehension and response selection are answered, in the SFT data and "
        "by the log-likelihood protocol: the option letter (the benchmarks' way) or the letter and the option's text "
        "(`lrmerge.prompts.choice_answer`; the demo world)")

    def source_of(self, task: str) -> str:
        return self.per_task.get(task, self.source)

    def sources(self) -> str | dict[str, str]:
        """What the loaders take: one evaluation root, or benchmark -> source when the benchmarks differ."""
        return {**{t: self.source for t in self.tasks or ()}, **self.per_task} if self.per_task else self.source


class SourceSpec(_Strict):
    """Everything one language of the study reads, before resolution."""

    lang: str
    provider: str = "custom"
    base: ModelSpec
    ct_corpus: TextSpec
    replay_corpus: TextSpec
    sft_flan: list[SFTPart] = Field(min_length=1)
    sft_mt: MTSpec = MTSpec()
    eval: EvalSpec
    heldout: dict[str, list[str]] = Field(default_factory=dict, description="lang -> held-out text files (perplexity)")
    extras: dict = Field(default_factory=dict, description="provider-specific paths (the demo world: world_root)")
    notes: list[str] = Field(default_factory=list, description="what a reader should know (labelled in tables)")


class ResolvedSource(_Strict):
    """The manifest of stage 01: local files only (hub corpora stay streamed), checked and described."""

    lang: str
    provider: str
    base: str  # local model folder
    ct_corpus: dict  # lrmerge.train.config.CorpusSource fields (local path or hub stream)
    replay_corpus: dict
    heldout: dict[str, str]  # lang -> local file of held-out documents
    sft_flan: str  # local JSONL
    sft_mt: str | None  # local JSONL, or None: CTSFT-X-mt skipped
    sft_mt_skipped: str | None = None  # the reason when sft_mt is None
    eval_source: str | dict[str, str]  # an evaluation root, or benchmark -> source
    tasks: list[str]
    unavailable_tasks: dict[str, str] = Field(default_factory=dict)
    eval_limit: dict[str, int] = Field(default_factory=dict)
    choice_answer: Literal["letter", "letter_text"] = "letter"  # EvalSpec.choice_answer
    extras: dict = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    description: dict = Field(default_factory=dict)

    def corpus(self, which: Literal["ct", "replay"]):
        from lrmerge.train.config import CorpusSource

        return CorpusSource(**(self.ct_corpus if which == "ct" else self.replay_corpus))

    @property
    def world_root(self) -> Path | None:
        root = self.extras.get("world_root")
        return Path(root) if root else None
