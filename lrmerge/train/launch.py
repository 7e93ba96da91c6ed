"""Run a CT or SFT config in this process, or under ``accelerate launch`` with several processes (the existing
distributed engine: DDP, FSDP or DeepSpeed through an accelerate config file; gloo on CPU with ``--cpu``).

Notebooks call `train(config, launcher=...)`; with ``launcher="accelerate"`` the config is written to
``<out>/launch_config.yaml`` and ``accelerate launch [--config_file F | --multi_gpu] --num_processes N -m
lrmerge.cli train ct|sft --config ...`` runs it (on a CPU the processes form a gloo group); outputs are then read
back from the output folder, exactly as the single-process run writes them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

Launcher = Literal["inline", "accelerate"]
LAUNCHERS = ("inline", "accelerate")


def accelerate_command(kind: str, config_file: Path, num_processes: int, accelerate_config: str | None = None,
                       cpu: bool = False) -> list[str]:
    """The ``accelerate launch`` command line. Several processes go through accelerate's multi-process launcher
    (torchrun); on a machine without GPUs the Trainer then joins them in a gloo group (``use_cpu``, see
    `lrmerge.train.engine.training_arguments`). accelerate's own ``--cpu`` flag would start a single process."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    if accelerate_config:
        command += ["--config_file", str(accelerate_config)]
    elif num_processes > 1:
        command.append("--multi_gpu")
    elif cpu:
        command.append("--cpu")
    command += ["--main_process_port", "0", "-m", "lrmerge.cli", "train", kind, "--config", str(config_file)]
    return command


def train(config, launcher: Launcher = "inline", num_processes: int = 1, accelerate_config: str | None = None,
          cpu: bool | None = None):
    """Train a `CTConfig` (returns CTResult) or `SFTConfig` (returns SFTResult)."""
    import yaml

    from lrmerge.train.config import CTConfig, SFTConfig

    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher={launcher!r}; allowed: {', '.join(LAUNCHERS)}")
    kind = "ct" if isinstance(config, CTConfig) else "sft" if isinstance(config, SFTConfig) else None
    if kind is None:
        raise TypeError(f"train() needs a CTConfig or SFTConfig, got {type(config).__name__}")
    if launcher == "inline":
        if kind == "ct":
            from lrmerge.train.ct import run_ct

            return run_ct(config)
        from lrmerge.train.sft import run_sft

        return run_sft(config)
    import torch

    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / "launch_config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    cpu = (not torch.cuda.is_available()) if cpu is None else cpu
    command = accelerate_command(kind, config_file, num_processes, accelerate_config, cpu)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"accelerate launch ({num_processes} processes) failed for {kind} {out}:\n{tail}")
    return _result_from_outputs(config, kind, seconds)


def _result_from_outputs(config, kind: str, seconds: float):
    from lrmerge.runs import read_run_record

    if kind == "ct":
        from lrmerge.train.ct import CTResult, list_ct_checkpoints

        checkpoints = list_ct_checkpoints(config.out_dir)
        last = read_run_record(checkpoints[-1]) if checkpoints else {}
        return CTResult(checkpoints, bool(checkpoints), (last or {}).get("tokens_seen", 0) / seconds)
    from lrmerge.train.sft import SFTResult

    model_dir = Path(config.out_dir) / "model"
    record = read_run_record(model_dir)
    if record is None:
        raise RuntimeError(f"accelerate launch finished but {model_dir} has no run record")
    return SFTResult(model_dir, True, record["n_sft"], record["n_replay"], record.get("tokens_seen", 0) / seconds)
