"""SFT (section 3.2): instruction tuning with the loss on response tokens only, plus plain-LM replay (footnote 1).

One entry point builds the three SFT models of the paper; they differ only in the starting model and the JSONL:
  SFT-flan      BASE  + English FLAN-style + GSM8K-style records
  CTSFT-X-flan  CT-X  + the same English records
  CTSFT-X-mt    CT-X  + the machine-translated variant (``lrmerge.translate.make_mt_variant``)
Footnote 1: "we perform necessary replay with pre-training texts in both English and language X": a share
``replay_share`` of the training sequences are packed chunks of plain text (all tokens carry loss), drawn evenly
from ``replay_corpora``. The output is ``<out>/model/`` (a full HF checkpoint with ``lrmerge_run.json``).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from lrmerge.runs import read_run_record
from lrmerge.train.config import SFTConfig
from lrmerge.train.data import (
    collate_padded, collate_scored_suffix, iter_blend, pack_documents, read_sft_jsonl, tokenize_sft_records,
)
from lrmerge.train.engine import (
    StageTrainer, TokenProgress, configure_threads, load_model_and_tokenizer, run_trainer, save_hf_checkpoint,
    training_arguments, world_size,
)


@dataclass
class SFTResult:
    model_dir: Path | None  # None when stopped early (stop_after_steps); rerun to resume
    finished: bool
    n_sft: int
    n_replay: int
    tokens_per_s: float


def replay_count(n_sft: int, replay_share: float) -> int:
    """LM sequences to add so that they are ``replay_share`` of all sequences."""
    return round(n_sft * replay_share / (1.0 - replay_share))


def build_sft_examples(config: SFTConfig, tokenizer, records: list[dict] | None = None,
                       replay_documents: list | None = None) -> tuple[list[dict], int, int]:
    """Tokenized SFT examples followed by the plain-LM replay chunks; returns (examples, n_sft, n_replay)."""
    if records is None:
        records = [r for path in config.sft_files for r in read_sft_jsonl(path)]
    examples = tokenize_sft_records(records, tokenizer, config.max_len)
    n_replay = replay_count(len(examples), config.replay_share)
    if n_replay:
        sources = replay_documents if replay_documents is not None else config.replay_corpora
        # chunks as long as a typical SFT example, so batches mixing both pad little
        length = config.replay_len or max(1, round(sum(len(e["input_ids"]) for e in examples) / len(examples)))
        streams = [pack_documents(src, tokenizer, min(length, config.max_len), repeat=True) for src in sources]
        for j in iter_blend([1.0] * len(streams), n_replay):
            ids = next(streams[j])
            examples.append({"input_ids": ids, "labels": list(ids)})
    return examples, len(records), n_replay


def sft_collator(model):
    """`collate_scored_suffix` (logits on the responses only) for models whose forward takes ``logits_to_keep``
    (Llama, SmolLM2, most causal LMs of transformers); plain right padding otherwise."""
    import inspect

    return collate_scored_suffix if "logits_to_keep" in inspect.signature(model.forward).parameters else collate_padded


def run_sft(config: SFTConfig, records: list[dict] | None = None, replay_documents: list | None = None) -> SFTResult:
    """Train one SFT model: resumes if ``<out>/trainer`` holds a checkpoint, returns at once if ``<out>/model``
    is finished."""
    out = Path(config.out_dir)
    trainer_dir, model_dir = out / "trainer", out / "model"
    if read_run_record(model_dir) is not None and not trainer_dir.exists():
        record = read_run_record(model_dir)
        return SFTResult(model_dir, True, record["n_sft"], record["n_replay"], float("nan"))  # finished earlier
    configure_threads(config.cpu_threads)
    model, tokenizer = load_model_and_tokenizer(config.base_model)
    examples, n_sft, n_replay = build_sft_examples(config, tokenizer, records, replay_documents)
    batch_sequences = config.batch.per_device_batch_size * config.batch.grad_accum_steps * world_size()
    steps = math.ceil(config.epochs * len(examples) / batch_sequences)
    est_tokens = round(config.epochs * sum(len(e["input_ids"]) for e in examples))
    progress = TokenProgress(est_tokens, None, desc=f"{config.stage} ({config.lang})",
                             stop_after_steps=config.stop_after_steps)
    trainer = StageTrainer(
        model=model,
        args=training_arguments(config, steps, trainer_dir, count_tokens=True),
        train_dataset=examples,
        data_collator=partial(sft_collator(model), pad_token_id=tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[progress],
        embedding_lr_multiplier=config.optim.embedding_lr_multiplier,
    )
    finished = run_trainer(trainer, trainer_dir)
    if not finished:
        return SFTResult(None, False, n_sft, n_replay, progress.tokens_per_s)
    parent = read_run_record(config.base_model) or {}
    save_hf_checkpoint(trainer, model_dir, dict(
        config=config.model_dump(mode="json"), seed=config.seed, stage=config.stage, lang=config.lang,
        tokens_seen=int(trainer.state.num_input_tokens_seen), steps=trainer.state.global_step,
        n_sft=n_sft, n_replay=n_replay, base_model=config.base_model,
        base_ct_tokens=parent.get("ct_tokens"), base_stage=parent.get("stage"),
    ))
    if trainer.is_world_process_zero():
        shutil.rmtree(trainer_dir, ignore_errors=True)
    return SFTResult(model_dir, True, n_sft, n_replay, progress.tokens_per_s)
