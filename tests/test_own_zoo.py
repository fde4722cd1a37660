"""docs/own-zoo.md, "Verified cards for your own zoo", followed step by step as a user would, and the
finished project of that page, examples/own-zoo/: its strict build, and the lies it catches.

The page's files (the code blocks with a `title`) are written into an empty project folder and its
`bash` blocks run there in order, with the card engine of this checkout on PATH, offline: each must
succeed, and the last is the strict build.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sitebuild import network_attempts, offline_env

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "own-zoo.md"
EXAMPLE = REPO / "examples" / "own-zoo"
ZOO = "tinyzoo.zoo:ZOO"
BIN = Path(sys.executable).parent  # the checkout's venv: resfam-cards and mkdocs

pytestmark = pytest.mark.slow

_BLOCK = re.compile(r'^(`{3,})(\w+)(?: title="([^"]+)")?\n(.*?)^\1\n', re.MULTILINE | re.DOTALL)


def page_blocks() -> list[tuple[str, str | None, str]]:
    """(language, title, text) of every fenced block of the page, in order."""
    return [match.groups()[1:] for match in _BLOCK.finditer(PAGE.read_text(encoding="utf-8"))]


def run(command: str | list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    shell = ["bash", "-euo", "pipefail", "-c", command] if isinstance(command, str) else command
    return subprocess.run(shell, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)


def user_env(work: Path) -> dict[str, str]:
    env = offline_env(work / "guard", work / "unused-cache")
    env.pop("RESFAM_CACHE_DIR")
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    return env


def test_the_page_quotes_the_example_project():
    """Every file the page shows is the example's file, byte for byte: the page cannot drift from code
    that is built and tested."""
    files = {title: text for _, title, text in page_blocks() if title}
    assert {"tinyzoo/__init__.py", "tinyzoo/models.py", "tinyzoo/zoo.py", "mkdocs.yml", "docs/index.md",
            "templates/models/tinynet.md", "templates/models/tinygate.md"} <= set(files)
    for title, text in files.items():
        assert (EXAMPLE / title).read_text(encoding="utf-8") == text, title


def test_following_the_page_gives_a_green_strict_build(tmp_path):
    project = tmp_path / "my-project"
    project.mkdir()
    env = user_env(tmp_path)
    steps = 0
    for language, title, text in page_blocks():
        if title:
            (project / title).parent.mkdir(parents=True, exist_ok=True)
            (project / title).write_text(text, encoding="utf-8")
        elif language == "bash":
            done = run(text, project, env)
            assert done.returncode == 0, f"step {text!r} failed:\n{done.stdout}"
            steps += 1
    assert steps == 3  # the cards, the check, the build
    cards = sorted(path.name for path in (project / "templates" / "models").glob("*.md"))
    assert cards == ["tinygate.md", "tinynet.md"]
    assert "Channel Gate" in (project / "templates" / "models" / "tinygate.md").read_text(encoding="utf-8")
    data = json.loads((project / "site" / "models.json").read_text(encoding="utf-8"))
    assert {model["id"] for model in data["models"]} == {"tinynet4", "tinynet6", "tinygate6"}
    statuses = {figure["status"] for model in data["models"] for figure in model["figures"].values()}
    assert statuses <= {"verified", "measured", "reported"} and "verified" in statuses  # measured: stage outputs
    assert (project / "site" / "measurement" / "index.html").is_file()  # the engine's measurement page
    assert network_attempts(env) == []


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A copy of examples/own-zoo (its cache shared by the tests below)."""
    work = tmp_path_factory.mktemp("own-zoo")
    project = work / "own-zoo"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".resfam-cache", "__pycache__", "site"))
    return project, user_env(work)


def test_the_example_builds_strict(example):
    project, env = example
    done = run(["mkdocs", "build", "--strict"], project, env)
    assert done.returncode == 0, done.stdout
    page = (project / "site" / "models" / "tinygate" / "index.html").read_text(encoding="utf-8")
    assert "Channel Gate" in page and "tinyzoo/zoo.py" in page


@pytest.mark.parametrize(("old", "new", "message"), [
    ("    Parameters: 35962\n", "    Parameters: 36962\n",
     "tinynet6 Parameters: card says 36,962, code measures 35,962"),
    ("    - Channel Gate\n", "    - Channel Gates\n", "'Channel Gates' is not an architecture tag"),
    ("  Code: tinyzoo/zoo.py\n", "  Code: tinyzoo/models.py\n",
     "Code: card says tinyzoo/models.py, the model is registered at tinyzoo/zoo.py"),
])
def test_the_example_catches_a_lie(example, old, new, message):
    project, env = example
    card = next(path for path in (project / "templates" / "models").glob("*.md") if old in path.read_text())
    text = card.read_text(encoding="utf-8")
    card.write_text(text.replace(old, new, 1), encoding="utf-8")
    try:
        done = run(["resfam-cards", "verify", "--zoo", ZOO, "-q"], project, env)
    finally:
        card.write_text(text, encoding="utf-8")
    assert done.returncode in (1, 2), done.stdout
    assert message in done.stdout


def test_a_model_changed_in_the_zoo_is_a_drift_that_sync_writes(example):
    project, env = example
    zoo = project / "tinyzoo" / "zoo.py"
    text = zoo.read_text(encoding="utf-8")
    zoo.write_text(text.replace("functools.partial(TinyNet, depth=4)", "functools.partial(TinyNet, depth=4, width=8)"),
                   encoding="utf-8")
    card = project / "templates" / "models" / "tinynet.md"
    card_text = card.read_text(encoding="utf-8")
    try:
        done = run(["resfam-cards", "verify", "--zoo", ZOO, "-q"], project, env)
        assert done.returncode == 1 and "tinynet4 Parameters: card says 7,802" in done.stdout, done.stdout
        done = run(["resfam-cards", "sync", "--zoo", ZOO, "--write", "-q"], project, env)
        assert done.returncode == 0, done.stdout
        done = run(["resfam-cards", "verify", "--zoo", ZOO, "-q"], project, env)
        assert done.returncode == 0, done.stdout
    finally:
        zoo.write_text(text, encoding="utf-8")
        card.write_text(card_text, encoding="utf-8")
