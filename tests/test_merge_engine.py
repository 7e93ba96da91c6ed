"""Streaming engine, config validation, checkpoint errors, atomicity, CLI, on tiny Llama checkpoints."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from lrmerge.merge import merge
from lrmerge.merge import fastpath, select
from lrmerge.merge import primitives as P
from lrmerge.merge.config import load_config
from lrmerge.runs import read_run_record


def _load(folder):
    out = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(file)))
    return out


@pytest.fixture
def trio(tiny_llama_factory):
    base = tiny_llama_factory("base", seed=0)
    return base, tiny_llama_factory("sft", seed=1, base=base), tiny_llama_factory("ct", seed=2, base=base)


def _ties(base, sft, ct, **params):
    return {"merge_method": "ties", "base_model": str(base), "parameters": params,
            "models": [{"model": str(sft), "parameters": {"weight": 1.0, "density": 0.2}},
                       {"model": str(ct), "parameters": {"weight": 1.0, "density": 1.0}}]}


def test_merged_folder_loads_generates_and_records(trio, tmp_path):
    from transformers import AutoModelForCausalLM

    base, sft, ct = trio
    seen = {}
    out = merge(_ties(base, sft, ct), tmp_path / "m", device="auto", progress=False,
                collect_masks=lambda name, masks, inputs: seen.setdefault(name, (masks, inputs)), max_shard_size=20_000)
    assert len(list(out.glob("model-*-of-*.safetensors"))) > 1 and (out / "model.safetensors.index.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    generated = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, 7)
    record = read_run_record(out)
    assert record["config"]["merge"]["merge_method"] == "ties" and "torch" in record["versions"]
    merged = _load(out)
    name = "model.layers.0.mlp.down_proj.weight"
    masks, (b, fts) = seen[name]
    assert [int(k.sum()) for k in masks.kept] == [P.kept_count(b.numel(), 0.2), b.numel()]
    # the callback got the very masks of the merge: recompute the disjoint mean from them
    trimmed = torch.stack([torch.where(k, f - b, 0.0) for k, f in zip(masks.kept, fts)])
    again = b + P.disjoint_merge(trimmed, torch.ones(2), masks.agree)
    torch.testing.assert_close(merged[name], again, atol=1e-6, rtol=0)
    # resume: the same config reuses the finished folder
    assert merge(_ties(base, sft, ct), out, progress=False) == out


def test_global_scope_trims_over_the_whole_model(trio, tmp_path):
    base, sft, ct = trio
    out = merge(_ties(base, sft, ct, scope="global"), tmp_path / "g", device="cpu", progress=False)
    b, s, c = (_load(p) for p in (base, sft, ct))
    names = list(b)
    flat = torch.cat([(s[n] - b[n]).reshape(-1) for n in names])
    k = P.kept_count(flat.numel(), 0.2)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat.abs(), descending=True, stable=True)[:k]] = True  # reference: full sort
    merged, start = _load(out), 0
    for n in names:
        numel = b[n].numel()
        kept_sft = keep[start:start + numel].reshape(b[n].shape)
        start += numel
        want, _ = P.ties_merge_tensor(b[n], [s[n], c[n]], [1, 1], [0.2, 1.0], kept=[kept_sft, torch.ones_like(kept_sft)])
        torch.testing.assert_close(merged[n], want, atol=1e-6, rtol=0)


def test_exception_mid_merge_leaves_no_output(trio, tmp_path):
    base, sft, ct = trio

    def boom(name, masks, inputs):
        if "layers.1" in name:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        merge(_ties(base, sft, ct), tmp_path / "out", collect_masks=boom, progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_config_errors_name_the_key(trio, tmp_path):
    base, sft, ct = trio
    cfg = _ties(base, sft, ct)
    cfg["models"][0]["parameters"]["densty"] = 0.5
    with pytest.raises(ValueError, match="'densty'.*did you mean 'density'"):
        load_config(cfg)
    with pytest.raises(ValueError, match="did you mean 'merge_method'"):
        load_config({**_ties(base, sft, ct), "merge_methd": "ties"})
    with pytest.raises(ValueError, match="allowed.*ties_sv"):
        load_config({**_ties(base, sft, ct), "merge_method": "dare"})
    bad = _ties(base, sft, ct)
    bad["models"][1]["parameters"]["density"] = 1.5
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\]"):
        load_config(bad)
    with pytest.raises(ValueError, match="weight is required"):
        load_config({**_ties(base, sft, ct), "models": [{"model": str(sft)}]})
    with pytest.raises(ValueError, match="election.*count"):
        load_config(_ties(base, sft, ct, election="median"))
    with pytest.raises(ValueError, match="priority"):
        load_config({**_ties(base, sft, ct), "merge_method": "ties_sv", "parameters": {"priority": "nope"}})
    path = tmp_path / "c.yaml"
    path.write_text("merge_method: ties\nmodels: []\nbogus: 1\n")
    with pytest.raises(ValueError, match="(?s)c.yaml.*bogus"):
        load_config(path)


def test_checkpoint_errors(trio, tiny_llama_factory, tmp_path):
    base, sft, ct = trio
    with pytest.raises(FileNotFoundError, match="nowhere"):
        merge(_ties(base, sft, tmp_path / "nowhere"), tmp_path / "o1", progress=False)
    # missing tensor
    broken = tmp_path / "broken"
    broken.mkdir()
    state = load_file(str(ct / "model.safetensors"))
    state.pop("model.norm.weight")
    save_file(state, str(broken / "model.safetensors"))
    (broken / "config.json").write_text((ct / "config.json").read_text())
    with pytest.raises(ValueError, match="missing tensors.*model.norm.weight"):
        merge(_ties(base, sft, broken), tmp_path / "o2", progress=False)
    # NaN
    state = load_file(str(ct / "model.safetensors"))
    state["model.norm.weight"][0] = float("nan")
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(ValueError, match="model.norm.weight.*NaN"):
        merge(_ties(base, sft, broken), tmp_path / "o3", progress=False)
    assert not (tmp_path / "o3").exists()
    # pickle refused
    pick = tmp_path / "pick"
    pick.mkdir()
    torch.save(load_file(str(ct / "model.safetensors")), pick / "pytorch_model.bin")
    (pick / "config.json").write_text((ct / "config.json").read_text())
    with pytest.raises(ValueError, match="pickle.*allow_pickle"):
        merge(_ties(base, sft, pick), tmp_path / "o4", progress=False)
    assert merge(_ties(base, sft, pick), tmp_path / "o4", allow_pickle=True, progress=False).exists()
    # different architecture
    wide = tiny_llama_factory("wide", hidden=64)
    with pytest.raises(ValueError, match="different architectures.*hidden_size"):
        merge(_ties(base, sft, wide), tmp_path / "o5", progress=False)


def test_vocab_mismatch_error_and_shared_rows(tiny_llama_factory, tmp_path):
    base = tiny_llama_factory("base", seed=0)
    sft = tiny_llama_factory("sft", seed=1, base=base)
    big = tiny_llama_factory("big", seed=3, vocab=80)
    cfg = _ties(base, sft, big)
    with pytest.raises(ValueError, match="(lm_head|embed_tokens).*\\(64, 32\\).*\\(80, 32\\).*shared_rows"):
        merge(cfg, tmp_path / "o", progress=False)
    out = merge(cfg, tmp_path / "o", vocab_policy="shared_rows", progress=False)
    merged, b, s, g = _load(out), _load(base), _load(sft), _load(big)
    name = "model.embed_tokens.weight"
    assert merged[name].shape == (80, 32)
    torch.testing.assert_close(merged[name][64:], g[name][64:])
    want, _ = P.ties_merge_tensor(b[name], [s[name], g[name][:64]], [1, 1], [0.2, 1.0])
    torch.testing.assert_close(merged[name][:64], want, atol=1e-6, rtol=0)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 80


def test_cli_merge(trio, tmp_path):
    import yaml

    from lrmerge.cli import main

    base, sft, ct = trio
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**_ties(base, sft, ct), "merge_method": "ties_sv",
                                    "parameters": {"slack": 0.04, "priority": str(sft)}}))
    assert main(["merge", str(path), str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "model.safetensors").exists()
    assert main(["merge", str(path), str(tmp_path / "out"), "--device", "cpu"]) == 0  # same config: reused
    path.write_text(path.read_text().replace("slack: 0.04", "slack: 0.1"))
    with pytest.raises(FileExistsError, match="overwrite"):
        main(["merge", str(path), str(tmp_path / "out"), "--device", "cpu"])
    assert main(["merge", str(path), str(tmp_path / "out"), "--device", "cpu", "--overwrite"]) == 0


# ---------------------------------------------------------------- streamed TIES and the streaming writer


@pytest.mark.parametrize("block,chunk,workers", [(1000, 96, 2), (1000, 96, 3), (1 << 20, 1 << 15, 1),
                                                 (1 << 20, 1 << 15, 2)])
def test_streamed_ties_equals_the_in_memory_merge(trio, tiny_llama_factory, tmp_path, monkeypatch, block, chunk,
                                                  workers):
    """Blocks and chunks that split tensors (and trim ties) across boundaries, merged by 1 to 3 threads, give the
    in-memory result exactly."""
    from lrmerge.merge import engine

    monkeypatch.setattr(engine, "CPU_WORKERS", workers)
    monkeypatch.setattr(engine, "STREAM_BLOCK", block)
    monkeypatch.setattr(engine, "CPU_CHUNK", chunk)
    for module in (select, fastpath):  # where the chunk size is read
        monkeypatch.setattr(module, "CPU_CHUNK", chunk)
    base, sft, ct = trio
    third = tiny_llama_factory("third", seed=4, base=base)
    cases = {"paper": (_ties(base, sft, ct), [1.0, 1.0], [0.2, 1.0]),
             "general": ({**_ties(base, sft, ct), "models": [
                 {"model": str(sft), "parameters": {"weight": 0.7, "density": 0.3}},
                 {"model": str(ct), "parameters": {"weight": 1.0, "density": 1.0}},
                 {"model": str(third), "parameters": {"weight": 1.5, "density": 0.5}}]}, [0.7, 1.0, 1.5], [0.3, 1.0, 0.5])}
    b = _load(base)
    for label, (cfg, weights, densities) in cases.items():
        out = merge(cfg, tmp_path / label, device="cpu", progress=False)
        merged = _load(out)
        fts = [_load(type(base)(m["model"])) for m in cfg["models"]]
        assert set(merged) == set(b)
        for name in b:
            want, _ = P.ties_merge_tensor(b[name], [f[name] for f in fts], weights, densities, keep_masks=True)
            if label == "paper":
                assert torch.equal(merged[name], want), name
            torch.testing.assert_close(merged[name], want, atol=1e-6, rtol=0)


def test_split_covers_the_block_in_runs_of_whole_chunks():
    from lrmerge.merge.engine import _split

    for n in (1, 95, 96, 97, 1000, 4096):
        for chunk in (1, 96, 1 << 15):
            for parts in (1, 2, 3, 7):
                runs = _split(n, chunk, parts)
                assert 1 <= len(runs) <= parts and runs[0][0] == 0 and runs[-1][1] == n
                assert all(hi == lo2 for (_, hi), (lo2, _) in zip(runs, runs[1:]))  # contiguous, no overlap
                assert all(lo % chunk == 0 and lo < hi for lo, hi in runs)
                sizes = [-(-(hi - lo) // chunk) for lo, hi in runs]  # chunks per run
                assert sizes[:-1] == [-(-sum(sizes) // parts)] * (len(runs) - 1) and sizes[-1] <= sizes[0]


@pytest.mark.parametrize("path", ["torch", "kernel"])
@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_merge_runs_chunks_on_several_threads(trio, tmp_path, monkeypatch, workers, path):
    """CPU_WORKERS=2: the calling thread and a pool thread merge chunks, thresholds are found on the prepare
    thread; CPU_WORKERS=1: everything on the calling thread. Every chunk is merged exactly once, by the torch
    chunk code or by the compiled kernel (lrmerge.merge.kernels)."""
    import threading

    from lrmerge.merge import engine, kernels

    if path == "kernel" and not kernels.available():
        pytest.skip("compiled kernels off (numba not installed or LRMERGE_KERNELS=0)")
    monkeypatch.setenv("LRMERGE_KERNELS", "1" if path == "kernel" else "0")

    monkeypatch.setattr(engine, "CPU_WORKERS", workers)
    monkeypatch.setattr(engine, "STREAM_BLOCK", 1000)
    monkeypatch.setattr(engine, "CPU_CHUNK", 96)
    seen, lock = [], threading.Lock()
    original = engine.ties_merge_chunk

    def spy(base, finetuned, weights, trims, offset, **kwargs):
        with lock:
            seen.append((threading.current_thread().name, offset, base.numel()))
        return original(base, finetuned, weights, trims, offset, **kwargs)

    threshold_threads = set()
    original_threshold = engine.magnitude_threshold

    def spy_threshold(*args):
        threshold_threads.add(threading.current_thread().name.split("_")[0])
        return original_threshold(*args)

    original_kernel = kernels.ties_two_models

    def spy_kernel(base, inputs, is_task_vector, trims, offset, out, *args):
        with lock:
            seen.append((threading.current_thread().name, offset, base.numel()))
        return original_kernel(base, inputs, is_task_vector, trims, offset, out, *args)

    monkeypatch.setattr(engine, "ties_merge_chunk", spy)
    monkeypatch.setattr(kernels, "ties_two_models", spy_kernel)
    monkeypatch.setattr(engine, "magnitude_threshold", spy_threshold)
    base, sft, ct = trio
    merge(_ties(base, sft, ct), tmp_path / "m", device="cpu", progress=False)
    threads = {name.split("_")[0] for name, _, _ in seen}
    main = threading.main_thread().name
    if workers == 1:
        assert threads == threshold_threads == {main}
    else:
        assert threads == {main, "lrmerge-merge"} and threshold_threads == {"lrmerge-prepare"}
    b = _load(base)
    assert sum(numel for _, _, numel in seen) == sum(t.numel() for t in b.values() if t.is_floating_point())


def test_streamed_merge_writes_out_dtype_and_rejects_nan_in_any_block(trio, tmp_path, monkeypatch):
    from lrmerge.merge import engine

    monkeypatch.setattr(engine, "STREAM_BLOCK", 500)
    base, sft, ct = trio
    out = merge({**_ties(base, sft, ct), "out_dtype": "bfloat16"}, tmp_path / "bf16", progress=False)
    merged, b, s, c = _load(out), _load(base), _load(sft), _load(ct)
    name = "model.embed_tokens.weight"
    want, _ = P.ties_merge_tensor(b[name], [s[name], c[name]], [1, 1], [0.2, 1.0])
    assert merged[name].dtype == torch.bfloat16 and torch.equal(merged[name], want.bfloat16())
    broken = tmp_path / "broken"
    broken.mkdir()
    c[name].view(-1)[-3] = float("inf")  # in the last block only
    save_file(c, str(broken / "model.safetensors"))
    (broken / "config.json").write_text((ct / "config.json").read_text())
    with pytest.raises(ValueError, match="broken.*embed_tokens.*NaN or inf"):
        merge(_ties(base, sft, broken), tmp_path / "o", progress=False)


def test_sharded_writer_streams_to_valid_safetensors(tmp_path):
    from safetensors import safe_open

    from lrmerge.merge.checkpoint import CheckpointReader, ShardedWriter

    g = torch.Generator().manual_seed(0)
    tensors = {"a": torch.randn(3, 5, generator=g), "b": torch.arange(7, dtype=torch.int64),
               "c": torch.randn(11, generator=g).bfloat16(), "d": torch.randn(2, 2, 2, generator=g)}
    layout = [(n, t.shape, t.dtype) for n, t in tensors.items()]
    writer = ShardedWriter(tmp_path, max_shard_size=70, layout=layout)
    writer.add("a", tensors["a"])
    writer.append("b", tensors["b"][:3])
    writer.append("b", tensors["b"][3:])
    writer.add("c", tensors["c"])
    with pytest.raises(ValueError, match="got tensor 'a', expected 'd'"):
        writer.add("a", tensors["a"])
    with pytest.raises(ValueError, match="'d' has dtype torch.float64"):
        writer.add("d", tensors["d"].double())
    with pytest.raises(ValueError, match=r"'d' has shape \(8,\), layout says \(2, 2, 2\)"):
        writer.add("d", tensors["d"].reshape(-1))
    writer.add("d", tensors["d"])
    paths = writer.close()
    assert len(paths) > 1 and (tmp_path / "model.safetensors.index.json").exists()
    seen = {}
    for path in paths:
        with safe_open(path, "pt") as handle:
            assert handle.metadata() == {"format": "pt"}
            seen.update({n: handle.get_tensor(n) for n in handle.keys()})
    assert set(seen) == set(tensors) and all(torch.equal(seen[n], t) for n, t in tensors.items())
    reader = CheckpointReader(tmp_path)
    assert torch.equal(reader.read_flat("d", 2, 7), tensors["d"].reshape(-1)[2:7])
    with pytest.raises(ValueError, match="outside tensor 'd'"):
        reader.read_flat("d", 0, 9)
    short = ShardedWriter(tmp_path / "x", layout=layout)
    (tmp_path / "x").mkdir()
    short.add("a", tensors["a"])
    with pytest.raises(ValueError, match="'b' and later ones were never written"):
        short.close()
