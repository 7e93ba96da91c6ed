"""Speed of lrmerge's TIES vs mergekit 0.1.5 and vs the I/O floor on a synthetic Llama-shaped checkpoint (NOT a test).

    .venv/bin/python benchmarks/merge_speed.py [--hidden 2048 --layers 4 --intermediate 5504 --vocab 32000]
                                               [--device cpu|cuda] [--threads 1,2] [--rounds 2] [--keep DIR]

Builds base, sft, ct (fp32 safetensors) in a temp folder (or reuses them under --keep DIR), merges with TIES
(density 0.2 sft / 1.0 ct, weights 1, normalize) as an A/B in one run: each round runs mergekit and lrmerge with
each worker-thread count of --threads (``engine.CPU_WORKERS``), each in its own subprocess, interleaved (wall time,
CPU time, peak RSS = the worker's VmHWM, load average). Ratios are only meaningful within one run (the machine is
shared). Then compares outputs tensor by tensor: lrmerge thread counts must agree bit for bit; vs mergekit,
tie-breaks may differ (max abs diff, fraction of differing entries, how many sit at an SFT trim-threshold tie).
In the same rounds: the I/O floor ("floor": read every input file, base + sft + ct, and write one output of one
model's size, from the page cache) and lrmerge's linear merge (WAVG 0.3 / 0.7 of sft and ct, "linear-<threads>");
printed as TIES / floor and linear / floor.
Targets: lrmerge >= 15x faster than mergekit on CPU, TIES <= 2x the floor, linear <= 1.5x, peak RSS < 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_llama import llama_shapes  # noqa: E402


def build(root: Path, args: argparse.Namespace) -> dict[str, Path]:
    import torch

    from lrmerge.merge.checkpoint import ShardedWriter

    shapes = llama_shapes(args.hidden, args.layers, args.intermediate, args.vocab)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": args.hidden,
              "intermediate_size": args.intermediate, "num_hidden_layers": args.layers,
              "num_attention_heads": max(1, args.hidden // 64), "num_key_value_heads": max(1, args.hidden // 64),
              "vocab_size": args.vocab, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5,
              "tie_word_embeddings": False, "torch_dtype": "float32"}
    folders = {name: root / name for name in ("base", "sft", "ct")}
    layout = [(tensor_name, shape, torch.float32) for tensor_name, shape in shapes.items()]
    writers = {}
    for name, folder in folders.items():
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(config))
        writers[name] = ShardedWriter(folder, max_shard_size=1024**3, layout=layout)  # streams: one tensor in RAM
    g = torch.Generator().manual_seed(0)
    for tensor_name, shape in shapes.items():
        base = torch.randn(shape, generator=g) * 0.02
        writers["base"].add(tensor_name, base)
        writers["sft"].add(tensor_name, base + torch.randn(shape, generator=g) * 1e-3)
        writers["ct"].add(tensor_name, base + torch.randn(shape, generator=g) * 2e-3)
    for writer in writers.values():
        writer.close()
    n_params = sum(torch.Size(s).numel() for s in shapes.values())
    print(f"built 3 models of {n_params / 1e6:.1f}M params (fp32) in {root}")
    return folders


def peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (reset at exec; ru_maxrss would include the parent's RSS at fork)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def io_floor(config: dict, out: str) -> None:
    """Read every input file of ``config`` (base and models) and write one file of one model's size."""
    folders = [Path(config["base_model"])] + [Path(m["model"]) for m in config["models"]]
    buffer = bytearray(64 * 1024**2)
    view = memoryview(buffer)
    for folder in folders:
        for file in sorted(folder.glob("*.safetensors")):
            with open(file, "rb", buffering=0) as handle:
                while handle.readinto(buffer):
                    pass
    size = sum(f.stat().st_size for f in folders[0].glob("*.safetensors"))
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / "floor.bin", "wb") as handle:
        while size > 0:
            handle.write(view[:min(size, len(buffer))])
            size -= len(buffer)


def worker(tool: str, config_path: str, out: str, device: str) -> None:
    """tool: "mergekit", "floor", "lrmerge-<threads>" (TIES) or "linear-<threads>"; prints one JSON line."""
    import yaml

    import torch

    config = yaml.safe_load(Path(config_path).read_text())
    if tool.startswith(("lrmerge", "linear")):
        from lrmerge.merge import engine, merge

        engine.CPU_WORKERS = int(tool.split("-")[1])
        if tool.startswith("linear"):
            config = {"merge_method": "linear", "dtype": "float32",
                      "models": [{"model": m["model"], "parameters": {"weight": w}}
                                 for m, w in zip(config["models"], (0.3, 0.7))]}
    elif tool == "floor":
        pass
    else:
        from mergekit.config import MergeConfiguration
        from mergekit.merge import run_merge
        from mergekit.options import MergeOptions
    if device == "cuda":
        torch.cuda.init()
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    if tool.startswith(("lrmerge", "linear")):
        merge(config, out, device=device, progress=False, overwrite=True)
    elif tool == "floor":
        io_floor(config, out)
    else:
        run_merge(MergeConfiguration.model_validate(config), out,
                  MergeOptions(copy_tokenizer=False, quiet=True, write_model_card=False, device=device))
    if device == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({"tool": tool, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb(),
                      "load_1min": os.getloadavg()[0]}))


def run_tool(tool: str, config_path: Path, out: Path, device: str) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", tool, str(config_path), str(out), device],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start  # includes imports
    return result


def identical(a: Path, b: Path) -> bool:
    from lrmerge.merge.checkpoint import CheckpointReader

    ra, rb = CheckpointReader(a), CheckpointReader(b)
    return ra.names() == rb.names() and all(torch_equal(ra.get(n), rb.get(n)) for n in ra.names())


def torch_equal(x, y) -> bool:
    import torch

    return x.dtype == y.dtype and torch.equal(x, y)


def compare(a: Path, b: Path, folders: dict[str, Path], sft_density: float) -> tuple[float, float, int, int]:
    """Max abs diff, fraction of differing entries, number differing, and how many of those sit where the SFT task
    vector's |tau| equals its trim threshold (a tie the two tools may break differently)."""
    from lrmerge.merge import primitives as P
    from lrmerge.merge.checkpoint import CheckpointReader

    ra, rb = CheckpointReader(a), CheckpointReader(b)
    base, sft = CheckpointReader(folders["base"]), CheckpointReader(folders["sft"])
    max_diff, differing, at_ties, total = 0.0, 0, 0, 0
    for name in ra.names():
        x, y = ra.get(name), rb.get(name)
        diff = (x - y).abs()
        max_diff = max(max_diff, float(diff.max()))
        where = (diff > 0).reshape(-1).nonzero().squeeze(1)
        differing += where.numel()
        total += diff.numel()
        if where.numel():
            tau = (sft.get(name) - base.get(name)).reshape(-1)
            threshold = P.magnitude_threshold(lambda: iter([tau]), P.kept_count(tau.numel(), sft_density))
            at_ties += int((P.magnitude_keys(tau[where]) == threshold.key).sum())
    return max_diff, differing / total, differing, at_ties


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--intermediate", type=int, default=5504)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--skip-mergekit", action="store_true", help="time lrmerge only")
    parser.add_argument("--threads", default="1,2", help="lrmerge worker-thread counts to compare (comma-separated)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of every tool")
    parser.add_argument("--keep", type=Path, help="build the models here and keep them")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker[:3], device=args.worker[3])
        return
    import yaml

    threads = [int(t) for t in args.threads.split(",")]
    tools = (([] if args.skip_mergekit else ["mergekit"]) + ["floor"] + [f"lrmerge-{t}" for t in threads]
             + [f"linear-{t}" for t in threads])
    print(f"load average at start: {os.getloadavg()} (1/5/15 min), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="merge_speed-") as tmp:
        root = args.keep or Path(tmp)
        folders = {name: root / "models" / name for name in ("base", "sft", "ct")}
        if not all((f / "config.json").exists() for f in folders.values()):
            folders = build(root / "models", args)
        else:
            print(f"reusing the models in {root / 'models'} (delete them after changing the shape options)")
        config = {"merge_method": "ties", "base_model": str(folders["base"]), "dtype": "float32",
                  "parameters": {"normalize": True},
                  "models": [{"model": str(folders["sft"]), "parameters": {"weight": 1.0, "density": 0.2}},
                             {"model": str(folders["ct"]), "parameters": {"weight": 1.0, "density": 1.0}}]}
        config_path = root / "ties.yaml"
        config_path.write_text(yaml.safe_dump(config))
        results: dict[str, list[dict]] = {tool: [] for tool in tools}
        for r in range(args.rounds):
            order = tools if r % 2 == 0 else tools[::-1]  # interleaved, alternating order
            for tool in order:
                res = run_tool(tool, config_path, root / f"out-{tool}", args.device)
                results[tool].append(res)
                print(f"round {r + 1} {tool:10s} merge wall {res['wall_s']:7.2f} s  cpu {res['cpu_s']:7.2f} s  "
                      f"(process {res['process_s']:.1f} s)  peak RSS {res['peak_rss_mb']:6.0f} MB  "
                      f"load {res['load_1min']:.2f}", flush=True)
        print("medians:")
        median = {tool: statistics.median(x["wall_s"] for x in runs) for tool, runs in results.items()}
        for tool, runs in results.items():
            print(f"  {tool:10s} wall {median[tool]:7.2f} s  cpu/wall "
                  f"{statistics.median(x['cpu_s'] / x['wall_s'] for x in runs):.2f}  "
                  f"peak RSS {max(x['peak_rss_mb'] for x in runs):6.0f} MB")
        for tool in tools:
            if tool in ("floor", "mergekit"):
                continue
            ratios = [x["wall_s"] / f["wall_s"] for f, x in zip(results["floor"], results[tool])]
            target = 1.5 if tool.startswith("linear") else 2.0
            print(f"{tool} / floor: {median[tool] / median['floor']:.2f}x of medians (per round "
                  f"{', '.join(f'{q:.2f}' for q in ratios)}; target <= {target}x)")
            if tool.startswith("linear"):
                continue
            per_round = ""
            if "mergekit" in results:
                ratios = [m["wall_s"] / x["wall_s"] for m, x in zip(results["mergekit"], results[tool])]
                per_round = ", ".join(f"{q:.1f}" for q in ratios)
                print(f"speed ratio mergekit/{tool}: {median['mergekit'] / median[tool]:.1f}x of medians "
                      f"(per round {per_round}; target >= 15x)")
        lr = [t for t in tools if t.startswith("lrmerge")]
        for tool in lr[:-1]:
            print(f"speed ratio {tool}/{lr[-1]}: {median[tool] / median[lr[-1]]:.2f}x")
        for tool in lr[1:]:
            same = identical(root / f"out-{lr[0]}", root / f"out-{tool}")
            print(f"outputs {lr[0]} vs {tool}: {'bit-identical' if same else 'DIFFER'}")
        if "mergekit" in results and lr:
            max_diff, frac, n_diff, n_ties = compare(root / f"out-{lr[-1]}", root / "out-mergekit", folders, 0.2)
            print(f"outputs {lr[-1]} vs mergekit: max abs diff {max_diff:.3g}, fraction of differing entries "
                  f"{frac:.3g} ({n_diff} entries, {n_ties} of them at an SFT trim-threshold tie)")
        for tool in lr + [t for t in tools if t.startswith("linear")]:
            print(f"{tool} peak RSS {max(x['peak_rss_mb'] for x in results[tool]):.0f} MB (target < 1536 MB)")
        print(f"load average at end: {os.getloadavg()} (1/5/15 min)")

if __name__ == "__main__":
    main()
