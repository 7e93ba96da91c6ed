"""Dry-run plans: what a CT-X run will train (tokens incl. replay, steps, checkpoints, GPU hours), with no download."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from lrmerge.train.config import CTConfig


@dataclass(frozen=True)
class Plan:
    lang: str
    base_model: str
    x_corpus: str
    replay_corpus: str | None
    x_tokens: int  # tokens of language X trained on
    replay_tokens: int  # English replay tokens (replay_share of the total)
    total_tokens: int  # tokens actually trained: steps x tokens_per_step (>= x_tokens + replay_tokens)
    tokens_per_step: int  # seq_len x per-device batch x grad accumulation x devices
    steps: int
    warmup_steps: int
    checkpoint_tokens: tuple[int, ...]  # requested (folder names tokens-<count>)
    checkpoint_steps: tuple[int, ...]  # first step whose tokens reach each request
    n_devices: int
    throughput_tokens_per_s: float  # per device, an assumption
    gpu_hours: float  # devices x wall hours

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        def b(n: int) -> str:
            return f"{n:,} ({n / 1e9:.3g}B)"

        share = self.replay_tokens / max(1, self.x_tokens + self.replay_tokens)
        at_tokens = ", ".join(f"{t / 1e9:.3g}B" for t in self.checkpoint_tokens)
        lines = [
            f"CT-{self.lang}: {self.base_model}",
            f"  X corpus       {self.x_corpus}",
            f"  replay corpus  {self.replay_corpus}",
            f"  X tokens       {b(self.x_tokens)}",
            f"  replay tokens  {b(self.replay_tokens)} ({share:.1%})",
            f"  total trained  {b(self.total_tokens)}",
            f"  batch          {self.tokens_per_step:,} tokens/step on {self.n_devices} device(s)",
            f"  steps          {self.steps:,} (warmup {self.warmup_steps:,})",
            f"  checkpoints    {len(self.checkpoint_tokens)} at tokens {at_tokens}",
            f"                 steps {', '.join(map(str, self.checkpoint_steps))}",
            f"  estimate       {self.gpu_hours:,.0f} GPU hours at {self.throughput_tokens_per_s:,.0f} tokens/s per device"
            f" ({self.gpu_hours / self.n_devices:,.1f} h wall on {self.n_devices})",
        ]
        return "\n".join(lines)


def plan_ct(config: CTConfig, world_size: int | None = None) -> Plan:
    """Steps and checkpoints of a CT-X run; ``world_size`` overrides the config's ``batch.n_devices``."""
    devices = world_size or config.batch.n_devices
    per_step = config.batch.tokens_per_step(devices)
    total = config.total_tokens
    steps = math.ceil(total / per_step)
    requested = config.resolved_checkpoint_tokens()
    return Plan(
        lang=config.lang,
        base_model=config.base_model,
        x_corpus=config.x_corpus.describe(),
        replay_corpus=config.replay_corpus.describe() if config.replay_corpus and config.replay_share > 0 else None,
        x_tokens=config.x_tokens,
        replay_tokens=total - config.x_tokens,
        total_tokens=steps * per_step,
        tokens_per_step=per_step,
        steps=steps,
        warmup_steps=math.ceil(config.optim.warmup_ratio * steps),
        checkpoint_tokens=tuple(requested),
        checkpoint_steps=tuple(math.ceil(t / per_step) for t in requested),
        n_devices=devices,
        throughput_tokens_per_s=config.throughput_tokens_per_s,
        gpu_hours=steps * per_step / config.throughput_tokens_per_s / 3600.0,
    )
