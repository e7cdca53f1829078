#!/usr/bin/env bash
# Every GPU measurement of issue 22 in one run (docs/gpu.md): benchmarks/gpu.py with src/ on PYTHONPATH, on
# whatever python3 has torch (no `make venv`, no DVC needed). PYTHON=... picks another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" benchmarks/gpu.py "$@"
