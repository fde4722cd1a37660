"""The outside tools the integration tests run for real (pre-commit, actionlint, zizmor, ProperDocs,
jsonschema, huggingface_hub): all from the `test` extra, which scripts/test.sh installs. A missing one
skips its test, except in CI (`CI` set), where it fails it, as the browser test does."""
from __future__ import annotations

import importlib
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

INSTALL_HINT = "pip install -e '.[test]' (scripts/test.sh does)"


def missing(reason: str) -> None:
    """Skip the test, or fail it in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: this test must run)", pytrace=False)
    pytest.skip(reason)


def python_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"needs the Python package {name}: {INSTALL_HINT}")


def executable(name: str) -> str:
    """A command of the test environment: next to this Python (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which(name)
    if found is None:
        missing(f"needs the {name} command: {INSTALL_HINT}")
    return found
