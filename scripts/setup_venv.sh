#!/usr/bin/env bash
# Create the virtual environment of `make study` / `make test`: torch pinned first, then the project with its dev extra.
#
#   bash scripts/setup_venv.sh PYTHON VENV
#
# uv (installed from PyPI into the venv) installs the same pins as pip in about a third of the time here: parallel
# downloads and unpacking. pip's own configuration (find-links that hold the local CPU torch, constraints, index
# URLs) is handed to uv. Where uv cannot be installed or fails, pip does the install as before. LRMERGE_INSTALLER=pip
# forces pip.
#
# Bytecode is not compiled here: compiling all of site-packages (uv --compile-bytecode, 17K files) took 38-46 s of a
# 52-s set-up, and the study imports under 5K of them. This machine sets PYTHONDONTWRITEBYTECODE=1, under which every
# notebook kernel would compile its imports again (the study's: 23 s uncompiled, 10 s compiled); the Makefile
# unexports it, so each module is compiled once, by the first process that imports it.
set -euo pipefail
python=${1:?usage: setup_venv.sh PYTHON VENV}
venv=${2:?usage: setup_venv.sh PYTHON VENV}
torch_pin="torch==2.13.0"  # this exact spec takes the CPU build from local disk here (see the Makefile)

"$python" -m venv "$venv"
pip="$venv/bin/pip"

with_pip() {
    "$pip" install --quiet "$torch_pin"
    "$pip" install --quiet -e '.[dev]'
}

# pip's setting NAME (global, user, site or PIP_* environment), one value per line
pip_setting() {
    "$pip" config list 2>/dev/null | sed -n "s/^[^=]*\.$1='\(.*\)'$/\1/p" | tr ' ' '\n' | sed '/^$/d' | sort -u
}

with_uv() {
    local uv="$venv/bin/uv" args=() value
    "$pip" install --quiet uv || return 1
    while read -r value; do args+=(--find-links "$value"); done < <(pip_setting find-links)
    while read -r value; do args+=(--constraint "$value"); done < <(pip_setting constraint)
    while read -r value; do args+=(--index-url "$value"); done < <(pip_setting index-url | head -n 1)
    while read -r value; do  # file:// indexes that do not exist are skipped (pip only warns about them)
        if [[ $value != file://* || -d ${value#file://} ]]; then args+=(--extra-index-url "$value"); fi
    done < <(pip_setting extra-index-url)
    # one resolution; unsafe-best-match is pip's rule: the best version over every
    # index and find-links location (uv's default takes a package from the first index that has it)
    "$uv" pip install --quiet --python "$venv/bin/python" --index-strategy unsafe-best-match \
        "${args[@]}" "$torch_pin" -e '.[dev]'
}

if [[ ${LRMERGE_INSTALLER:-uv} == uv ]] && with_uv; then
    exit 0
fi
echo "setup_venv: installing with pip" >&2
with_pip
