"""Merging. The pure math imports nothing heavy: ``primitives`` (trim, elect, disjoint merge), ``select`` (exact
top-k), ``sparsify`` (DARE / breadcrumbs / DELLA masks), ``general`` (the one general merge) and ``methods`` (the
registry). ``config`` (mergekit-schema YAML), ``engine.merge`` (streaming), ``fastpath`` and ``mergekit_plugin``
load on first use: ``from lrmerge.merge import merge`` imports the engine only then."""

from __future__ import annotations

__all__ = ["merge", "MERGE_METHODS"]


def __getattr__(name: str):
    if name == "merge":
        from lrmerge.merge.engine import merge
        return merge
    if name == "MERGE_METHODS":
        from lrmerge.merge.methods import MERGE_METHODS
        return MERGE_METHODS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
