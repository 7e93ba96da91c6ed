"""`lrmerge merge CONFIG.yaml OUT_DIR [--device cpu|cuda|auto] [--overwrite] [--random-seed N]`."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from lrmerge.merge.methods import MERGE_METHODS

    parser.add_argument("config", help=f"mergekit-schema YAML ({', '.join(MERGE_METHODS)})")
    parser.add_argument("out_dir", help="output HF checkpoint folder (written atomically)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--vocab-policy", default="error", choices=["error", "shared_rows"])
    parser.add_argument("--max-shard-size", type=int, default=2 * 1024**3, help="bytes per safetensors shard")
    parser.add_argument("--random-seed", type=int, default=None,
                        help="seed of the random methods (dare_*, della*), as mergekit's --random-seed (default 0)")
    parser.add_argument("--allow-pickle", action="store_true", help="accept .bin/.pt pickle checkpoints (can run code)")


def run(args: argparse.Namespace) -> int:
    from lrmerge.merge.engine import merge

    out = merge(args.config, args.out_dir, device=args.device, overwrite=args.overwrite,
                vocab_policy=args.vocab_policy, max_shard_size=args.max_shard_size, allow_pickle=args.allow_pickle,
                random_seed=args.random_seed)
    print(out)
    return 0
