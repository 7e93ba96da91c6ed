"""`lrmerge eval --model PATH --lang tam --tasks sib200,belebele --split test --source DIR --out DIR`."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from lrmerge.runs import runs_root


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (config.json, weights, tokenizer)")
    parser.add_argument("--lang", required=True, help="language code passed to the loaders, e.g. tam, mvf, tbx_Tibt")
    parser.add_argument("--tasks", default=None,
                        help="comma-separated benchmarks (sib200,belebele,mgsm,mlic_tc,mlic_mrc,mlic_rs,mlic_math); "
                             "default: the paper's set for --lang")
    parser.add_argument("--split", default="test")
    parser.add_argument("--source", default=None, help="data folder for the loaders (default: the hub / demo world)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<lang>/eval/<model folder name>)")
    parser.add_argument("--mode", default="generate", choices=("generate", "loglik"))
    parser.add_argument("--continuation", default="answer", choices=("answer", "letter", "text"),
                        help="loglik: score the answers as the task writes them (default), the letters, or the option texts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from lrmerge.eval.runner import evaluate, write_results
    from lrmerge.eval.tasks import tasks_for_language

    benchmarks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    specs = tasks_for_language(args.lang, benchmarks)
    out = Path(args.out) if args.out else runs_root() / args.lang / "eval" / Path(args.model).name
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"output folder already exists: {out} (pass --overwrite to replace it)")
    parts = out.parent / f".{out.name}.parts"  # finished tasks of an interrupted run; reused on the next call
    results = evaluate(args.model, specs, split=args.split, source=args.source, mode=args.mode,
                       batch_size=args.batch_size, device=args.device, continuation=args.continuation,
                       cache_dir=parts, progress=not args.no_progress)
    write_results(results, out, overwrite=args.overwrite)
    shutil.rmtree(parts, ignore_errors=True)
    for name, result in results.tasks.items():
        print(f"{name}: accuracy {100 * result.accuracy:.2f} +- {100 * result.stderr:.2f} (n={result.n}, "
              f"unparsable {result.n_unparsable}, invalid UTF-8 {result.n_invalid_utf8})")
    print(f"results: {out}")
    return 0
