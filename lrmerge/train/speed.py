"""CPU speed of CT and SFT on a small Llama, against a bare PyTorch loop measured in the same run.

    python -m lrmerge.train.speed --hidden 256 --layers 4 --seq-len 128 [--threads 1]

A ``benchmarks/`` script can call ``measure(...)`` and print the ratios. Generated files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def bare_loop_tokens_per_s(model_dir: Path, seq_len: int, batch: int, steps: int = 5) -> float:
    """Forward + backward + AdamW on random ids: the baseline the Trainer-based stages are compared with."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq_len))  # (batch, seq_len)
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()  # step 0 warms up
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return batch * seq_len * steps / (time.perf_counter() - start)


def measure(hidden: int = 256, layers: int = 4, seq_len: int = 128, batch: int = 16, steps: int = 24,
            n_checkpoints: int = 6, threads: int | None = None) -> dict:
    from lrmerge.train.config import CTConfig, SFTConfig
    from lrmerge.train.ct import run_ct
    from lrmerge.train.sft import run_sft
    from lrmerge.train.tiny import build_tiny_llama, build_tiny_tokenizer, tiny_corpora, tiny_sft_records

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="lrmerge-speed-") as tmp:
        root = Path(tmp)
        english, x = tiny_corpora(2000, seed=1)
        records = tiny_sft_records(800)
        (root / "en.txt").write_text("\n".join(english) + "\n", encoding="utf-8")
        (root / "x.txt").write_text("\n".join(x) + "\n", encoding="utf-8")
        (root / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        tokenizer = build_tiny_tokenizer(english + x + [r["prompt"] + r["response"] for r in records], 2048)
        base = build_tiny_llama(root / "base", tokenizer, hidden=hidden, layers=layers)
        common = dict(lang="tam", base_model=str(base), optim={"lr": 1e-3}, save_steps=10**6)
        ct = run_ct(CTConfig.model_validate(dict(
            common, out_dir=root / "ct", x_corpus={"path": root / "x.txt"}, replay_corpus={"path": root / "en.txt"},
            x_tokens=seq_len * batch * steps * 3 // 4, n_checkpoints=n_checkpoints,
            batch={"seq_len": seq_len, "per_device_batch_size": batch})))
        sft = run_sft(SFTConfig.model_validate(dict(
            common, out_dir=root / "sft", sft_files=[root / "sft.jsonl"], max_len=seq_len,
            replay_corpora=[{"path": root / "en.txt"}, {"path": root / "x.txt"}], replay_share=0.05,
            batch={"per_device_batch_size": batch})))
        bare = bare_loop_tokens_per_s(base, seq_len, batch)
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(base)
        params = (config.vocab_size * hidden * 2
                  + layers * (4 * hidden * hidden + 3 * hidden * config.intermediate_size + 2 * hidden) + hidden)
    return {"params": params, "threads": torch.get_num_threads(), "seq_len": seq_len, "batch": batch,
            "ct_tokens_per_s": ct.tokens_per_s, "sft_tokens_per_s": sft.tokens_per_s, "bare_tokens_per_s": bare,
            "ct_vs_bare": ct.tokens_per_s / bare}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    result = measure(args.hidden, args.layers, args.seq_len, args.batch, threads=args.threads)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
