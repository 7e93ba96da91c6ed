"""The compiled kernels (lrmerge.merge.kernels, numba) give exactly what the torch code gives."""

import pytest
import torch

from lrmerge.merge import kernels, primitives
from lrmerge.merge.primitives import magnitude_keys, ties_merge_chunk

pytestmark = pytest.mark.skipif(not kernels.available(),
                                reason="compiled kernels off (numba not installed or LRMERGE_KERNELS=0)")


def _values(n, seed, zeros=0.3, ties=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g) * 10.0 ** torch.randint(-6, 2, (n,), generator=g).float()
    x[torch.rand(n, generator=g) < zeros] = 0.0
    if ties:  # repeated magnitudes of both signs, and -0.0
        idx = torch.randint(n, (n // 10,), generator=g)
        x[idx] = 0.125 * torch.where(torch.rand(idx.numel(), generator=g) < 0.5, 1.0, -1.0)
        x[torch.randint(n, (5,), generator=g)] = -0.0
    return x


@pytest.mark.parametrize("shift, low, n_bins", [(16, 1, 1 << 16), (0, 0x3E000000, 5000), (0, 0x3E000000, 3)])
def test_histogram_equals_bincount(shift, low, n_bins):
    x = _values(100_003, 1)
    bins = (torch.sub(magnitude_keys(x) >> shift, low - 1)).clamp_(0, n_bins - 1)
    expected = torch.bincount(bins, minlength=n_bins)
    got = kernels.magnitude_histogram(x, torch.zeros(n_bins, dtype=torch.int64), shift, low)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("normalize, lambda_", [(True, 1.0), (False, 1.0), (True, 0.7)])
@pytest.mark.parametrize("given", [(False, False), (True, False), (True, True)])
def test_ties_two_models_bit_identical_to_torch(normalize, lambda_, given):
    n = 60_000
    base = _values(n, 2, zeros=0.05, ties=False)
    tau0, tau1 = _values(n, 3), _values(n, 4)
    f0, f1 = base + tau0, base + tau1
    t0 = torch.sub(f0, base)  # the task vectors as the engine computes them
    t1 = torch.sub(f1, base)
    straddled = []
    for k0, k1 in ((n // 5, None), (n // 3, n // 2), (None, None), (n - 7, 11)):
        trims = [None if k is None else primitives.magnitude_threshold(lambda t=t: iter([t]), k)
                 for k, t in ((k0, t0), (k1, t1))]
        straddled += [t.last_tie != primitives.ALL_TIES for t in trims if t is not None]
        for offset, (a, b) in ((0, (0, n)), (20_000, (20_000, 45_000))):
            expected = ties_merge_chunk(base[a:b], [f0[a:b], f1[a:b]], torch.ones(2), trims, offset,
                                        normalize=normalize, lambda_=lambda_)
            inputs = [t0[a:b] if given[0] else f0[a:b], t1[a:b] if given[1] else f1[a:b]]
            got = kernels.ties_two_models(base[a:b], inputs, list(given), trims, offset, torch.empty(b - a),
                                          normalize, lambda_)
            assert torch.equal(got, expected), (k0, k1, offset, (got != expected).nonzero()[:5])
    assert any(straddled) and not all(straddled)  # ties cut at the threshold, and thresholds without


def test_engine_uses_kernels_and_matches_the_torch_path(tiny_llama_factory, tmp_path, monkeypatch):
    """The engine's paper case runs the fused kernel, and its output equals the torch path's byte for byte."""
    from safetensors.torch import load_file

    from lrmerge.merge import merge

    base = tiny_llama_factory("base", seed=0)
    sft, ct = tiny_llama_factory("sft", seed=1, base=base), tiny_llama_factory("ct", seed=2, base=base)
    config = {"merge_method": "ties", "base_model": str(base), "parameters": {"normalize": True},
              "models": [{"model": str(sft), "parameters": {"weight": 1.0, "density": 0.2}},
                         {"model": str(ct), "parameters": {"weight": 1.0, "density": 0.6}}]}
    calls = []
    original = kernels.ties_two_models
    monkeypatch.setattr(kernels, "ties_two_models", lambda *a, **k: calls.append(1) or original(*a, **k))
    outputs = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("LRMERGE_KERNELS", flag)
        folder = merge(config, tmp_path / f"kernels-{flag}", device="cpu", progress=False)
        outputs[flag] = {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
        if flag == "1":
            assert calls, "the fused kernel was not used"
            n_calls = len(calls)
    assert len(calls) == n_calls  # LRMERGE_KERNELS=0: the torch path only
    assert outputs["1"].keys() == outputs["0"].keys()
    for name, tensor in outputs["1"].items():
        assert torch.equal(tensor, outputs["0"][name]), name


def test_threshold_stream_mixing_kernel_and_bincount_pieces(monkeypatch):
    """Pieces the kernel cannot take (here float64; on a GPU, any piece) are counted by bincount in the same pass:
    the threshold equals the torch-only one."""
    x = _values(50_000, 5)
    pieces = [x[:20_000], x[20_000:].double()]
    k = 12_345
    with_kernels = primitives.magnitude_threshold(lambda: iter(pieces), k)
    assert with_kernels == primitives.magnitude_threshold(lambda: iter([x]), k)  # the values are float32-exact
    monkeypatch.setenv("LRMERGE_KERNELS", "0")
    assert with_kernels == primitives.magnitude_threshold(lambda: iter(pieces), k)
