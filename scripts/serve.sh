#!/usr/bin/env bash
# Set up a virtual environment and serve the documentation site, rebuilt as templates/ and resfam/ change.
# Usage: bash scripts/serve.sh [mkdocs serve arguments, e.g. -a 127.0.0.1:8000]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch is pinned here: an unpinned torch pulls a multi-GB CUDA build
.venv/bin/pip install -q torch==2.13.0 -e .
exec .venv/bin/mkdocs serve "$@"
