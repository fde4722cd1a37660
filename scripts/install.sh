#!/usr/bin/env bash
# Set up .venv with resfam installed in editable mode, and the extra named: `cards` for the card engine
# and the site (MkDocs, Material, fvcore, Jinja), `test` for cards and the test tools; none for the zoo alone.
# `timm` sets up a second venv, .venv-timm, for the timm zoo (see docs/architecture.md, "Zoos").
# Usage: bash scripts/install.sh [EXTRA | timm]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = timm ]; then
    # timm needs torchvision, and PyPI's torchvision does not load beside the CPU torch 2.13.0 of .venv;
    # this pair installs together (a CUDA build that runs on the CPU; the venv is 5.7 GB). torch is pinned first and
    # again with timm and resfam, so that no step replaces it with an unpinned one.
    python3 -m venv .venv-timm
    .venv-timm/bin/pip install -q --upgrade pip
    .venv-timm/bin/pip install -q torch==2.14.1 torchvision==0.29.1
    .venv-timm/bin/pip install -q torch==2.14.1 torchvision==0.29.1 timm==1.0.31 -e ".[timm]"
    .venv-timm/bin/python -m compileall -q resfam
    exit 0
fi
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch is pinned here: an unpinned torch pulls a multi-GB CUDA build
.venv/bin/pip install -q torch==2.13.0 -e ".${1:+[$1]}"
# An editable install leaves resfam's own bytecode to its first import; where bytecode is not written
# (PYTHONDONTWRITEBYTECODE), every build would compile the card engine anew (~0.1 s of a warm build).
.venv/bin/python -m compileall -q resfam
