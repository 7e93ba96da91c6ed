"""How fast is this machine right now, in `make study`'s own unit of work (NOT a test)?

    .venv/bin/python benchmarks/demo_sft_pass.py RUN_ROOT [--batch-size 8] [--passes 2]

One pass of the demo's SFT loop (the world's BASE, its English SFT-flan items tokenized as the SFT stage does,
length-sorted batches with logits on the responses only, fused AdamW, one torch thread), timed after a warm-up,
beside a baseline measured in the same run: a bare fp32 matmul loop of the same thread count (GFLOP/s). This
VM's speed drifts (its SFT pass took 4.0-4.7 s and 2.7-2.8 s an hour apart with nothing else running, and 7.34 s
on the AMD EPYC / AVX2 CPU of experiments/DESIGNS.md, session 6): run it before and after a timed `make study` to
say which phase the timing belongs to.
RUN_ROOT: the run folder of a `lrmerge study --profile demo` (runs/ after `make study`).
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path


def matmul_gflops(seconds: float = 1.0, size: int = 256) -> float:
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        calls += 1
    return 2 * size ** 3 * calls / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_root")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lrmerge.train.data import collate_scored_suffix, read_sft_jsonl, tokenize_sft_records

    torch.set_num_threads(1)
    bases = sorted(glob.glob(str(Path(args.run_root) / "world" / "*" / "base")))
    sft_files = sorted(glob.glob(str(Path(args.run_root) / "*" / "data" / "sft_flan.jsonl")))
    if not bases or not sft_files:
        raise SystemExit(f"{args.run_root}: no demo world BASE or sft_flan.jsonl (run `make study` first)")
    model = AutoModelForCausalLM.from_pretrained(bases[0])
    tokenizer = AutoTokenizer.from_pretrained(bases[0])
    examples = sorted(tokenize_sft_records(read_sft_jsonl(sft_files[0]), tokenizer, 320),
                      key=lambda e: len(e["input_ids"]))
    batches = [collate_scored_suffix(examples[i:i + args.batch_size], pad_token_id=tokenizer.pad_token_id)
               for i in range(0, len(examples), args.batch_size)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step(batch) -> None:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for batch in batches[:5]:  # warm-up
        step(batch)
    baseline = matmul_gflops()
    times = []
    for _ in range(args.passes):
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"SFT pass (bs {args.batch_size}, {len(batches)} steps, 1 thread): {best:.2f} s (passes: "
          f"{', '.join(f'{t:.2f}' for t in times)}); matmul 256^3 baseline {baseline:.1f} GFLOP/s; "
          f"pass x baseline = {best * baseline:.0f}")


if __name__ == "__main__":
    main()
