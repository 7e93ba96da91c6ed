"""`lrmerge merge CONFIG.yaml OUT_DIR [--device cpu|cuda|auto] [--overwrite]`."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="mergekit-schema YAML (linear, task_arithmetic, ties, ties_sv)")
    parser.add_argument("out_dir", help="output HF checkpoint folder (written atomically)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--vocab-policy", default="error", choices=["error", "shared_rows"])
    parser.add_argument("--max-shard-size", type=int, default=2 * 1024**3, help="bytes per safetensors shard")
    parser.add_argument("--allow-pickle", action="store_true", help="accept .bin/.pt pickle checkpoints (can run code)")


def run(args: argparse.Namespace) -> int:
    from lrmerge.merge.engine import merge

    out = merge(args.config, args.out_dir, device=args.device, overwrite=args.overwrite,
                vocab_policy=args.vocab_policy, max_shard_size=args.max_shard_size, allow_pickle=args.allow_pickle)
    print(out)
    return 0
