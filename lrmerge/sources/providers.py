"""Providers: who builds a language's `SourceSpec`. The study's profiles pick one; a user's YAML replaces it.

demo      the embedded demo world (tbx, mnx): built by `lrmerge.demo.build_world`, then read like any source
real-cpu  a paper language on a CPU: SmolLM2-135M (packaged on PyPI) as BASE, the real data shipped beside the
          project (UDHR + SIB-200 train text for CT, GSM8K train + English SIB-200 topics for SFT-flan, SIB-200
          dev/test and MGSM for evaluation); no MT model, so CTSFT-X-mt is skipped
paper     the paper's setting: Llama-2-7B, CulturaX / IndicCorp-v2 / MC^2, FLAN + GSM8K, NLLB, the hub benchmarks
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from lrmerge.languages import PAPER_LANGUAGES, get_language
from lrmerge.sources.spec import EvalSpec, ModelSpec, MTSpec, SFTPart, SourceSpec, TextSpec

PAPER_BASE = "meta-llama/Llama-2-7b-hf"
PAPER_REPLAY = "togethercomputer/RedPajama-Data-1T-Sample"
PAPER_SFT = (("flan_hub", "Muennighoff/flan"), ("gsm8k", "openai/gsm8k"))
PAPER_MT_MODEL = "facebook/nllb-200-distilled-1.3B"
UDHR_FILE = {"tam": "udhr_tam.xml", "tel": "udhr_tel.xml", "ben": "udhr_ben.xml", "bod": "udhr_bod.xml",
             "uig": "udhr_uig_arab.xml", "eng": "udhr_eng.xml"}  # ory and mvf have no UDHR file beside the project


def shared_data_dir() -> Path:
    """The real data beside the project: $LRMERGE_SHARED_DATA, else <checkout>/../shared/data."""
    env = os.environ.get("LRMERGE_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def demo_spec(lang: str, world_profile: str = "quick", world_seed: int = 0, run_root: str | Path = "runs",
              world_root: str | Path | None = None, **world_overrides: Any) -> SourceSpec:
    """Build (or reuse) the demo world (under ``world_root``, default <run_root>/world) and describe its files as a
    source; ``world_overrides``: `WorldConfig` fields (e.g. ``vocab_size``)."""
    from lrmerge.demo import X_LANGUAGES, build_world, profile_config

    if lang not in X_LANGUAGES:
        raise ValueError(f"the demo provider serves the demo languages {X_LANGUAGES}, not {lang!r}")
    world = build_world(profile_config(world_profile, seed=world_seed, **world_overrides),
                        root=Path(world_root) if world_root else Path(run_root) / "world", progress=False)
    return SourceSpec(
        lang=lang, provider="demo",
        base=ModelSpec(path=str(world.base)),
        ct_corpus=TextSpec(files=[str(world.corpus(lang))], format="lines"),
        replay_corpus=TextSpec(files=[str(world.en_replay)], format="lines"),
        sft_flan=[SFTPart(kind="jsonl", source=str(world.sft_flan))],
        sft_mt=MTSpec(file=str(world.sft_mt(lang))),
        eval=EvalSpec(source=str(world.eval_dir), choice_answer=world.record()["config"]["choice_answer"]),
        heldout={code: [str(world.eval_dir / "sib200" / flores / f"{split}.tsv") for split in ("dev", "test")]
                 for code, flores in (("eng", "eng_Latn"), (lang, get_language(lang).flores_code))},
        extras={"world_root": str(world.root), "world_profile": world_profile, "world_seed": world_seed},
        notes=["the embedded demo world: generated languages and a tiny BASE trained on the CPU"],
    )


def real_cpu_spec(lang: str, data_dir: str | Path | None = None, sft_gsm8k: int = 400, sft_topic: int = 400,
                  eval_limit: int | None = None, **_: Any) -> SourceSpec:
    """A paper language with a real small model and the real data beside the project (see the module doc)."""
    if lang not in PAPER_LANGUAGES:
        raise ValueError(f"the real-cpu provider serves the paper languages {PAPER_LANGUAGES}, not {lang!r}")
    config = get_language(lang)
    data = Path(data_dir) if data_dir else shared_data_dir()
    if not data.is_dir():
        raise FileNotFoundError(f"real data folder not found: {data} (set LRMERGE_SHARED_DATA to the folder "
                                "holding sib200/, mgsm/, gsm8k/, udhr/)")
    ct_files = [str(data / "sib200" / config.flores_code / "train.tsv")] if config.flores_code else []
    if lang in UDHR_FILE:
        ct_files.insert(0, str(data / "udhr" / UDHR_FILE[lang]))
    tasks, unavailable = [], {}
    for task in config.tasks:
        offline = {"sib200": config.flores_code and (data / "sib200" / config.flores_code).is_dir(),
                   "mgsm": config.mgsm_code and (data / "mgsm" / f"mgsm_{config.mgsm_code}.tsv").is_file()}.get(task)
        if offline:
            tasks.append(task)
        else:
            unavailable[task] = "not available offline (hub only)"
    if not tasks:
        raise ValueError(f"the real-cpu provider has no offline evaluation set for {lang!r} "
                         f"(its tasks {', '.join(config.tasks)} are hub-only)")
    limit = {"dev": eval_limit, "test": eval_limit} if eval_limit else {}
    return SourceSpec(
        lang=lang, provider="real-cpu",
        base=ModelSpec(package="smollm2-135m-instruct"),
        ct_corpus=TextSpec(files=ct_files, heldout_every=10),
        replay_corpus=TextSpec(files=[str(data / "udhr" / UDHR_FILE["eng"]), str(data / "sib200" / "eng_Latn" / "train.tsv")],
                               heldout_every=10),
        sft_flan=[SFTPart(kind="gsm8k", source=str(data / "gsm8k"), limit=sft_gsm8k),
                  SFTPart(kind="sib200_topic", source=str(data / "sib200"), lang="eng", limit=sft_topic)],
        sft_mt=MTSpec(),
        eval=EvalSpec(source=str(data), tasks=tasks, unavailable=unavailable, limit=limit),
        notes=["real-cpu: SmolLM2-135M-Instruct (not Llama-2-7B) and tiny offline data; compare shapes, not numbers"],
    )


def paper_spec(lang: str, **_: Any) -> SourceSpec:
    """The paper's setting for one language (hub ids; resolution needs the hub)."""
    if lang not in PAPER_LANGUAGES:
        raise ValueError(f"the paper provider serves the paper languages {PAPER_LANGUAGES}, not {lang!r}")
    config = get_language(lang)
    corpus = config.ct_corpus
    return SourceSpec(
        lang=lang, provider="paper",
        base=ModelSpec(hub_id=PAPER_BASE),
        ct_corpus=TextSpec(hub_id=corpus.hub_id, hub_config=corpus.subset, text_field=corpus.text_field),
        replay_corpus=TextSpec(hub_id=PAPER_REPLAY),
        sft_flan=[SFTPart(kind=kind, source=source) for kind, source in PAPER_SFT],
        sft_mt=MTSpec(model=PAPER_MT_MODEL),
        eval=EvalSpec(source=config.task_sources[config.tasks[0]], tasks=list(config.tasks),
                      per_task={t: config.task_sources[t] for t in config.tasks}),
        extras={"ct_tokens_used": corpus.tokens_used, "corpus": corpus.name},
    )


PROVIDERS: dict[str, Callable[..., SourceSpec]] = {"demo": demo_spec, "real-cpu": real_cpu_spec, "paper": paper_spec}


def provider_spec(provider: str, lang: str, **options: Any) -> SourceSpec:
    if provider not in PROVIDERS:
        raise ValueError(f"unknown source provider {provider!r}; allowed: {', '.join(PROVIDERS)}")
    return PROVIDERS[provider](lang, **options)


def load_spec_file(path: str | Path, lang: str) -> SourceSpec:
    """A user's source YAML (the fields of `SourceSpec`); its ``lang`` must be the study's language."""
    import yaml
    from pydantic import ValidationError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"source file not found: {path}")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of source fields")
    data.setdefault("lang", lang)
    data.setdefault("provider", "custom")
    try:
        spec = SourceSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{path}: source.{field}: {message}") from None
    if spec.lang != lang:
        raise ValueError(f"{path}: source.lang is {spec.lang!r} but the study runs {lang!r}")
    return spec
