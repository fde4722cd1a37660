"""Fixtures shared by the test modules."""
import importlib.util
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def deterministic_fill():
    """The reference weight fill, `deterministic_fill(model, seed=0)` (tests/fixtures/reference_fill.py).

    Loaded by path: tests/ is not a package, and this works under any pytest import mode."""
    spec = importlib.util.spec_from_file_location("reference_fill", FIXTURES / "reference_fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.deterministic_fill
