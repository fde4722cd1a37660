#!/usr/bin/env bash
# Set up a virtual environment and serve the documentation site, rebuilt as templates/ and resfam/ change.
# Usage: bash scripts/serve.sh [mkdocs serve arguments, e.g. -a 127.0.0.1:8000]
set -euo pipefail
cd "$(dirname "$0")/.."
# Installed once: again only when what the install depends on (pyproject.toml, the install script) changed
stamp=.venv/.resfam-installed-cards
wanted="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/mkdocs ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    bash scripts/install.sh cards
    echo "$wanted" > "$stamp"
fi
exec .venv/bin/mkdocs serve "$@"
