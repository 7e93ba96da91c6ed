"""CT-X (section 3.2): continual pre-training of BASE on language X with English replay at a share of the tokens.

Packed fixed-length sequences (documents joined by eos), blended X/replay sequence by sequence (deterministic, within
one sequence of the requested share at every point), AdamW (0.9, 0.95) with warmup + cosine or constant schedule.
Checkpoints ``<out>/tokens-<12-digit count>/`` at the first step whose total tokens seen (X + replay) reach each
requested count; each records ``ct_tokens`` (the requested count), ``tokens_seen``, ``x_tokens_seen``,
``replay_tokens_seen``, the config, seed and library versions.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from lrmerge.train.config import CTConfig
from lrmerge.train.data import BlendedLMDataset, iter_blend, iter_documents
from lrmerge.train.engine import (
    StageTrainer, TokenCheckpoints, TokenProgress, configure_threads, load_model_and_tokenizer, run_trainer,
    save_hf_checkpoint, training_arguments, world_size,
)
from lrmerge.train.plan import plan_ct


def checkpoint_dir(out_dir: str | Path, ct_tokens: int) -> Path:
    return Path(out_dir) / f"tokens-{ct_tokens:012d}"


def list_ct_checkpoints(out_dir: str | Path) -> list[Path]:
    """Finished CT checkpoints of a run, in token order."""
    return sorted(p for p in Path(out_dir).glob("tokens-" + "[0-9]" * 12) if p.is_dir())


@dataclass
class CTResult:
    checkpoints: list[Path]  # finished tokens-* folders
    finished: bool  # False when stopped early (stop_after_steps); rerun to resume
    tokens_per_s: float  # measured in this session


def _collate_lm(examples: list[dict]) -> dict:
    import torch

    ids = torch.stack([e["input_ids"] for e in examples])  # (batch, seq_len)
    return {"input_ids": ids, "labels": torch.stack([e["labels"] for e in examples])}


def _replay_sequences(shares: list[float], n: int) -> int:
    return sum(1 for j in iter_blend(shares, n) if j == 1)


def _shuffled(source, seed: str) -> list[str]:
    """The documents of a corpus in a seed-dependent order (`CTConfig.shuffle_documents`)."""
    import random

    docs = list(iter_documents(source))
    random.Random(seed).shuffle(docs)
    return docs


def run_ct(config: CTConfig, x_documents=None, replay_documents=None) -> CTResult:
    """Train CT-X: resumes if ``<out>/trainer`` holds a checkpoint, returns at once if every requested checkpoint
    exists. Documents default to the config's corpora; pass lists of strings to train on in-memory text instead."""
    plan = plan_ct(config, world_size())
    out = Path(config.out_dir)
    trainer_dir = out / "trainer"
    done = [checkpoint_dir(out, t) for t in plan.checkpoint_tokens]
    if all(p.is_dir() for p in done) and not trainer_dir.exists():
        return CTResult(done, True, float("nan"))  # finished earlier: nothing to train
    configure_threads(config.cpu_threads)
    model, tokenizer = load_model_and_tokenizer(config.base_model)
    seqs_per_step = plan.tokens_per_step // config.batch.seq_len
    shares = [1.0 - config.replay_share, config.replay_share]
    sources = [x_documents if x_documents is not None else config.x_corpus,
               replay_documents if replay_documents is not None else config.replay_corpus]
    if config.shuffle_documents:
        sources = [_shuffled(src, f"ct-{config.seed}-{i}") if src is not None else None for i, src in enumerate(sources)]
    dataset = BlendedLMDataset(sources, shares, tokenizer, config.batch.seq_len,
                               n_sequences=plan.steps * seqs_per_step)
    config_dump = config.model_dump(mode="json")
    progress = TokenProgress(plan.total_tokens, plan.tokens_per_step, desc=f"CT-{config.lang}",
                             stop_after_steps=config.stop_after_steps)

    def save(ct_tokens: int, tokens_seen: int) -> None:
        replay_seen = _replay_sequences(shares, tokens_seen // config.batch.seq_len) * config.batch.seq_len
        save_hf_checkpoint(trainer, checkpoint_dir(out, ct_tokens), dict(
            config=config_dump, seed=config.seed, stage="ct", lang=config.lang, ct_tokens=ct_tokens,
            tokens_seen=tokens_seen, x_tokens_seen=tokens_seen - replay_seen, replay_tokens_seen=replay_seen,
            step=trainer.state.global_step, plan=plan.to_dict(),
        ))

    checkpoints = TokenCheckpoints(list(plan.checkpoint_tokens), plan.tokens_per_step, save)
    trainer = StageTrainer(
        model=model,
        args=training_arguments(config, plan.steps, trainer_dir),
        train_dataset=dataset,
        data_collator=_collate_lm,
        processing_class=tokenizer,
        callbacks=[checkpoints, progress],
        embedding_lr_multiplier=config.optim.embedding_lr_multiplier,
    )
    finished = run_trainer(trainer, trainer_dir)
    if finished and trainer.is_world_process_zero():
        shutil.rmtree(trainer_dir, ignore_errors=True)  # optimizer states are only for resuming
    return CTResult(list_ct_checkpoints(out), finished, progress.tokens_per_s)
