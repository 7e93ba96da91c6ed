"""The embedded demo world: a miniature of the paper's setting that runs end to end on a CPU.

English (`eng`), a CLOSE low-resource language `tbx` (Tibetan script, English word order, letters in BASE's
vocabulary through a small trace) and a FAR one `mnx` (traditional Mongolian script, SOV with case particles,
UTF-8 byte tokens for BASE). `build_world(config)` writes corpora, SFT data, eval sets in the real benchmarks'
schemas, a Llama-2-like tokenizer and a pre-trained BASE under `runs/world/<config_key>/`, once per config.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from lrmerge.demo.config import FLORES_CODE, LANGUAGES, X_LANGUAGES, BaseModelConfig, WorldConfig, profile_config

# Bump when the generators change what a config produces, so cached worlds of older code are not reused.
WORLD_FORMAT = 5

__all__ = ["WorldConfig", "BaseModelConfig", "WorldPaths", "build_world", "profile_config", "world_paths",
           "LANGUAGES", "X_LANGUAGES", "FLORES_CODE"]


@dataclass(frozen=True)
class WorldPaths:
    root: Path

    @property
    def world_json(self) -> Path:
        return self.root / "world.json"

    @property
    def en_pretrain(self) -> Path:
        return self.root / "corpus" / "en_pretrain.txt"

    @property
    def en_replay(self) -> Path:
        return self.root / "corpus" / "en_replay.txt"

    def corpus(self, lang: str) -> Path:
        """Monolingual CT corpus of an X language; 'eng' gives the English replay text."""
        if lang == "eng":
            return self.en_replay
        if lang not in X_LANGUAGES:
            raise ValueError(f"unknown language {lang!r}; allowed: {LANGUAGES}")
        return self.root / "corpus" / f"{lang}.txt"

    @property
    def sft_flan(self) -> Path:
        return self.root / "sft" / "flan_en.jsonl"

    def sft_mt(self, lang: str) -> Path:
        if lang not in X_LANGUAGES:
            raise ValueError(f"unknown X language {lang!r}; allowed: {X_LANGUAGES}")
        return self.root / "sft" / f"flan_mt_{lang}.jsonl"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def lexicon(self) -> Path:
        return self.root / "lexicon.tsv"

    def record(self) -> dict:
        return json.loads(self.world_json.read_text())


def world_paths(config: WorldConfig, root: str | Path | None = None) -> WorldPaths:
    from lrmerge.runs import config_key, runs_root

    base_root = Path(root) if root is not None else runs_root() / "world"
    return WorldPaths(base_root / config_key({"world_format": WORLD_FORMAT, **config.to_dict()}))


def build_world(config: WorldConfig | None = None, root: str | Path | None = None, progress: bool = True) -> WorldPaths:
    """Build (or reuse, keyed by the config hash) the world folder; see `lrmerge.demo.build` for the stages."""
    from lrmerge.runs import exclusive

    config = config or profile_config("demo")
    paths = world_paths(config, root)
    if paths.world_json.exists():
        return paths
    with exclusive(paths.root):  # two languages' stage 01 running at once build it once
        if paths.world_json.exists():
            return paths
        return _build(config, paths, progress)


def _build(config: WorldConfig, paths: WorldPaths, progress: bool) -> WorldPaths:
    from lrmerge.demo.build import build_into
    from lrmerge.runs import atomic_output_dir, write_run_record

    work_dir = paths.root.with_name(f".work-{paths.root.name}")  # resumable BASE state survives a failed build
    start = time.time()
    with atomic_output_dir(paths.root) as tmp:
        summary = build_into(Path(tmp), config, work_dir, progress)
        summary["timings_s"]["total"] = round(time.time() - start, 1)
        write_run_record(tmp, config.to_dict(), seed=config.seed, stage="world")
        (Path(tmp) / "world.json").write_text(json.dumps({"config": config.to_dict(), "seed": config.seed, **summary},
                                                         indent=2, ensure_ascii=False, default=str) + "\n")
    shutil.rmtree(work_dir, ignore_errors=True)
    return paths
