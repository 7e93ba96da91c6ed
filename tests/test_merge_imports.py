"""Importing the merge math loads no I/O stack and changes no global state."""

import subprocess
import sys

BLOCKED = ("safetensors", "yaml", "pydantic", "tqdm", "numba", "mergekit", "transformers", "pandas")

SCRIPT = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked for this test: " + name)
sys.meta_path.insert(0, Block())
import os, torch
threads, env = torch.get_num_threads(), dict(os.environ)
import lrmerge.merge
from lrmerge.merge import general, methods, primitives, select, sparsify
from lrmerge.merge.methods import MERGE_METHODS
base = torch.zeros(64)
fts = [torch.randn(64, generator=torch.Generator().manual_seed(i)) for i in range(2)]
for name in ("ties", "dare_ties", "breadcrumbs", "della"):
    spec = MERGE_METHODS[name]
    spec(base, fts, [1.0, 1.0], [0.5, 0.5], context=methods.TensorContext(seeds=(1, 2)), **spec.defaults())
primitives.ties_merge_tensor(base, fts, [1.0, 1.0], [0.3, 1.0])  # the fast path too (pure chunked torch)
assert torch.get_num_threads() == threads and dict(os.environ) == env
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r})
assert not loaded, loaded
assert "lrmerge.merge.engine" not in sys.modules and "lrmerge.merge.config" not in sys.modules
print("ok")
"""


def test_math_imports_without_io_stack():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"


def test_package_merge_still_resolves_lazily():
    from lrmerge.merge import MERGE_METHODS, merge
    from lrmerge.merge.engine import merge as engine_merge

    assert merge is engine_merge and "dare_ties" in MERGE_METHODS
