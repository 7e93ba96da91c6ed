"""Do notebook kernels started at once by several processes collide? (the two-worker test suite's hang, session 7)

Several processes each execute a two-cell notebook with papermill over and over, as two pytest-xdist workers or
`lrmerge study --jobs 2` start kernels side by side; every execution has a time limit, so a kernel that never
answers shows up as a failure instead of a hang.

    python experiments/kernel_start_stress.py [--processes 3] [--runs 100] [--timeout 120]
        [--out runs/experiments/kernels]

Prints, per process, the executions that finished, the slowest one and the failures; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_notebook(path: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('out_dir = "."')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell("import os\nprint(os.getpid(), sum(range(1000)))")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(path))
    return path


def worker(notebook: Path, runs: int, timeout: int, tag: str) -> int:
    """Execute the notebook ``runs`` times; one line per execution ("ok SECONDS" or "failed ERROR")."""
    import papermill

    failures = 0
    for i in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            try:
                papermill.execute_notebook(str(notebook), f"{folder}/out.ipynb", parameters={"out_dir": folder},
                                           kernel_name="python3", progress_bar=False, cwd=folder,
                                           execution_timeout=timeout, start_timeout=timeout)
                print(f"{tag} {i} ok {time.perf_counter() - start:.2f}", flush=True)
            except Exception as error:  # a timeout or a dead kernel: count it, go on
                failures += 1
                print(f"{tag} {i} failed {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                      flush=True)
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--runs", type=int, default=100, help="executions per process")
    parser.add_argument("--timeout", type=int, default=120, help="seconds one execution may take")
    parser.add_argument("--out", default="runs/experiments/kernels")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag in ("processes", "runs", "timeout"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}: {getattr(args, flag)}; give 1 or more")
    notebook = Path(args.out) / "two_cells.ipynb"
    if args.worker is not None:
        return 1 if worker(notebook, args.runs, args.timeout, args.worker) else 0
    write_notebook(notebook)
    start = time.perf_counter()
    command = [sys.executable, __file__, "--runs", str(args.runs), "--timeout", str(args.timeout), "--out", args.out]
    procs = [subprocess.Popen(command + ["--worker", f"p{k}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for k in range(args.processes)]
    failed = 0
    for k, proc in enumerate(procs):
        lines = proc.communicate()[0].splitlines()
        times = [float(line.split()[-1]) for line in lines if " ok " in line]
        failures = [line for line in lines if " failed " in line]
        failed += len(failures) + (args.runs - len(times) - len(failures))
        print(f"process {k}: {len(times)} of {args.runs} finished, slowest {max(times, default=float('nan')):.2f} s, "
              f"{len(failures)} failed" + "".join(f"\n  {line}" for line in failures[:5]))
    print(f"{args.processes} processes x {args.runs} executions in {time.perf_counter() - start:.0f} s; "
          f"{failed} failed or missing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
