"""Fixtures shared by the test modules."""
import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from card_entries import RESNEST14D, RESNET18, RESNET26, card_text, make_templates
from hypothesis import HealthCheck, settings
from sitebuild import REPO, Build, mkdocs_build

FIXTURES = Path(__file__).parent / "fixtures"

# Under pytest-xdist every core already runs a test process: torch's forward passes here take one thread
# each, since two OpenMP threads per process spin-wait against the other processes (docs/performance.md).
# Set before any test module imports torch; the measuring workers get their own count from the pool.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# A test marked slow (minutes: site builds, a browser, thousands of generated cards, measuring models that
# hang up to their limits) fails after this many seconds instead of the default time-out of pyproject.toml,
# unless it sets its own with @pytest.mark.timeout(SECONDS).
SLOW_TIMEOUT = 900


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("slow") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


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
    """The session's one measurement cache (one per test process under pytest-xdist), for every test
    module and every site build: each model is measured once. Filled here, first, with the small models of
    card_entries.py at 224 and 256 px, so that a test finds them cached whichever module runs first."""
    from resfam.cards.verify import verify

    cache = tmp_path_factory.getbasetemp() / "resfam-cache"
    templates = tmp_path_factory.mktemp("fill-cache")
    resnet18, resnet26, resnest14d = (entry.replace("Image Size: '224'", "Image Size: '256'")
                                      for entry in (RESNET18, RESNET26, RESNEST14D))
    make_templates(templates / "a", resnet=card_text(RESNET18, RESNET26), resnest=card_text(RESNEST14D))
    make_templates(templates / "b", resnet=card_text(resnet18, resnet26), resnest=card_text(resnest14d))
    # one run, one worker pool; the two image sizes of a model are cross-check errors here, and no matter
    verify(sorted(templates.glob("*/models/*.md")), cache_dir=cache)
    return cache


@pytest.fixture(scope="session")
def repository_site(tmp_path_factory, shared_cache) -> Build:
    """The repository's own site, built once per session (test_site.py and test_browser.py look at it)."""
    return mkdocs_build(REPO / "mkdocs.yml", tmp_path_factory.getbasetemp() / "repository-build", shared_cache)


@pytest.fixture
def cli(shared_cache, capsys):
    """Run `resfam-cards ARGS -q` in this process with the session's cache (or `cache`): (exit code, stdout,
    stderr)."""
    from resfam.cards.cli import main

    def run(*args: str, cache: Path | None = None) -> tuple[int, str, str]:
        code = main([*args, "--cache-dir", str(cache or shared_cache), "-q"])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the resfam package, to edit model files in (`verify(package_dir=...)` measures it)."""
    import resfam

    target = tmp_path / "src" / "resfam"
    shutil.copytree(Path(resfam.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def add_models(package_copy):
    """`add_models(NAME, SOURCE)`: the package copy with the model module `models/NAME.py` (its models
    registered with the zoo's); returns the copy."""
    def add(name: str, source: str) -> Path:
        (package_copy / "models" / f"{name}.py").write_text(source)
        init = package_copy / "models" / "__init__.py"
        init.write_text(init.read_text() + f"from . import {name}  # noqa: F401,E402\n")
        return package_copy

    return add


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
