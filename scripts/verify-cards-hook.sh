#!/usr/bin/env bash
# The pre-commit hook of .pre-commit-hooks.yaml: `resfam-cards verify` on every card template of the
# project being committed to (pre-commit runs this from that project's root). It uses the project's
# own environment, `.venv/bin/resfam-cards` (what scripts/install.sh makes), else `resfam-cards` on
# PATH. Arguments (the hook's `args`, e.g. --cache-dir DIR) go to `resfam-cards verify`.
set -euo pipefail
if [ -x .venv/bin/resfam-cards ]; then
    exec .venv/bin/resfam-cards verify --quiet "$@"
elif command -v resfam-cards >/dev/null; then
    exec resfam-cards verify --quiet "$@"
fi
echo "resfam-cards verify: no .venv/bin/resfam-cards in $(pwd), and no resfam-cards on PATH" >&2
echo "    hint: run bash scripts/install.sh, or install resfam (with torch==2.13.0) where pre-commit runs" >&2
exit 2
