"""Cost of the sign-conflict ledger for N CT checkpoints vs N plain TIES merges with lrmerge's engine (NOT a test).

    .venv/bin/python benchmarks/conflict_speed.py [--hidden 1024 --layers 4 --intermediate 2816 --vocab 16000]
                                                  [--checkpoints 3] [--device cpu|cuda] [--keep DIR]
    .venv/bin/python benchmarks/conflict_speed.py --paper-size   # hidden 2048, 4 layers, vocab 32000: ~336M params

Builds base, sft and N CT checkpoints (fp32 safetensors, Llama tensor names) in a temp folder, then in separate
subprocesses (wall time and peak RSS from getrusage of each):
  ledger   lrmerge.conflicts.series.compute_series (slack 0): every tensor streamed once in blocks, SFT's task
           vector and trim threshold computed once for all N, counts chunk by chunk (conflicts/chunked.py)
  engine   N x lrmerge.merge.engine.merge (TIES 0.2 / 1.0, weights 1, normalize, float32) of the same inputs,
           each writing a model
  merge    N x ties_merge_tensor per tensor without writing (the engine's compute alone, a stricter baseline)
Target: ledger <= 1.2 x engine. Each phase also prints the 1-minute load average before and after it: the machine
is shared, so compare ratios from one run and rerun when the load moved. The default size is smaller than the
paper's 7B (and than --paper-size) so it fits the shared 2-core machine; say which size you ran when you quote
numbers. ``--keep DIR`` builds the checkpoints once (about a minute and 6.7 GB at --paper-size) and reuses them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_llama import llama_shapes  # noqa: E402


def build(folder: Path, shapes: dict, n: int) -> dict:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    names = ["base", "sft"] + [f"ct/tokens-{(i + 1) * 10**9:012d}" for i in range(n)]
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "config.json").write_text(json.dumps({"model_type": "llama"}))
    tensors = {name: {} for name in names}
    for key, shape in shapes.items():  # one tensor at a time across models keeps memory at n+2 tensors
        base = torch.randn(shape, generator=gen) * 0.02
        tensors["base"][key] = base
        tensors["sft"][key] = base + 0.002 * torch.randn(shape, generator=gen)
        walk = torch.zeros(shape)
        for i in range(n):
            walk += 0.001 * torch.randn(shape, generator=gen)
            tensors[names[2 + i]][key] = base + walk
    for name in names:
        save_file(tensors.pop(name), str(folder / name / "model.safetensors"))
    return {"base": str(folder / "base"), "sft": str(folder / "sft"), "ct": [str(folder / n) for n in names[2:]]}


def phase(kind: str, paths: dict, device: str, scratch: str) -> dict:
    """Run one measurement in this (fresh) process and return wall time and peak RSS."""
    import torch

    from lrmerge.conflicts.series import compute_series  # imports outside the timed region (pandas, pydantic)
    from lrmerge.merge.checkpoint import CheckpointReader, resolve_device
    from lrmerge.merge.engine import merge
    from lrmerge.merge.primitives import ties_merge_tensor

    started = time.perf_counter()
    if kind == "ledger":
        table = compute_series(paths["base"], paths["sft"], paths["ct"], density_sft=0.2, density_ct=1.0,
                               device=device, progress=False)
        extra = {"rows": len(table), "discarded_share_last": float(
            table[table.checkpoint == table.checkpoint.iloc[-1]].sft_discarded.sum()
            / table[table.checkpoint == table.checkpoint.iloc[-1]].sft_kept.sum())}
    elif kind == "engine":
        for i, ct in enumerate(paths["ct"]):
            config = {"merge_method": "ties", "base_model": paths["base"], "dtype": "float32",
                      "models": [{"model": paths["sft"], "parameters": {"weight": 1.0, "density": 0.2}},
                                 {"model": ct, "parameters": {"weight": 1.0, "density": 1.0}}],
                      "parameters": {"normalize": True}}
            merge(config, Path(scratch) / f"merged-{i}", device=device, overwrite=True, progress=False)
        extra = {}
    elif kind == "merge":
        dev = resolve_device(device)
        base, sft = CheckpointReader(paths["base"]), CheckpointReader(paths["sft"])
        for ct_path in paths["ct"]:
            ct = CheckpointReader(ct_path)
            for name in base.names():
                b = base.get(name, dev)
                merged, _ = ties_merge_tensor(b, [sft.get(name, dev), ct.get(name, dev)], [1.0, 1.0], [0.2, 1.0])
                merged.cpu()
        extra = {}
    else:
        raise ValueError(f"unknown phase {kind!r}; allowed: ['ledger', 'engine', 'merge']")
    if torch.cuda.is_available() and device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    load = os.getloadavg()[0]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    gpu_gb = torch.cuda.max_memory_allocated() / 1024**3 if torch.cuda.is_available() else 0.0
    return {"phase": kind, "seconds": seconds, "peak_rss_gb": peak_gb, "peak_gpu_gb": gpu_gb, "load_after": load,
            **extra}


def check_devices() -> None:
    """The ledger must not depend on the device: same table on cpu and cuda (deterministic trim and slack)."""
    import pandas as pd
    import torch

    from lrmerge.conflicts.series import compute_series

    if not torch.cuda.is_available():
        print("check-devices: no CUDA device, skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(Path(tmp), llama_shapes(256, 2, 688, 1000), 2)
        tables = [compute_series(paths["base"], paths["sft"], paths["ct"], slack=0.04, device=d, progress=False)
                  for d in ("cpu", "cuda")]
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=False, rtol=1e-6)
    counts = [c for c in tables[0].columns if c.endswith(("kept", "conflicts", "elect_sft", "elect_ct", "discarded",
                                                          "restored", "numel"))]
    assert (tables[0][counts] == tables[1][counts]).all().all()
    print(f"check-devices: cpu and cuda ledgers identical ({len(tables[0])} rows, exact integer counts)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=2816)
    parser.add_argument("--vocab", type=int, default=16000)
    parser.add_argument("--paper-size", action="store_true", help="hidden 2048, intermediate 5504, vocab 32000")
    parser.add_argument("--checkpoints", type=int, default=3, help="N CT checkpoints")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", default=None, help="build the checkpoints here (reused if present)")
    parser.add_argument("--phases", default="merge,engine,ledger",
                        help="comma-separated phases to run, in order (merge, engine, ledger)")
    parser.add_argument("--check-devices", action="store_true",
                        help="also check the ledger table on cuda equals the one on cpu (a small model)")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--paths", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = sorted(set(args.phases.split(",")) - {"merge", "engine", "ledger"})
    if unknown and not args.phase:
        parser.error(f"--phases: unknown {unknown}; allowed: ['merge', 'engine', 'ledger']")
    if args.phase == "build":  # child process
        spec = json.loads(args.paths)
        folder = Path(spec["folder"])
        paths = build(folder, {k: tuple(v) for k, v in spec["shapes"].items()}, spec["n"])
        (folder / "paths.json").write_text(json.dumps({"shapes": spec["shapes"], "paths": paths}))
        return 0
    if args.phase:  # child process
        print(json.dumps(phase(args.phase, json.loads(args.paths), args.device, args.scratch)))
        return 0
    if args.check_devices:
        check_devices()
    if args.paper_size:
        args.hidden, args.intermediate, args.vocab = 2048, 5504, 32000
    shapes = llama_shapes(args.hidden, args.layers, args.intermediate, args.vocab)
    params = sum(_numel(s) for s in shapes.values())
    print(f"synthetic Llama: {params / 1e6:.0f}M params per model, {args.checkpoints} CT checkpoints, "
          f"device {args.device}")
    with tempfile.TemporaryDirectory(prefix="conflict_speed.") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp) / "models"
        marker = folder / "paths.json"
        if marker.exists() and json.loads(marker.read_text())["shapes"] == {k: list(v) for k, v in shapes.items()} \
                and len(json.loads(marker.read_text())["paths"]["ct"]) == args.checkpoints:
            paths = json.loads(marker.read_text())["paths"]
        else:  # in a child: Linux keeps ru_maxrss across fork+exec, so a big parent would inflate every phase
            started = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--phase", "build", "--paths", json.dumps(
                {"folder": str(folder), "shapes": {k: list(v) for k, v in shapes.items()}, "n": args.checkpoints})],
                check=True)
            paths = json.loads(marker.read_text())["paths"]
            print(f"built checkpoints in {time.perf_counter() - started:.1f} s")
        results = {}
        for kind in args.phases.split(","):
            load_before = os.getloadavg()[0]
            command = [sys.executable, __file__, "--phase", kind, "--paths", json.dumps(paths),
                       "--device", args.device, "--scratch", tmp]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:  # e.g. a missing package on a bare GPU machine: report, keep the others
                print(f"{kind:7s} FAILED: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
                continue
            results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
            r = results[kind]
            print(f"{kind:7s} {r['seconds']:8.2f} s  peak RSS {r['peak_rss_gb']:.2f} GB  peak GPU {r['peak_gpu_gb']:.2f} GB"
                  f"  load {load_before:.2f} -> {r['load_after']:.2f}")
    if "ledger" not in results:
        return 1
    ledger = results["ledger"]["seconds"]
    if "engine" in results:
        print(f"ledger / engine (N merges written to disk): {ledger / results['engine']['seconds']:.2f}x (target <= 1.2x)")
    if "merge" in results:
        print(f"ledger / streamed merges (no writing):      {ledger / results['merge']['seconds']:.2f}x")
    print(f"discarded share at the last checkpoint: {100 * results['ledger']['discarded_share_last']:.2f}%")
    return 0


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


if __name__ == "__main__":
    sys.exit(main())
