"""Stand-in notebooks for the study-runner tests: a tagged `parameters` cell and one body cell."""

import nbformat
from nbformat.v4 import new_code_cell, new_notebook


def write_notebook(path, body, params="lang = 'x'\nout_dir = ''\nseed = 0\n"):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell(body)]
    nbformat.write(nb, str(path))
