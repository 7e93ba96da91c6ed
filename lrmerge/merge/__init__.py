"""Merging: pure primitives (``primitives``), methods registry (``methods``), mergekit-schema config (``config``),
streaming engine (``engine.merge``) and a mergekit plugin for TIES-SV (``mergekit_plugin``)."""

from lrmerge.merge.engine import merge
from lrmerge.merge.methods import MERGE_METHODS

__all__ = ["merge", "MERGE_METHODS"]
