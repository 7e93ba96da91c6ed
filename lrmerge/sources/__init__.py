"""One data source per language, read by every stage of the study.

Stage 01 turns a `SourceSpec` — from a provider (the demo world, the real data on a CPU, the paper's hub data) or
from a user's YAML — into a `ResolvedSource` (checked local files) and writes it as its manifest. Stages 02-09 read
BASE, corpora, SFT data and evaluation sets only from there (`read_source`).
"""

from __future__ import annotations

from pathlib import Path

from lrmerge.sources.providers import PROVIDERS, load_spec_file, provider_spec, shared_data_dir
from lrmerge.sources.spec import ResolvedSource, SourceSpec

DATA_STAGE = "data"

__all__ = ["PROVIDERS", "ResolvedSource", "SourceSpec", "DATA_STAGE", "load_spec_file", "provider_spec",
           "read_source", "resolve", "shared_data_dir"]


def resolve(spec: SourceSpec, out_dir: str | Path, model_cache: str | Path) -> ResolvedSource:
    from lrmerge.sources.resolution import resolve as _resolve

    return _resolve(spec, out_dir, model_cache)


def read_source(run_root: str | Path, lang: str) -> ResolvedSource:
    """The resolved source that stage 01 wrote for ``lang`` (a clear error when it has not run)."""
    from lrmerge.pipeline import read_manifest

    return ResolvedSource.model_validate(read_manifest(run_root, lang, DATA_STAGE)["source"])
