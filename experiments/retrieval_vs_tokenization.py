"""Does word-translation retrieval depend on how the base tokenizer spells the X words?

Builds (or reuses) the demo world at each requested BPE vocabulary size, runs CT-X of one language with the demo
profile's recipe (`lrmerge.profiles`, stage `pretraining`; `--profile quick` for a smoke run), and probes the last
checkpoint with `lrmerge.demo.probes.translation_retrieval` (mean and last pooling). Each row reports how many
query words are a single token under that vocabulary and the top-1 of single- and multi-token queries. With the
default vocabulary (2000) every tbx word is one whole-word token; with 900, tbx words are spelled letter by letter
(as every mnx word is spelled byte by byte at any size), which isolates the tokenization from the rest of the world.

    python experiments/retrieval_vs_tokenization.py --lang tbx --vocab-sizes 2000,900 [--out runs/experiments/rvt]

Cost on a 2-core CPU (measured): about 5 min per demo world built (reused afterwards from --world-root) plus
2.5 min of CT and probing per vocabulary size. Writes retrieval.csv and lrmerge_run.json (config, seed, library versions) into --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIELDS = ("lang", "vocab_size", "pooling", "top1", "best_layer", "chance", "n_queries", "single_token_queries",
          "top1_single_token", "top1_multi_token", "per_layer", "heldout_perplexity")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lang", choices=("tbx", "mnx"), default="tbx")
    parser.add_argument("--vocab-sizes", default="2000,900", help="comma-separated WorldConfig.vocab_size values")
    parser.add_argument("--profile", choices=("demo", "quick"), default="demo",
                        help="world and CT recipe profile (quick: a smoke run, about 20 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--world-root", default=None, help="parent of the worlds (default: runs/world)")
    parser.add_argument("--out", default="runs/experiments/retrieval_vs_tokenization")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    try:
        args.vocab_sizes = [int(v) for v in args.vocab_sizes.split(",")]
    except ValueError:
        parser.error(f"--vocab-sizes must be comma-separated integers, got {args.vocab_sizes!r}")
    return args


def main(argv=None) -> int:
    import torch

    from lrmerge.demo import WorldPaths
    from lrmerge.demo.probes import heldout_perplexity, translation_retrieval
    from lrmerge.sources import provider_spec, resolve
    from lrmerge.pipeline import ct_config
    from lrmerge.profiles import profile_parameters
    from lrmerge.runs import atomic_output_dir, write_run_record
    from lrmerge.train.ct import run_ct

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = {"ct_lr": 1e-3, "ct_embedding_lr_multiplier": 3.0,  # the CT notebook's defaults
              **{k: v for k, v in profile_parameters(args.profile, "pretraining").items() if k.startswith("ct_")}}
    out = Path(args.out)
    rows = []
    with atomic_output_dir(out, overwrite=True) as tmp:
        for vocab_size in args.vocab_sizes:
            spec = provider_spec("demo", args.lang, world_profile=args.profile, world_seed=args.seed,
                                 world_root=args.world_root or "runs/world", vocab_size=vocab_size)
            ct_dir = out.parent / f"{out.name}-ct" / f"{args.lang}-vocab{vocab_size}"  # resumable, kept beside --out
            source = resolve(spec, ct_dir.parent / f"{args.lang}-vocab{vocab_size}-data", ct_dir.parent / "models")
            world = WorldPaths(source.world_root)
            ct = run_ct(ct_config(source, ct_dir, x_tokens=recipe["ct_x_tokens"],
                                  n_checkpoints=recipe["ct_checkpoints"], replay_share=0.25, lr=recipe["ct_lr"],
                                  embedding_lr_multiplier=recipe["ct_embedding_lr_multiplier"],
                                  seq_len=recipe["ct_seq_len"], batch_size=recipe["ct_batch_size"], seed=args.seed))
            last = ct.checkpoints[-1]
            perplexity = heldout_perplexity(last, world, args.lang)
            for pooling in ("mean", "last"):
                result = translation_retrieval(last, world, args.lang, pooling=pooling)
                row = {"lang": args.lang, "vocab_size": vocab_size, "pooling": pooling,
                       "heldout_perplexity": round(perplexity, 3), **result}
                row["per_layer"] = json.dumps([round(v, 4) for v in result["per_layer"]])
                rows.append({k: row[k] for k in FIELDS})
                print(", ".join(f"{k}={rows[-1][k]}" for k in FIELDS), flush=True)
        with open(tmp / "retrieval.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        write_run_record(tmp, {**vars(args), "ct_recipe": recipe}, seed=args.seed)
    print(f"wrote {out / 'retrieval.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
