#!/usr/bin/env bash
# Set up a virtual environment with everything the tests need, then run the whole test suite.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh test
# tests/test_browser.py drives Debian's Chromium through chromedriver: install them when we can
if ! command -v chromium >/dev/null || [ ! -x /usr/bin/chromedriver ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "scripts/test.sh: no chromium/chromium-driver and not root: the browser test will be skipped" \
             "(and fail where CI is set)" >&2
    fi
fi
exec .venv/bin/python -m pytest "$@"
