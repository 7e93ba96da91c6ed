"""`lrmerge world [--profile quick|demo] [--seed N] [--root DIR]`: build (or reuse) the demo world, print its paths."""

from __future__ import annotations

import argparse
import json
import time

from lrmerge.demo.config import PROFILES


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILES, default="demo", help="quick: tests and smoke runs; demo: the study")
    parser.add_argument("--seed", type=int, default=0, help="everything in the world derives from it")
    parser.add_argument("--root", default=None, help="parent folder of the world (default: runs/world)")


def run(args: argparse.Namespace) -> int:
    from lrmerge.demo import build_world, profile_config, world_paths

    config = profile_config(args.profile, seed=args.seed)
    cached = world_paths(config, args.root).world_json.exists()
    start = time.time()
    paths = build_world(config, args.root)
    record = paths.record()
    print(f"world ({args.profile}, seed {args.seed}): {paths.root}" + (" (cached)" if cached else ""))
    for name in ("en_pretrain", "en_replay", "sft_flan", "eval_dir", "tokenizer", "base", "lexicon"):
        print(f"  {name:12s} {getattr(paths, name)}")
    for lang in config.languages:
        print(f"  corpus {lang:5s} {paths.corpus(lang)}  ({record['sizes'][f'{lang}_ct_tokens']} tokens)")
        print(f"  sft_mt {lang:5s} {paths.sft_mt(lang)}")
    print("timings (s):", json.dumps(record["timings_s"]), f"| this call {time.time() - start:.1f}")
    return 0
