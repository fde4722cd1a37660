"""The timm zoo, for real: examples/timm/ (20 timm models in 6 families) built with `mkdocs build --strict`
against the installed timm, and each kind of lie a card can tell caught.

timm needs torchvision, which does not load beside the CPU torch of .venv, so the engine runs from the
second venv that `bash scripts/install.sh timm` makes, .venv-timm (torch 2.14.1, torchvision 0.29.1,
timm 1.0.31, resfam editable), in subprocesses. Without it the tests are skipped, except in CI (`CI`
set), where they must run (scripts/test.sh makes it).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sitebuild import network_attempts, offline_env

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "timm"
TIMM_BIN = REPO / ".venv-timm" / "bin"
CODE_URL = "https://github.com/huggingface/pytorch-image-models/blob/v{version}/{path}#L{line}"
OPTIONS = ["--zoo", "timm", "--vocabulary", "architecture-tags.yml", "--code-url", CODE_URL, "-q"]

pytestmark = pytest.mark.slow


def timm_bin() -> Path:
    if not (TIMM_BIN / "resfam-cards").is_file() or not (TIMM_BIN / "mkdocs").is_file():
        reason = ".venv-timm is missing: run bash scripts/install.sh timm"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set: the timm tests must run)", pytrace=False)
        pytest.skip(reason)
    return TIMM_BIN


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=1800)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, str], subprocess.CompletedProcess[str]]:
    """A copy of examples/timm built strict, offline, from .venv-timm (its cache kept for the tests below)."""
    binaries = timm_bin()
    work = tmp_path_factory.mktemp("timm")
    project = work / "timm"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".resfam-cache", "__pycache__", "site"))
    env = offline_env(work / "guard", work / "unused")
    env.pop("RESFAM_CACHE_DIR")
    env["PATH"] = os.pathsep.join([str(binaries), env.get("PATH", "")])
    done = run([str(binaries / "mkdocs"), "build", "--strict"], project, env)
    return project, env, done


def test_the_timm_example_builds_strict(built):
    project, env, done = built
    assert done.returncode == 0, done.stdout
    assert network_attempts(env) == []
    data = json.loads((project / "site" / "models.json").read_text(encoding="utf-8"))
    models = {model["id"]: model for model in data["models"]}
    assert len(models) == 20
    assert {model["family"] for model in models.values()} == {
        "efficientnet", "mobilenetv3", "regnet", "densenet", "convnext", "vision-transformer"}
    for model in models.values():
        assert model["measured_with"]["timm"] == "1.0.31"
        for name in ("Parameters", "FLOPs", "Activations", "File Size", "Architecture", "Code", "Image Size"):
            assert model["figures"][name]["status"] == "verified", (model["id"], name)
    # timm gives no nominal depth: a Layers the card states is shown as not checked, never as verified
    assert models["densenet121"]["figures"]["Layers"]["status"] == "not checked"
    assert "Squeeze-and-Excitation" in models["efficientnet_b0"]["figures"]["Architecture"]["value"]
    assert models["efficientnet_b0"]["figures"]["Code"]["value"] == \
        "https://github.com/huggingface/pytorch-image-models/blob/v1.0.31/timm/models/efficientnet.py#L2106"
    page = (project / "site" / "models" / "densenet" / "index.html").read_text(encoding="utf-8")
    assert "not checked with this zoo" in page and "timm.create_model(ID)" in page
    # each card's `timm.create_model(..., pretrained=True)` ran, offline, on a stand-in of the Hub's file
    for family in ("efficientnet", "mobilenetv3", "regnet", "densenet", "convnext", "vision-transformer"):
        page = (project / "site" / "models" / family / "index.html").read_text(encoding="utf-8")
        assert "ran in this build" in page, family
    # timm's published accuracy (results/results-imagenet.csv), carried over as reported
    assert models["vit_base_patch16_224"]["figures"]["Top 1 Accuracy"]["value"] == 85.108


@pytest.mark.parametrize(("card", "old", "new", "message"), [
    ("regnet.md", "    Parameters: 3162996\n", "    Parameters: 3262996\n",
     "regnety_002 Parameters: card says 3,262,996, code measures 3,162,996"),
    ("convnext.md", "    - ConvNeXt Block\n", "    - Inverted Residual Block\n",
     "the network has no Inverted Residual Block; the list leaves out ConvNeXt Block"),
    ("efficientnet.md", "efficientnet.py#L2106'", "efficientnet.py#L2105'",
     "efficientnet.py#L2105, the model is registered at https://github.com/huggingface/pytorch-image-models/"
     "blob/v1.0.31/timm/models/efficientnet.py#L2106"),
])
def test_a_lie_on_a_timm_card_is_caught(built, card, old, new, message):
    project, env, _ = built
    path = project / "templates" / "models" / card
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    try:
        done = run([str(TIMM_BIN / "resfam-cards"), "verify", *OPTIONS], project, env)
    finally:
        path.write_text(text, encoding="utf-8")
    assert done.returncode == 1, done.stdout
    assert message in done.stdout


def test_coverage_asks_a_card_only_of_the_selected_ids(built):
    project, env, _ = built
    done = run([str(TIMM_BIN / "resfam-cards"), "verify", *OPTIONS, "--coverage", "efficientnet_b[0-4]"], project, env)
    assert done.returncode == 1, done.stdout
    drifts = [line for line in done.stdout.splitlines() if "is registered but on no card" in line]
    assert len(drifts) == 1 and "efficientnet_b4 (family efficientnet)" in drifts[0]


def test_without_coverage_patterns_the_timm_zoo_asks_no_card_of_its_other_models(built):
    project, env, _ = built
    done = run([str(TIMM_BIN / "resfam-cards"), "verify", *OPTIONS], project, env)
    assert done.returncode == 0, done.stdout
    assert "is registered but on no card" not in done.stdout


def test_an_old_timm_name_is_resolved_and_the_card_told_which_to_write(built):
    project, env, _ = built
    path = project / "templates" / "models" / "convnext.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("    ID: convnext_atto\n", "    ID: convnext_tiny_in22ft1k\n", 1), encoding="utf-8")
    try:
        done = run([str(TIMM_BIN / "resfam-cards"), "verify", *OPTIONS, "templates/models/convnext.md"], project, env)
    finally:
        path.write_text(text, encoding="utf-8")
    assert done.returncode == 2, done.stdout
    assert "'convnext_tiny_in22ft1k' is an old name: the timm zoo builds 'convnext_tiny.fb_in22k_ft_in1k'" \
        in done.stdout
    assert "hint: write ID: convnext_tiny (its weights tag: fb_in22k_ft_in1k)" in done.stdout


def test_the_hub_export_of_timm_cards_names_timm(built, tmp_path):
    project, env, _ = built
    done = run([str(TIMM_BIN / "resfam-cards"), "export", "hub", str(tmp_path / "hub"), "templates/models/densenet.md",
                *OPTIONS], project, env)
    assert done.returncode == 0, done.stdout
    readme = (tmp_path / "hub" / "densenet121" / "README.md").read_text(encoding="utf-8")
    assert "library_name: timm" in readme and 'timm.create_model("densenet121", pretrained=True)' in readme
    assert json.loads((tmp_path / "hub" / "densenet121" / "config.json").read_text())["architecture"] == "densenet121"
