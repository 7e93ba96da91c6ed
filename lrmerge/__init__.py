"""lrmerge: task-solving LLMs for low-resource languages by model merging.

Stages of the study (paper: "Unlocking the Potential of Model Merging for Low-Resource Languages"):
  demo/      the embedded demo world (languages, corpora, tasks, tokenizer, BASE)
  data/      loaders for the real benchmark formats (SIB-200, Belebele, MGSM, GSM8K, MLiC-Eval)
  train/     CT-X with English replay, SFT-flan, CTSFT-X-flan, CTSFT-X-mt
  merge/     pure trim / elect / disjoint-merge primitives, methods registry, streaming engine
  conflicts/ sign-conflict ledger (Figures 3 and 4)
  eval/      tasks, batched generation, answer parsing, grid search, tables
  plots/     one figure style, paper figures, widgets
"""

__version__ = "0.1.0"
