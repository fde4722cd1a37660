"""Fixtures shared by the test modules."""
import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def deterministic_fill():
    """The reference weight fill, `deterministic_fill(model, seed=0)` (tests/fixtures/reference_fill.py).

    Loaded by path: tests/ is not a package, and this works under any pytest import mode."""
    spec = importlib.util.spec_from_file_location("reference_fill", FIXTURES / "reference_fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.deterministic_fill


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One cache for the whole session, shared by every test module: small models are
    measured once."""
    return tmp_path_factory.getbasetemp() / "shared-resfam-cache"


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the resfam package, to edit model files in (`verify(package_dir=...)` measures it)."""
    import resfam

    target = tmp_path / "src" / "resfam"
    shutil.copytree(Path(resfam.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


# Hypothesis profiles, chosen with HYPOTHESIS_PROFILE (default: "default"). The property tests
# (test_sync_properties.py) scale their example counts from max_examples: in the default and ci profiles,
# over 1000 generated cards each for the parser and sync properties. ci replays the same examples
# every run; quick is for a tight edit-test loop; thorough for a night.
_PROPERTY_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("default", max_examples=1000, **_PROPERTY_SETTINGS)
settings.register_profile("ci", max_examples=1000, derandomize=True, print_blob=True, **_PROPERTY_SETTINGS)
settings.register_profile("quick", max_examples=100, **_PROPERTY_SETTINGS)
settings.register_profile("thorough", max_examples=10_000, **_PROPERTY_SETTINGS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
