"""Streaming merge engine: one tensor at a time from every checkpoint, merged on a device, written to shards.

Peak memory is a few tensors (the n_models + 1 inputs of one parameter and the merge's temporaries), never a model.
``scope: global`` trims each task vector over the whole flattened model (the original TIES code): two streamed
histogram passes per model find the exact threshold (``primitives.global_threshold``), and threshold ties are kept
in tensor order, lowest flat index first. The TIES-SV slack is always chosen per tensor.

On CPU with CPU_WORKERS > 1 the streamed TIES runs on Python threads (every torch op on one intra-op thread; torch
releases the GIL inside its kernels): CPU_WORKERS threads each merge a contiguous run of whole chunks of a block, one
io thread reads block j + 1 and writes block j - 1, and one thread finds the trim thresholds of the next tensor.
Chunk boundaries do not depend on the thread count, so the result is bit-identical to CPU_WORKERS = 1 (serial).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from lrmerge.merge.checkpoint import CheckpointReader, ShardedWriter, check_same_architecture, copy_side_files, resolve_device
from lrmerge.merge.config import MergeConfig, ResolvedMerge, load_config
from lrmerge.merge.fastpath import CHUNK_OPTIONS, closed_form, fast_path, serial_cpu, ties_chunked, ties_merge_chunk
from lrmerge.merge.methods import MethodSpec, TensorContext, get_method, layer_of, tensor_seeds
from lrmerge.merge import kernels
from lrmerge.merge.primitives import TiesMasks, task_vector
from lrmerge.merge.select import CPU_CHUNK, Threshold, kept_count, kept_mask, magnitude_threshold, sample_positions
from lrmerge.runs import atomic_output_dir, config_key, read_run_record, write_run_record

log = logging.getLogger(__name__)

VocabPolicy = Literal["error", "shared_rows"]
VOCAB_POLICIES = ("error", "shared_rows")
VOCAB_TENSORS = ("embed_tokens", "lm_head", "wte", "embed_out")
STREAM_BLOCK = 1 << 20  # elements read per input and per file read on CPU (4 MiB in float32)
TAU_CACHE_BYTES = 512 * 1024**2  # task vectors of one tensor kept in memory between the threshold and merge passes
# Threads merging the chunks of one block (1: the calling thread only). Measured on the 2-core machine, 333.5M params:
# quiet (load 1.1) 2 threads 6.4 s vs 1 thread 7.5 s; with other jobs on the cores, 2 threads were 3-16% slower.
# LRMERGE_CPU_WORKERS overrides the default.
CPU_WORKERS = max(1, int(os.environ.get("LRMERGE_CPU_WORKERS", str(min(2, os.cpu_count() or 1)))))
# collect_masks(tensor_name, masks, (base, finetuned)) with the float32 inputs the merge used
MaskCallback = Callable[[str, TiesMasks, tuple[Tensor | None, list[Tensor]]], None]


def _is_vocab(name: str) -> bool:
    return any(part in name for part in VOCAB_TENSORS)


def _plan(readers: list[CheckpointReader], vocab_policy: str) -> list[str]:
    """Tensor names in order; every reader must have them with equal shapes (or a vocab row-count difference)."""
    first = readers[0]
    names = first.names()
    for other in readers[1:]:
        missing = [n for n in names if n not in set(other.names())]
        extra = [n for n in other.names() if n not in set(names)]
        if missing:
            raise ValueError(f"{other.folder}: missing tensors present in {first.folder}: {missing[:5]}")
        if extra:
            raise ValueError(f"{other.folder}: extra tensors absent from {first.folder}: {extra[:5]}")
        for name in names:
            a, b = first.shape(name), other.shape(name)
            if a == b:
                continue
            if vocab_policy == "shared_rows" and _is_vocab(name) and a[1:] == b[1:]:
                continue
            hint = " (vocabulary sizes differ: pass vocab_policy='shared_rows')" if _is_vocab(name) and a[1:] == b[1:] else ""
            raise ValueError(f"shape mismatch for tensor {name!r}: {tuple(a)} in {first.folder} vs {tuple(b)} in "
                             f"{other.folder}{hint}")
    return names


def _global_thresholds(base: CheckpointReader, models: list[CheckpointReader], names: list[str],
                       densities: list[float], device: torch.device) -> tuple[list[Threshold | None], dict[str, int]]:
    """Whole-model trim: each model's exact ``Threshold`` over its task vector streamed tensor by tensor (the same
    ``magnitude_threshold`` as per-tensor trimming, ties by lowest index in stream order), and each float tensor's
    flat offset in that stream."""
    floats = [n for n in names if base.dtype(n).is_floating_point]
    offsets, total = {}, 0
    for n in floats:
        offsets[n], total = total, total + int(torch.Size(base.shape(n)).numel())
    thresholds: list[Threshold | None] = []
    for reader, density in zip(tqdm(models, desc="global trim thresholds"), densities):
        k = kept_count(total, density)

        def stream(reader=reader):
            for n in floats:
                yield task_vector(reader.get(n, device), base.get(n, device)).reshape(-1)
        thresholds.append(None if k >= total else magnitude_threshold(stream, k))
    return thresholds, offsets


def _blocks(numel: int, block: int, start: int = 0) -> list[tuple[int, int]]:
    return [(a, min(a + block, numel)) for a in range(start, numel, block)]


_POOLS: dict[str, ThreadPoolExecutor] = {}  # persistent worker threads, created on first use


def _pool(role: str, workers: int) -> ThreadPoolExecutor:
    key = f"{role}-{workers}"
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(workers, thread_name_prefix=f"lrmerge-{role}")
    return _POOLS[key]


def _split(n: int, chunk: int, parts: int) -> list[tuple[int, int]]:
    """At most ``parts`` contiguous [lo, hi) ranges covering [0, n), each a run of whole ``chunk``s."""
    n_chunks = -(-n // chunk)
    per = -(-n_chunks // max(parts, 1))
    return [(lo, min(lo + per * chunk, n)) for lo in range(0, n, per * chunk)]


class _BufferPool:
    """Flat float32 CPU buffers reused for the task-vector caches of successive tensors. Fresh memory costs a page
    fault per 4 KiB on first touch (measured here: about 1.5 s of the 333M-parameter TIES merge's CPU time), so a
    buffer given back is kept for the next tensor; at most ``keep`` free buffers (the largest) stay held."""

    def __init__(self, keep: int = 2):
        self.keep, self.free, self.lock = keep, [], threading.Lock()

    def take(self, numel: int) -> Tensor:
        with self.lock:
            fits = [b for b in self.free if b.numel() >= numel]
            if fits:
                buffer = min(fits, key=Tensor.numel)
                self.free = [b for b in self.free if b is not buffer]
                return buffer
        return torch.empty(numel, dtype=torch.float32)

    def give(self, buffer: Tensor) -> None:
        with self.lock:
            self.free = sorted(self.free + [buffer], key=Tensor.numel)[-self.keep:]


def _n_layers(readers: list[CheckpointReader], names: list[str]) -> int | None:
    """Number of blocks: config.json's num_hidden_layers (n_layer), else 1 + the largest block index in names."""
    config = readers[0].config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(config.get(key), int):
            return config[key]
    layers = [layer_of(n) for n in names if layer_of(n) is not None]
    return max(layers) + 1 if layers else None


class _StreamedTies:
    """A fast-path merge of one tensor ("ties" or "weighted_sum", see ``fastpath.fast_path``), streamed in flat
    blocks from the files to the writer (readers[0] is the base when the method has one).
    "weighted_sum" applies the method's own (elementwise) reference function to each block.

    ``prepare()``: each trimmed model's task vector is read once for its threshold (``magnitude_threshold``) and
    kept in memory while the kept ones fit in TAU_CACHE_BYTES (else re-read). ``write()``: every block is merged
    chunk by chunk (``ties_merge_chunk``) and appended to the output file. ``merge`` prepares the next tensor on
    another thread while this one is written. Every block read is checked for NaN / inf once.
    With vocab_policy="shared_rows" the shared rows are a flat prefix; the widest reader's extra rows follow.
    """

    def __init__(self, name: str, readers: list[CheckpointReader], widest: int | None, plan: ResolvedMerge,
                 device: torch.device, kind: str = "ties", spec: MethodSpec | None = None,
                 pool: _BufferPool | None = None):
        self.name, self.readers, self.widest, self.plan, self.device = name, readers, widest, plan, device
        self.kind, self.spec = kind, spec
        self.pool = pool if device.type == "cpu" else None
        self.buffers: list[Tensor] = []  # pool buffers backing self.cached, given back after write
        self.has_base = spec is None or spec.needs_base
        base = readers[0]
        rows = min(r.shape(name)[0] for r in readers) if widest is not None else None
        self.numel = int(torch.Size(base.shape(name)).numel())
        self.shared = self.numel if rows is None else rows * int(torch.Size(base.shape(name)[1:]).numel())
        self.on_cpu = device.type == "cpu"
        self.block = STREAM_BLOCK if self.on_cpu else max(self.shared, 1)
        self.n_models = len(readers) - int(self.has_base)
        closed = kind == "ties" and closed_form(plan.weights, plan.options.get("election", "sum"))
        self.chunk = CPU_CHUNK if closed or kind != "ties" else CPU_CHUNK // self.n_models
        # the compiled one-pass kernel for the paper's case (two unit-weight models, sum election) on CPU
        self.fused = self.on_cpu and closed and self.n_models == 2 and kernels.available()
        self.checked: set[tuple[int, int]] = set()  # (reader index, block start) already checked for NaN / inf
        self.cached: dict[int, Tensor] = {}  # model index -> its flat float32 task vector of this tensor
        self.trims: list[Threshold | None] = []
        self.options = {k: v for k, v in plan.options.items() if k in CHUNK_OPTIONS}
        self.weights = torch.tensor(plan.weights, dtype=torch.float32, device=device)  # (n_models,)

    def read(self, i: int, a: int, b: int) -> Tensor:
        tensor = self.readers[i].read_flat(self.name, a, b).to(self.device).float()
        if (i, a) not in self.checked:
            self.readers[i].check_finite(self.name, tensor)
            self.checked.add((i, a))
        return tensor

    def _fits(self) -> bool:
        return 4 * self.shared * (len(self.cached) + 1) <= TAU_CACHE_BYTES

    def taus(self, i: int) -> Iterator[Tensor]:
        if i in self.cached:
            yield self.cached[i]
            return
        keep = None
        if self._fits():
            if self.pool is not None:
                self.buffers.append(self.pool.take(self.shared))
                keep = self.buffers[-1][:self.shared]
            else:
                keep = torch.empty(self.shared, dtype=torch.float32, device=self.device)
        for a, b in _blocks(self.shared, self.block):
            yield torch.sub(self.read(i + 1, a, b), self.read(0, a, b), out=keep[a:b] if keep is not None else None)
        if keep is not None:
            self.cached[i] = keep

    def prepare(self) -> "_StreamedTies":
        """Per-model trim thresholds (call inside ``serial_cpu``); returns self."""
        if self.kind != "ties":
            return self
        for i, density in enumerate(self.plan.densities):
            k = kept_count(self.shared, density)
            if k >= self.shared:
                self.trims.append(None)
                continue
            if self._fits():
                for _ in self.taus(i):  # read once into the cache, then sample it
                    pass
            sample = sample_positions(self.cached[i]) if i in self.cached else (None,)
            self.trims.append(magnitude_threshold(lambda i=i: self.taus(i), k, *sample, self.shared))
        return self

    def _inputs(self, a: int, b: int) -> tuple[Tensor | None, list[Tensor | None]]:
        first = int(self.has_base)
        return (self.read(0, a, b) if self.has_base else None,
                [None if i in self.cached else self.read(i + first, a, b) for i in range(self.n_models)])

    def _merge_range(self, a: int, base_block: Tensor, inputs: list[Tensor | None], out: Tensor, lo: int, hi: int):
        """Chunks [lo, hi) of the block starting at flat index a into out[lo:hi]."""
        if self.kind == "weighted_sum":  # the method's own elementwise reference, on this range
            base = base_block[lo:hi] if base_block is not None else None
            merged, _ = self.spec(base, [t[lo:hi] for t in inputs], self.plan.weights, self.plan.densities,
                                  **self.plan.options)
            out[lo:hi] = merged
            return
        if self.fused:
            values = [self.cached[i][a + lo:a + hi] if i in self.cached else inputs[i][lo:hi] for i in range(2)]
            kernels.ties_two_models(base_block[lo:hi], values, [i in self.cached for i in range(2)], self.trims,
                                    a + lo, out[lo:hi],
                                    self.options.get("normalize", True) and self.options.get("divide") != "none",
                                    self.options.get("lambda_", 1.0))
            return
        for c, d in _blocks(hi, self.chunk if self.on_cpu else max(hi - lo, 1), start=lo):
            given = [self.cached[i][a + c:a + d] if i in self.cached else None for i in range(self.n_models)]
            ties_merge_chunk(base_block[c:d], [None if t is None else t[c:d] for t in inputs], self.weights,
                             self.trims, a + c, out=out[c:d], task_vectors=given, **self.options)

    def _merge_block(self, a: int, b: int, base_block: Tensor, inputs: list[Tensor | None]) -> Tensor:
        out = torch.empty(b - a, dtype=torch.float32, device=self.device)  # (b - a,)
        workers = CPU_WORKERS if self.on_cpu else 1
        parts = _split(b - a, self.chunk, workers) if workers > 1 else [(0, b - a)]
        runs = [_pool("merge", workers - 1).submit(self._merge_range, a, base_block, inputs, out, lo, hi)
                for lo, hi in parts[1:]]
        try:
            self._merge_range(a, base_block, inputs, out, *parts[0])  # the calling thread takes the first run
        finally:
            wait(runs)
        for run in runs:
            run.result()
        return out

    def write(self, writer: ShardedWriter, out_dtype: torch.dtype) -> None:
        """Merge block by block (call inside ``serial_cpu``); on CPU one io thread reads block j + 1 and writes
        block j - 1 while block j merges."""
        if self.numel == 0:
            writer.add(self.name, torch.empty(self.readers[0].shape(self.name), dtype=out_dtype))
            return
        blocks = _blocks(self.shared, self.block)
        if not (self.on_cpu and CPU_WORKERS > 1):  # serial: each block read, merged and written in turn
            for a, b in blocks:
                writer.append(self.name, self._merge_block(a, b, *self._inputs(a, b)).to(out_dtype))
        else:
            io = _pool("io", 1)
            pending: list[Future] = []
            ahead = io.submit(self._inputs, *blocks[0])
            try:
                for j, (a, b) in enumerate(blocks):
                    base_block, inputs = ahead.result()
                    if j + 1 < len(blocks):
                        ahead = io.submit(self._inputs, *blocks[j + 1])
                    out = self._merge_block(a, b, base_block, inputs)
                    pending.append(io.submit(writer.append, self.name, out.to(out_dtype)))
            finally:  # no io task outlives this tensor (the writer is used by one thread at a time)
                wait(pending + [ahead])
            for future in pending:
                future.result()  # re-raise a write error
        if self.widest is not None:  # rows only the widest checkpoint has
            extra = int(torch.Size(self.readers[self.widest].shape(self.name)).numel())
            for a, b in _blocks(extra, self.block, start=self.shared):
                writer.append(self.name, self.read(self.widest, a, b).to(out_dtype))
        self.cached.clear()  # free the task-vector cache: ``merge`` keeps every job until the end
        for buffer in self.buffers:
            self.pool.give(buffer)
        self.buffers.clear()


def _prepared(jobs: list[_StreamedTies]) -> Iterator[_StreamedTies]:
    """The jobs in order, each prepared; on CPU with CPU_WORKERS > 1 the next one is prepared on another thread while
    the caller writes this one (so at most two tensors' task-vector caches are held). Close it to wait for that."""
    if not jobs:
        return
    if not (jobs[0].on_cpu and CPU_WORKERS > 1):
        for job in jobs:
            yield job.prepare()
        return
    pool = _pool("prepare", 1)
    ahead = pool.submit(jobs[0].prepare)
    try:
        for j in range(len(jobs)):
            job = ahead.result()
            if j + 1 < len(jobs):
                ahead = pool.submit(jobs[j + 1].prepare)
            yield job
    finally:
        wait([ahead])


def _out_dtype(plan: ResolvedMerge, stored: torch.dtype) -> torch.dtype:
    name = plan.out_dtype or plan.dtype
    return getattr(torch, name) if name else stored


def merge(config: MergeConfig | dict | str | Path, out_dir: str | Path, device: str = "auto",
          collect_masks: MaskCallback | None = None, *, overwrite: bool = False,
          max_shard_size: int = 2 * 1024**3, vocab_policy: VocabPolicy = "error", allow_pickle: bool = False,
          progress: bool = True, random_seed: int | None = None) -> Path:
    """Merge the checkpoints of a mergekit-schema config into ``out_dir`` (HF folder); returns its path.

    An existing ``out_dir`` whose run record has the same config is reused (resume) unless ``overwrite``.
    ``vocab_policy="shared_rows"``: where embed_tokens / lm_head row counts differ, merge the shared rows and take
    the extra rows (and config.json / tokenizer files) from the first model, base first, with the most rows.
    ``random_seed`` seeds the random methods (dare_*, della*; default 0, recorded in the run record): one seed gives
    the same tensors on every device and thread count (``tensor_seeds``). Which path merges a tensor is decided by
    ``fastpath.fast_path`` alone; every other configuration calls the registry entry (``MERGE_METHODS``).
    """
    if vocab_policy not in VOCAB_POLICIES:
        raise ValueError(f"vocab_policy={vocab_policy!r} is not one of {list(VOCAB_POLICIES)}")
    cfg = load_config(config)
    plan = cfg.resolve()
    spec = get_method(plan.method)
    dev = resolve_device(device)
    record = {"merge": cfg.model_dump(), "vocab_policy": vocab_policy}
    seed = 0 if random_seed is None else int(random_seed)
    if spec.random:
        record["random_seed"] = seed
    key = config_key(record)
    out_dir = Path(out_dir)
    previous = read_run_record(out_dir) if out_dir.exists() else None
    if previous is not None and previous.get("config_key") == key and not overwrite:
        log.info("%s already holds this merge; reusing it", out_dir)
        return out_dir

    use_base = spec.needs_base
    models = [CheckpointReader(p, allow_pickle) for p in plan.models]
    base = CheckpointReader(plan.base_model, allow_pickle) if use_base else None
    readers = ([base] if base else []) + models
    check_same_architecture(readers + ([CheckpointReader(plan.base_model, allow_pickle)]
                                       if plan.base_model and not use_base else []))
    names = _plan(readers, vocab_policy)
    global_trim = plan.scope == "global"
    if global_trim and vocab_policy == "shared_rows":
        raise ValueError("scope: global cannot be combined with vocab_policy='shared_rows'")
    thresholds, offsets = _global_thresholds(base, models, names, plan.densities, dev) if global_trim else ([], {})

    vocab_rows = {n: [r.shape(n)[0] for r in readers] for n in names if _is_vocab(n)}
    widest = max(range(len(readers)), key=lambda i: max((rows[i] for rows in vocab_rows.values()), default=0))
    side_source = Path(plan.base_model) if plan.base_model else models[0].folder
    if any(len(set(rows)) > 1 for rows in vocab_rows.values()):
        side_source = readers[widest].folder

    kind = fast_path(plan.method, plan.options, plan.weights, keep_masks=collect_masks is not None)
    streamed = kind is not None and not global_trim
    n_layers = _n_layers(readers, names)
    layout = []
    for name in names:
        stored = readers[0].dtype(name)
        shape = readers[widest if name in vocab_rows else 0].shape(name)
        layout.append((name, shape, _out_dtype(plan, stored) if stored.is_floating_point else stored))

    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        writer = ShardedWriter(tmp, max_shard_size, layout=layout)
        pool = _BufferPool()
        jobs = [_StreamedTies(n, readers, widest if n in vocab_rows else None, plan, dev, kind, spec, pool)
                for n in names if streamed and readers[0].dtype(n).is_floating_point]
        with serial_cpu(dev) if streamed else nullcontext(), closing(_prepared(jobs)) as ready:
            for name in tqdm(names, desc=f"merge ({plan.method})", disable=not progress):
                stored = readers[0].dtype(name)
                if not stored.is_floating_point:
                    writer.add(name, readers[0].get(name))
                    continue
                if streamed:
                    next(ready).write(writer, _out_dtype(plan, stored))
                    continue
                inputs = [r.get(name, dev) for r in readers]
                rows = min(t.shape[0] for t in inputs) if name in vocab_rows else None
                shared = [t[:rows] for t in inputs] if rows is not None else inputs
                base_t, fts = (shared[0], shared[1:]) if base else (None, shared)
                options: dict[str, Any] = dict(plan.options)
                if global_trim:
                    taus = [task_vector(t, base_t) for t in fts]
                    options["kept"] = [torch.ones_like(tau, dtype=torch.bool) if threshold is None else
                                       kept_mask(tau.reshape(-1), threshold, offsets[name]).reshape(tau.shape)
                                       for tau, threshold in zip(taus, thresholds)]
                    del taus
                if kind == "ties":  # global trim: the chunked TIES with the whole-model masks
                    merged, masks = ties_chunked(base_t, fts, plan.weights, plan.densities, **options), None
                else:
                    context = TensorContext(name, n_layers,
                                            tensor_seeds(seed, name, len(fts)) if spec.random else None)
                    merged, masks = spec(base_t, fts, plan.weights, plan.densities,
                                         keep_masks=collect_masks is not None, context=context, **options)
                if rows is not None and max(t.shape[0] for t in inputs) > rows:
                    merged = torch.cat([merged, inputs[widest][rows:].float()])
                if collect_masks is not None and masks is not None:
                    collect_masks(name, masks, (base_t, list(fts)))
                writer.add(name, merged.to(_out_dtype(plan, stored)))
                del inputs, shared, merged, masks
        writer.close()
        copy_side_files(side_source, tmp)
        write_run_record(tmp, config=record, seed=None, config_key=key, device=str(dev),
                         sources={"base_model": plan.base_model, "models": plan.models})
    return out_dir
