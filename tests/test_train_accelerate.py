"""CT under `accelerate launch --multi_gpu --num_processes 2` on a CPU (a gloo group): the same tokens seen and checkpoints as one process
with the same global batch, and a held-out loss within a stated tolerance (the data order differs: each process
reads its own shard)."""

import math

import pytest

from lrmerge import pipeline
from lrmerge.eval.perplexity import heldout_perplexity
from lrmerge.runs import read_run_record
from lrmerge.train.launch import train

pytestmark = pytest.mark.slow
TOLERANCE = 0.05  # relative difference of held-out perplexity between the two runs


def test_two_processes_match_one(quick_world_source, tmp_path):
    source = quick_world_source
    common = dict(x_tokens=6_000, n_checkpoints=2, replay_share=0.25, lr=3e-3, embedding_lr_multiplier=1.0,
                  seq_len=64, seed=0)
    one = train(pipeline.ct_config(source, tmp_path / "one", batch_size=8, **common))
    two = train(pipeline.ct_config(source, tmp_path / "two", batch_size=4, **common), launcher="accelerate",
                num_processes=2, cpu=True)
    assert [p.name for p in one.checkpoints] == [p.name for p in two.checkpoints] and len(one.checkpoints) == 2
    for a, b in zip(one.checkpoints, two.checkpoints):
        ra, rb = read_run_record(a), read_run_record(b)
        assert ra["tokens_seen"] == rb["tokens_seen"] and ra["x_tokens_seen"] == rb["x_tokens_seen"]
        assert ra["step"] == rb["step"]
    assert read_run_record(two.checkpoints[-1])["plan"]["n_devices"] == 2
    heldout = source.heldout[source.lang]
    p1, p2 = (heldout_perplexity(r.checkpoints[-1], heldout, 50) for r in (one, two))
    base = heldout_perplexity(source.base, heldout, 50)
    assert p1 < base and p2 < base  # both learnt X
    assert abs(math.log(p1) - math.log(p2)) < TOLERANCE, (p1, p2)
