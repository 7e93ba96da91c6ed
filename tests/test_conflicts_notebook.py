"""The explorer notebook: committed clean, one parameters cell, and it runs end to end under papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "06_sign_conflicts.ipynb"


def test_notebook_is_committed_clean_with_one_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    from papermill.inspection import inspect_notebook

    params = inspect_notebook(str(NOTEBOOK))  # every line parses as a flat scalar with a comment
    assert {"base", "sft", "ct", "density_sft", "density_ct", "slack", "out_dir"} <= set(params)
    assert all(p["help"] for p in params.values())
    assert nb.cells[0].cell_type == "markdown" and "synthetic" in nb.cells[0].source.lower()


@pytest.mark.slow
def test_notebook_runs_on_synthetic_checkpoints(tmp_path, monkeypatch):
    import papermill

    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("LRMERGE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "executed.ipynb"), kernel_name="python3",
                               parameters={"synthetic_checkpoints": 2, "out_dir": str(out), "slack": 0.04,
                                           "device": "cpu"}, progress_bar=False)
    from lrmerge.conflicts.aggregate import aggregate
    from lrmerge.conflicts.series import read_table, run_record_path

    table = read_table(out / "sign_conflicts.csv")
    per = aggregate(table, "checkpoint")
    assert list(per["ct_tokens"]) == [1_000_000, 2_000_000]
    assert (per["slack_restored"] > 0).all()  # slack 0.04 reached the ledger
    resolved = json.loads((out / "parameters.json").read_text())
    assert resolved["slack"] == 0.04 and len(resolved["ct"]) == 2 and resolved["base"].endswith("synthetic/base")
    assert json.loads(run_record_path(out / "sign_conflicts.csv").read_text())["config"]["density_sft"] == 0.2
    assert len(list((out / "figures").glob("*.png"))) == 3
    executed = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    widget_outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
                      if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget_outputs  # the explorer was built in the kernel
