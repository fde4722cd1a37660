#!/usr/bin/env bash
# Set up a virtual environment and serve the documentation site, rebuilt as templates/ and resfam/ change.
# Usage: bash scripts/serve.sh [mkdocs serve arguments, e.g. -a 127.0.0.1:8000]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh cards
exec .venv/bin/mkdocs serve "$@"
