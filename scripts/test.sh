#!/usr/bin/env bash
# Set up a virtual environment with everything the tests need, then run the whole test suite.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch is pinned here: an unpinned torch pulls a multi-GB CUDA build
.venv/bin/pip install -q torch==2.13.0 -e '.[test]'
exec .venv/bin/python -m pytest "$@"
