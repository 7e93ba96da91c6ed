"""``lrmerge train ct|sft|mt``: the training stages from a YAML config and/or flags (flags override the file).

    lrmerge train ct --config configs/real/tam.yaml --dry-run        # print the plan, download nothing
    lrmerge train ct --lang tam --base-model runs/base --x-corpus corpus/tam.txt --replay-corpus corpus/en_replay.txt \\
        --x-tokens 2000000 --out runs/tam/ct --seq-len 128 --batch-size 16 --lr 1e-3
    lrmerge train sft --stage ctsft-flan --lang tam --base-model runs/tam/ct/tokens-000002000000 --sft-file sft.jsonl ...
    lrmerge train mt --in sft_en.jsonl --out sft_tam_mt.jsonl --lang tam   # NLLB (real runs; downloads the model)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import ValidationError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML file (whole file, or its 'ct:'/'sft:' section)")
    p.add_argument("--lang")
    p.add_argument("--base-model", dest="base_model")
    p.add_argument("--out", dest="out_dir")
    p.add_argument("--seed", type=int)
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"])
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--schedule", choices=["cosine", "constant_with_warmup"])
    p.add_argument("--warmup-ratio", type=float)
    p.add_argument("--embedding-lr-multiplier", type=float)
    p.add_argument("--seq-len", type=int)
    p.add_argument("--batch-size", type=int, help="sequences per device per micro-step")
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--save-steps", type=int)
    p.add_argument("--stop-after-steps", type=int)
    p.add_argument("--replay-share", type=float)
    p.add_argument("--cpu-threads", type=int, help="torch threads on CPU (1 is fastest on a shared machine)")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage_command", required=True, metavar="STAGE")
    ct = sub.add_parser("ct", help="CT-X: continual pre-training with English replay")
    _common(ct)
    ct.add_argument("--x-corpus", type=Path, help="text file, one document per line")
    ct.add_argument("--replay-corpus", type=Path)
    ct.add_argument("--x-tokens", type=int)
    ct.add_argument("--checkpoint-tokens", type=int, nargs="+")
    ct.add_argument("--n-checkpoints", type=int)
    ct.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    sft = sub.add_parser("sft", help="SFT-flan, CTSFT-X-flan, CTSFT-X-mt (response-only loss)")
    _common(sft)
    sft.add_argument("--stage", choices=["sft-flan", "ctsft-flan", "ctsft-mt"])
    sft.add_argument("--sft-file", dest="sft_files", type=Path, action="append")
    sft.add_argument("--replay-corpus", dest="replay_corpora", type=Path, action="append")
    sft.add_argument("--epochs", type=float)
    sft.add_argument("--max-len", type=int)
    mt = sub.add_parser("mt", help="translate half of an SFT JSONL with an NLLB-style model")
    mt.add_argument("--in", dest="input", type=Path, required=True)
    mt.add_argument("--out", dest="output", type=Path, required=True)
    mt.add_argument("--lang", required=True)
    mt.add_argument("--fraction", type=float, default=0.5)
    mt.add_argument("--seed", type=int, default=0)
    mt.add_argument("--model", default="facebook/nllb-200-distilled-1.3B")
    mt.add_argument("--batch-size", type=int, default=16)


_NESTED = {"lr": ("optim", "lr"), "schedule": ("optim", "schedule"), "warmup_ratio": ("optim", "warmup_ratio"),
           "embedding_lr_multiplier": ("optim", "embedding_lr_multiplier"), "seq_len": ("batch", "seq_len"),
           "batch_size": ("batch", "per_device_batch_size"), "grad_accum": ("batch", "grad_accum_steps")}
_SKIP = {"config", "dry_run", "stage_command"}


def overrides_from_args(args: argparse.Namespace) -> dict:
    """Flags given on the command line, shaped like the config (nested optim/batch, corpus sources)."""
    out: dict = {}
    for key, value in vars(args).items():
        if value is None or key in _SKIP or value is False:
            continue
        if key in ("x_corpus", "replay_corpus"):
            value = {"path": str(value)}
        elif key == "replay_corpora":
            value = [{"path": str(v)} for v in value]
        if key in _NESTED:
            section, field = _NESTED[key]
            out.setdefault(section, {})[field] = value
        else:
            out[key] = value
    return out


def build_config(args: argparse.Namespace, stage: str):
    from lrmerge.train.config import CTConfig, SFTConfig, load_config

    overrides = overrides_from_args(args)
    if args.config is not None:
        return load_config(args.config, stage, overrides)
    return {"ct": CTConfig, "sft": SFTConfig}[stage].model_validate(overrides)


def _run_mt(args: argparse.Namespace) -> int:
    from lrmerge.runs import atomic_write_text, library_versions
    from lrmerge.train.data import read_sft_jsonl
    from lrmerge.translate import Seq2SeqTranslator, make_mt_variant

    records = read_sft_jsonl(args.input)
    translator = Seq2SeqTranslator.from_pretrained(args.model, batch_size=args.batch_size)
    variant = make_mt_variant(records, translator, args.lang, args.fraction, args.seed)
    atomic_write_text(args.output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in variant))
    record = {"config": {k: str(v) for k, v in vars(args).items()}, "seed": args.seed, "stage": "mt",
              "n_translated": sum(r["translated"] for r in variant), "versions": library_versions()}
    atomic_write_text(args.output.with_suffix(".run.json"), json.dumps(record, indent=2) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.stage_command == "mt":
        return _run_mt(args)
    try:
        config = build_config(args, args.stage_command)
    except ValidationError as err:
        from lrmerge.errors import UserError, plain_validation

        where = f"{args.config}: " if args.config else ""
        raise UserError(f"lrmerge train {args.stage_command}: {where}invalid config: {plain_validation(err)}") from err
    if args.stage_command == "ct":
        from lrmerge.train.plan import plan_ct

        print(plan_ct(config).format())
        if args.dry_run:
            return 0
        from lrmerge.train.ct import run_ct

        result = run_ct(config)
        print(f"{'finished' if result.finished else 'stopped (rerun to resume)'}: {len(result.checkpoints)} "
              f"checkpoints in {config.out_dir}, {result.tokens_per_s:,.0f} tokens/s")
        return 0
    from lrmerge.train.sft import run_sft

    result = run_sft(config)
    print(f"{'finished: ' + str(result.model_dir) if result.finished else 'stopped (rerun to resume)'}; "
          f"{result.n_sft} SFT + {result.n_replay} replay sequences, {result.tokens_per_s:,.0f} tokens/s")
    return 0
