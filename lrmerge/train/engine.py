"""One engine for CT and SFT: a Hugging Face ``Trainer`` run single-process (CPU or one GPU) or under
``accelerate launch`` (multi-GPU FSDP or DeepSpeed ZeRO-3), resumable, saving HF checkpoints atomically.

Multi-GPU (7B, real runs), from the repository root::

    accelerate launch --config_file configs/accelerate/fsdp_7b.yaml -m lrmerge.cli train ct --config configs/real/tam.yaml
    accelerate launch --config_file configs/accelerate/deepspeed_zero3_7b.yaml -m lrmerge.cli train sft --config ...

Folders of a stage ``<out>``: ``trainer/checkpoint-<step>`` (optimizer, scheduler, RNG: for resuming; removed when
the stage finishes), and the outputs: CT ``tokens-<12-digit count>/``, SFT ``model/``; each output is a full HF
checkpoint (safetensors + tokenizer + ``lrmerge_run.json``), written to ``.<name>.partial`` and renamed into place.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from lrmerge.runs import write_run_record
from lrmerge.train.config import StageConfig

EMBEDDING_PARAM_KEYS = ("embed_tokens", "lm_head", "wte", "word_embeddings")


def use_bf16(precision: str) -> bool:
    """bf16 when asked, or on 'auto' where the device supports it (never on CPU by default)."""
    if precision == "bf16":
        return True
    if precision == "fp32":
        return False
    if precision == "auto":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    raise ValueError(f"precision: {precision!r}; allowed: 'auto', 'bf16', 'fp32'")


def configure_threads(cpu_threads: int | None) -> None:
    """CPU runs: fewer torch threads than cores avoids oversubscription when other processes share the CPU."""
    if cpu_threads is not None and not torch.cuda.is_available():
        torch.set_num_threads(cpu_threads)


def load_model_and_tokenizer(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{path}: tokenizer has no eos token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, tokenizer


class StageTrainer(Trainer):
    """Trainer whose AdamW gives embed_tokens and lm_head their own LR (peak LR x multiplier)."""

    def __init__(self, *args, embedding_lr_multiplier: float = 1.0, **kwargs):
        self.embedding_lr_multiplier = embedding_lr_multiplier
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, param in model.named_parameters():
            if param.requires_grad:
                is_embedding = any(key in name for key in EMBEDDING_PARAM_KEYS)
                groups.setdefault((is_embedding, name in decay), []).append(param)
        lr = self.args.learning_rate
        self.optimizer = torch.optim.AdamW(
            [{"params": params, "lr": lr * (self.embedding_lr_multiplier if emb else 1.0),
              "weight_decay": self.args.weight_decay if dec else 0.0}
             for (emb, dec), params in sorted(groups.items())],
            lr=lr, betas=(self.args.adam_beta1, self.args.adam_beta2), eps=self.args.adam_epsilon,
            fused=all(p.device.type == "cpu" for p in model.parameters()) or None,  # CPU: one kernel, ~4x faster
        )
        return self.optimizer


@dataclass
class TokenCheckpoints(TrainerCallback):
    """Save a full HF checkpoint at the first step whose token count reaches each milestone (so within one batch)."""

    milestones: list[int]
    tokens_per_step: int
    save: Callable[[int, int], None]  # (milestone, tokens_seen) -> None; called on every rank
    saved: list[int] = field(default_factory=list)

    def on_step_end(self, args, state, control, **kwargs):
        tokens = state.global_step * self.tokens_per_step
        for milestone in self.milestones:
            if tokens - self.tokens_per_step < milestone <= tokens:
                self.save(milestone, tokens)
                self.saved.append(milestone)


@dataclass
class TokenProgress(TrainerCallback):
    """tqdm bar in tokens (its rate is tokens/s); also stops early after ``stop_after_steps`` (resumable).

    Tokens per step are fixed for packed CT batches; SFT batches count their non-padding tokens
    (``state.num_input_tokens_seen``) and ``total_tokens`` is then an estimate.
    """

    total_tokens: int
    tokens_per_step: int | None = None
    desc: str = "train"
    stop_after_steps: int | None = None
    tokens_this_session: int = 0
    seconds: float = 0.0

    def _tokens(self, state) -> int:
        if self.tokens_per_step is not None:
            return state.global_step * self.tokens_per_step
        return int(state.num_input_tokens_seen)

    def on_train_begin(self, args, state, control, **kwargs):
        self._start, self._first, self._bar = time.perf_counter(), self._tokens(state), None
        if state.is_world_process_zero:
            self._bar = tqdm(total=self.total_tokens, initial=self._first, unit="tok", unit_scale=True,
                             desc=self.desc, dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        tokens = self._tokens(state)
        if self._bar is not None:
            self._bar.update(tokens - self._first - self.tokens_this_session)
        self.tokens_this_session = tokens - self._first
        if self.stop_after_steps is not None and state.global_step >= self.stop_after_steps:
            control.should_training_stop = True
            control.should_save = True

    def on_train_end(self, args, state, control, **kwargs):
        self.seconds = time.perf_counter() - self._start
        if self._bar is not None:
            self._bar.close()

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_this_session / self.seconds if self.seconds else float("nan")


def training_arguments(config: StageConfig, max_steps: int, trainer_dir: Path, count_tokens: bool = False
                       ) -> TrainingArguments:
    optim = config.optim
    return TrainingArguments(
        output_dir=str(trainer_dir),
        max_steps=max_steps,
        per_device_train_batch_size=config.batch.per_device_batch_size,
        gradient_accumulation_steps=config.batch.grad_accum_steps,
        learning_rate=optim.lr,
        adam_beta1=optim.betas[0],
        adam_beta2=optim.betas[1],
        weight_decay=optim.weight_decay,
        max_grad_norm=optim.max_grad_norm,
        lr_scheduler_type=optim.schedule,
        warmup_steps=math.ceil(optim.warmup_ratio * max_steps),
        bf16=use_bf16(config.precision),
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=max(1, min(50, max_steps // 10)),
        report_to="none",
        disable_tqdm=True,
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),  # several CPU processes (accelerate launch) then join a gloo group
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding" if count_tokens else "no",
        train_sampling_strategy="group_by_length" if getattr(config, "group_by_length", False) else "random",
    )


def world_size() -> int:
    """Processes of this run: set by ``accelerate launch``/torchrun before the Trainer exists; 1 otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def save_hf_checkpoint(trainer: Trainer, final: Path, record: dict) -> Path:
    """All ranks gather and save the weights into ``.<name>.partial``; rank 0 adds the run record and renames it."""
    tmp = final.with_name(f".{final.name}.partial")
    if trainer.is_world_process_zero() and tmp.exists():
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))  # weights + config + tokenizer (processing_class); FSDP/DeepSpeed gather here
    if trainer.is_world_process_zero():
        write_run_record(tmp, **record)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    trainer.accelerator.wait_for_everyone()
    return final


def run_trainer(trainer: Trainer, trainer_dir: Path) -> bool:
    """Train, resuming from the last trainer checkpoint if any; True when the run reached max_steps."""
    last = get_last_checkpoint(str(trainer_dir)) if trainer_dir.is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    return trainer.state.global_step >= trainer.state.max_steps
