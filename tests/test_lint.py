"""The code is clean under the project's ruff configuration (pyproject.toml, [tool.ruff])."""
import subprocess
from pathlib import Path

from tools import executable

REPO = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    ruff = executable("ruff")
    done = subprocess.run([ruff, "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
