"""The streamed series over CT checkpoints: equals per-tensor merges, caches, resumes, errors; CLI; aggregates."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import lrmerge.conflicts.series as series
from lrmerge.conflicts.aggregate import aggregate
from lrmerge.conflicts.columns import LEDGER_FIELDS, TABLE_COLUMNS
from lrmerge.conflicts.ledger import tensor_ledger
from lrmerge.conflicts.series import compute_series, conflict_series, ct_tokens_of, read_table, run_record_path
from lrmerge.runs import read_run_record

SHAPES = {
    "model.embed_tokens.weight": (16, 8),
    "model.layers.0.self_attn.q_proj.weight": (8, 8),
    "model.layers.0.mlp.down_proj.weight": (8, 12),
    "model.layers.1.self_attn.v_proj.weight": (8, 8),
    "model.norm.weight": (8,),
}


def write_model(folder, tensors, record=None):
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    if record is not None:
        (folder / "lrmerge_run.json").write_text(json.dumps(record))
    return folder


@pytest.fixture()
def world(tmp_path):
    return make_world(tmp_path)


def make_world(tmp_path):
    """BASE, SFT and three CT checkpoints whose task vectors grow with tokens (also used by other test files)."""
    gen = torch.Generator().manual_seed(0)
    base = {k: torch.randn(s, generator=gen) for k, s in SHAPES.items()}
    sft = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
    paths = {"base": write_model(tmp_path / "base", base), "sft": write_model(tmp_path / "sft", sft), "ct": []}
    walk = {k: torch.zeros_like(v) for k, v in base.items()}
    for i, tokens in enumerate([1000, 2000, 4000]):
        for k in walk:
            walk[k] += 0.1 * torch.randn(walk[k].shape, generator=gen)
        paths["ct"].append(write_model(tmp_path / "ct" / f"tokens-{tokens:09d}", {k: base[k] + walk[k] for k in base},
                                       record={"ct_tokens": tokens} if i != 1 else None))
    return paths


@pytest.mark.parametrize("slack, density_ct", [(0.05, 1.0), (0.0, 1.0), (0.0, 0.5)])
def test_series_equals_one_merge_per_checkpoint_and_tensor(world, tmp_path, slack, density_ct):
    # slack 0 takes the streamed counts (chunked.py), slack > 0 the merge's masks: both equal a full merge's ledger
    table = conflict_series(world["base"], world["sft"], world["ct"], density_sft=0.2, density_ct=density_ct,
                            slack=slack, device="cpu", cache_dir=tmp_path / "cache", progress=False)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert len(table) == len(SHAPES) * 3
    from safetensors.torch import load_file

    base, sft = load_file(world["base"] / "model.safetensors"), load_file(world["sft"] / "model.safetensors")
    for ckpt in world["ct"]:
        ct = load_file(ckpt / "model.safetensors")
        for name in SHAPES:
            _, expected = tensor_ledger(base[name], [sft[name], ct[name]], [0.2, density_ct], slack=slack)  # no reuse
            row = table[(table.checkpoint == ckpt.name) & (table.tensor == name)].iloc[0]
            for field in LEDGER_FIELDS:
                assert row[field] == pytest.approx(expected[field], rel=1e-12), (ckpt.name, name, field)
    assert (table["slack_restored"].sum() > 0) == (slack > 0)
    assert table["conflicts"].sum() > 0


def test_ct_tokens_from_record_config_or_folder_name(tmp_path, world):
    assert ct_tokens_of(world["ct"][0]) == 1000  # record field ct_tokens
    assert ct_tokens_of(world["ct"][1]) == 2000  # no record: parsed from tokens-000002000
    nested = tmp_path / "step-7"
    nested.mkdir()
    (nested / "lrmerge_run.json").write_text(json.dumps({"config": {"tokens_seen": 123}}))
    assert ct_tokens_of(nested) == 123
    unknown = tmp_path / "checkpoint-final"
    unknown.mkdir()
    assert math.isnan(ct_tokens_of(unknown))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "lrmerge_run.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken/lrmerge_run.json"):
        ct_tokens_of(broken)


def test_cache_is_reused_and_keyed_by_files_and_settings(world, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = conflict_series(world["base"], world["sft"], world["ct"], cache_dir=cache, progress=False)
    calls = []
    real = series.compute_series
    monkeypatch.setattr(series, "compute_series", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = conflict_series(world["base"], world["sft"], world["ct"], cache_dir=cache, progress=False)
    pd.testing.assert_frame_equal(first, again)
    assert calls == []
    conflict_series(world["base"], world["sft"], world["ct"], density_sft=0.3, cache_dir=cache, progress=False)
    assert calls == [1]
    weights = world["ct"][0] / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # "retrained"
    conflict_series(world["base"], world["sft"], world["ct"], cache_dir=cache, progress=False)
    assert calls == [1, 1]
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 3 and all(read_run_record(p)["config"]["density_ct"] == 1.0 for p in entries)


@pytest.mark.parametrize("slack, step, per_tensor", [(0.0, "streamed_ledgers", 1), (0.05, "tensor_ledger", 3)])
def test_interrupted_run_resumes_from_partial_rows(world, tmp_path, monkeypatch, slack, step, per_tensor):
    # slack 0: one streamed call per tensor covers every checkpoint; slack > 0: one merge per (tensor, checkpoint)
    assert per_tensor in (1, len(world["ct"]))
    full = compute_series(world["base"], world["sft"], world["ct"], slack=slack, progress=False)
    partial = tmp_path / "partial.csv"
    calls = []
    real = getattr(series, step)

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2 * per_tensor:  # dies inside the third tensor
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(series, step, failing)
    with pytest.raises(KeyboardInterrupt):
        compute_series(world["base"], world["sft"], world["ct"], slack=slack, partial=partial, progress=False)
    assert read_table(partial)["tensor"].nunique() == 2
    calls.clear()
    monkeypatch.setattr(series, step, lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = compute_series(world["base"], world["sft"], world["ct"], slack=slack, partial=partial, progress=False)
    assert len(calls) == (len(SHAPES) - 2) * per_tensor
    key = ["checkpoint", "tensor"]
    pd.testing.assert_frame_equal(resumed.sort_values(key).reset_index(drop=True),
                                  full.sort_values(key).reset_index(drop=True))


def test_mismatched_checkpoints_raise_naming_file_and_tensor(world, tmp_path):
    from safetensors.torch import load_file

    tensors = load_file(world["ct"][0] / "model.safetensors")
    tensors.pop("model.norm.weight")
    bad = write_model(tmp_path / "bad_missing", tensors)
    with pytest.raises(ValueError, match=r"bad_missing: missing tensor\(s\).*model.norm.weight"):
        compute_series(world["base"], world["sft"], [bad], progress=False)
    tensors = load_file(world["ct"][0] / "model.safetensors")
    tensors["model.norm.weight"] = torch.zeros(9)
    bad = write_model(tmp_path / "bad_shape", tensors)
    with pytest.raises(ValueError, match=r"bad_shape: tensor model.norm.weight has shape \(9,\)"):
        compute_series(world["base"], world["sft"], [bad], progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no \\*.safetensors"):
        conflict_series(world["base"], world["sft"], [empty], cache_dir=tmp_path / "c", progress=False)


def test_aggregates_are_ratios_of_exact_sums(world, tmp_path):
    table = compute_series(world["base"], world["sft"], world["ct"], progress=False)
    per = aggregate(table, "checkpoint")
    assert list(per["ct_tokens"]) == [1000, 2000, 4000]
    for row in per.itertuples():
        rows = table[table.checkpoint == row.checkpoint]
        assert row.sft_discarded == sum(int(v) for v in rows.sft_discarded)
        assert row.discarded_share == pytest.approx(rows.sft_discarded.sum() / rows.sft_kept.sum())
        assert row.elect_sft_share + row.elect_ct_share == pytest.approx(row.conflict_share)
    by_layer = aggregate(table, "layer")
    assert by_layer.groupby("checkpoint")["conflicts"].sum().to_dict() == per.set_index("checkpoint")["conflicts"].to_dict()
    assert by_layer["layer"].isna().any()  # embed and final norm live outside the blocks
    by_module = aggregate(table, "module")
    assert set(by_module["module"]) == {"embed", "q", "down", "v", "norm"}
    with pytest.raises(ValueError, match="allowed: \\['checkpoint', 'layer', 'module', 'model'\\]"):
        aggregate(table, "tensorz")
    with pytest.raises(ValueError, match="missing column"):
        aggregate(table.drop(columns=["elect_ct"]), "checkpoint")


def test_cli_writes_table_record_and_figures(world, tmp_path, capsys):
    from lrmerge.cli import main

    out = tmp_path / "out" / "ledger.csv"
    code = main(["conflicts", "--base", str(world["base"]), "--sft", str(world["sft"]), "--ct",
                 *map(str, world["ct"]), "--density-sft", "0.2", "--density-ct", "1.0", "--slack", "0.04",
                 "--device", "cpu", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                 "--figures", str(tmp_path / "figs")])
    assert code == 0
    table = read_table(out)
    assert len(table) == 3 * len(SHAPES) and np.isfinite(table["ct_tokens"]).all()
    record = json.loads(run_record_path(out).read_text())
    assert record["config"]["slack"] == 0.04 and "torch" in record["versions"]
    assert "discarded=" in capsys.readouterr().out
    assert sorted(p.suffix for p in (tmp_path / "figs").iterdir()) == [".pdf"] * 3 + [".png"] * 3 + [".svg"] * 3


def test_cli_rejects_bad_device(world, tmp_path):
    from lrmerge.cli import main

    with pytest.raises(ValueError, match="device='tpu'"):
        main(["conflicts", "--base", str(world["base"]), "--sft", str(world["sft"]), "--ct", str(world["ct"][0]),
              "--device", "tpu", "--out", str(tmp_path / "t.csv"), "--cache-dir", str(tmp_path / "c"), "--traceback"])


def test_resolve_checkpoints_from_glob_folder_or_list_in_token_order(world, tmp_path):
    from lrmerge.conflicts.series import resolve_checkpoints

    ct_folder = world["ct"][0].parent
    (ct_folder / "notes").mkdir()  # a subfolder without weights is not a checkpoint
    expected = [p.name for p in world["ct"]]
    assert [p.name for p in resolve_checkpoints(str(ct_folder))] == expected
    assert [p.name for p in resolve_checkpoints(str(ct_folder / "tokens-*"))] == expected
    assert [p.name for p in resolve_checkpoints(list(reversed(world["ct"])))] == expected  # sorted by tokens
    with pytest.raises(FileNotFoundError, match="no CT checkpoint folders match"):
        resolve_checkpoints(str(tmp_path / "nothing-*"))
