"""Sign-conflict ledger of SFT vs CT checkpoints (paper section 6.1, Figures 3 and 4).

  columns.py    column names of the ledger and its tidy table
  names.py      tensor name -> (layer, module)
  ledger.py     per-tensor exact counts, read from the masks of ``ties_merge_tensor`` (pure tensors)
  chunked.py    the same counts streamed chunk by chunk for plain TIES (no masks, no merged tensor)
  series.py     SFT vs every CT checkpoint, streamed one tensor at a time, cached table
  aggregate.py  sums and shares by checkpoint / layer / module
  memory.py     in-memory ledger of a small model for the interactive explorer
  synthetic.py  tiny random-walk stand-in checkpoints (not trained) for demos and tests
  cli.py        ``lrmerge conflicts``
"""
