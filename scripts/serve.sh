#!/usr/bin/env bash
# Set up a virtual environment and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0 -e .
exec .venv/bin/python -m resfam "$@"
