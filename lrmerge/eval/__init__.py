"""Evaluation: tasks as data, batched generation and log-likelihood, MLiC-Eval answer parsing, unparsable outputs."""
