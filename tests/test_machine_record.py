"""Every run record and stage record names the machine it was computed on, and the README's results say it: the
demo's weights are bit-identical per seed only on CPUs whose torch kernels round the same way."""

import json
import os

import pandas as pd
import torch

from lrmerge import report
from lrmerge.runs import describe_machine, machine_facts, read_run_record, write_run_record
from lrmerge.study_folders import COMPLETE


def test_run_record_names_the_cpu_and_the_kernels_torch_uses_there(tmp_path):
    write_run_record(tmp_path, {"lr": 1e-3}, seed=0)
    machine = read_run_record(tmp_path)["machine"]
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert machine["logical_cpus"] == os.cpu_count() and machine["cpu"]
    assert machine["torch_cpu_capability"] in describe_machine(machine)


def _stage(root, lang, stage, machine):
    folder = root / lang / stage
    folder.mkdir(parents=True)
    record = {"stage": stage, "lang": lang} | ({"machine": machine} if machine else {})
    (folder / COMPLETE).write_text(json.dumps(record))


def test_results_say_which_machines_computed_the_stages(tmp_path):
    here = machine_facts()
    other = {"cpu": "Some Xeon", "torch_cpu_capability": "AVX512", "logical_cpus": 2}
    _stage(tmp_path, "tbx", "data", here)
    _stage(tmp_path, "tbx", "sft", here)
    assert report.run_machines(tmp_path) == [describe_machine(here)]
    table3 = pd.DataFrame({"tbx": [20.0]}, index=pd.Index(["BASE"], name="model"))
    assert describe_machine(here) in report.results_markdown({"table3": table3}, tmp_path, [], "demo")
    _stage(tmp_path, "mnx", "sft", other)
    _stage(tmp_path, "mnx", "data", None)
    assert sorted(report.run_machines(tmp_path)) == sorted([f"{describe_machine(here)} (2 stages)",
                                                            f"{describe_machine(other)} (1 stage)",
                                                            "a machine not recorded (1 stage)"])
