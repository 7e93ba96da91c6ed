"""Training stages of the study (section 3.2, Appendix B): one module per stage, one shared engine.

  config.py  CTConfig / SFTConfig (pydantic; every bad field fails before training, naming the field)
  data.py    documents, packing with eos, deterministic X/replay blending, response-only SFT examples
  plan.py    plan_ct(config) -> Plan: tokens incl. replay, steps, checkpoint token counts, GPU hours (dry run)
  engine.py  Hugging Face Trainer: CPU, one GPU or `accelerate launch` (configs/accelerate/*.yaml); resumable;
             checkpoints written to a partial folder and renamed into place, each with lrmerge_run.json
  ct.py      run_ct: CT-X with English replay, checkpoints <out>/tokens-<12-digit count>/
  sft.py     run_sft: SFT-flan, CTSFT-X-flan, CTSFT-X-mt (loss on responses only, plain-LM replay)
  tiny.py    tiny tokenizer / Llama / corpora for tests and speed checks
  cli.py     `lrmerge train ct|sft|mt`
Machine translation of the SFT data lives in lrmerge/translate.py.
Nothing heavy is imported here: `import lrmerge.train.ct` etc.
"""
