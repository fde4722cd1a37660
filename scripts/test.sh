#!/usr/bin/env bash
# Set up a virtual environment with everything the tests need, then run the whole test suite.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# The timm zoo's tests (tests/test_timm_zoo.py) run the engine from a second venv: timm needs torchvision,
# which does not load beside .venv's torch (docs/architecture.md, "Zoos"). Made once (5.7 GB, ~7 min).
if [ ! -x .venv-timm/bin/resfam-cards ]; then bash scripts/install.sh timm; fi
# Debian packages the tests run: Chromium and chromedriver (tests/test_browser.py), shellcheck (actionlint
# runs it on the CI workflow's shell steps, tests/test_tooling.py). Installed when we can.
packages=()
if ! command -v chromium >/dev/null || [ ! -x /usr/bin/chromedriver ]; then packages+=(chromium chromium-driver); fi
if ! command -v shellcheck >/dev/null; then packages+=(shellcheck); fi
if [ "${#packages[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        echo "scripts/test.sh: not root, cannot install ${packages[*]}: the tests that need them will be skipped" \
             "(and fail where CI is set)" >&2
    fi
fi
# One test process per core, each test file in one of them (its module fixtures built once); `-n 0` runs
# everything in this process.
exec .venv/bin/python -m pytest -n auto --dist loadfile "$@"
