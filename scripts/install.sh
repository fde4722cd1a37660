#!/usr/bin/env bash
# Set up .venv with resfam installed in editable mode, and the extra named: `cards` for the card engine
# and the site (MkDocs, Material, fvcore, Jinja), `test` for cards and the test tools; none for the zoo alone.
# Usage: bash scripts/install.sh [EXTRA]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch is pinned here: an unpinned torch pulls a multi-GB CUDA build
.venv/bin/pip install -q torch==2.13.0 -e ".${1:+[$1]}"
# An editable install leaves resfam's own bytecode to its first import; where bytecode is not written
# (PYTHONDONTWRITEBYTECODE), every build would compile the card engine anew (~0.1 s of a warm build).
.venv/bin/python -m compileall -q resfam
