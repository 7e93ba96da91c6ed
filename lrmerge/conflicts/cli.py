"""``lrmerge conflicts``: the sign-conflict ledger of SFT vs CT checkpoints as a table (Figures 3 and 4)."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="BASE model folder (the task vectors' origin)")
    parser.add_argument("--sft", required=True, help="SFT model folder (priority model, e.g. SFT-flan)")
    parser.add_argument("--ct", required=True, nargs="+", help="CT checkpoint folders (e.g. CT-ben checkpoints)")
    parser.add_argument("--density-sft", type=float, default=0.2, help="k_sft of trim (paper: 0.2)")
    parser.add_argument("--density-ct", type=float, default=1.0, help="k_ct of trim (paper: 1.0)")
    parser.add_argument("--slack", type=float, default=0.0, help="TIES-SV slack (paper: 0.04); 0 = plain TIES")
    parser.add_argument("--slack-of", default="kept", choices=["kept", "discarded"],
                        help="slack as a share of SFT's kept entries (default) or of its losing entries")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--out", required=True, help="table to write (.csv, or .parquet)")
    parser.add_argument("--figures", default=None, help="also write Figures 3, 4 and the heatmap to this folder")
    parser.add_argument("--refresh", action="store_true", help="recompute even if the cache has this table")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: runs/conflicts/cache)")


def run(args: argparse.Namespace) -> int:
    from lrmerge.conflicts.aggregate import aggregate
    from lrmerge.conflicts.series import conflict_series, series_config, write_table

    table = conflict_series(
        args.base, args.sft, args.ct, density_sft=args.density_sft, density_ct=args.density_ct, slack=args.slack,
        slack_of=args.slack_of, device=args.device, cache_dir=args.cache_dir, refresh=args.refresh,
    )
    config = series_config(args.base, args.sft, args.ct, args.density_sft, args.density_ct, args.slack, args.slack_of)
    out = write_table(table, args.out, config=config)
    per = aggregate(table, "checkpoint")
    for row in per.itertuples():
        print(f"{row.checkpoint}: ct_tokens={row.ct_tokens:.0f} conflicts={100 * row.conflict_share:.2f}% "
              f"discarded={100 * row.discarded_share:.2f}% of {row.sft_kept} kept SFT entries")
    print(f"wrote {out}")
    if args.figures:
        from lrmerge.plots.conflict_figures import save_conflict_figures

        for path in save_conflict_figures(table, Path(args.figures)):
            print(f"wrote {path}")
    return 0
