"""A contributor's path (docs/adding-a-model.md): a new model in a new family takes the registration line
the guide shows and one card template, nothing else. Done here in a temporary copy of the project: the Wide ResNet
`wide_resnet50_2` (a ResNet-50 whose bottlenecks are twice as wide) in the family `wide-resnet`."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sitebuild import REPO, mkdocs_build, offline_env

import resfam
from resfam.cards.verify import verify
from resfam.config import ModelConfig
from resfam.registry import register_model

pytestmark = pytest.mark.slow  # a copy of the project, measured and built

# The registration as docs/adding-a-model.md shows it (step 1's first code block), joined into one line
GUIDE = (REPO / "docs" / "adding-a-model.md").read_text(encoding="utf-8")
MODEL_LINE = " ".join(line.strip() for line in GUIDE.split("```python\n", 1)[1].split("```", 1)[0].splitlines()) + "\n"

# 68,883,240 parameters: the published count of wide_resnet50_2 (torchvision, timm), and its published
# accuracies. The other figures are resfam's own measurement, as `resfam-cards new` writes them.
CARD = """\
# Wide ResNet

A ResNet-50 whose bottlenecks are twice as wide inside: 128 base channels in the 3x3 convolutions of the
first stage instead of 64.

{% include 'code_snippets.md' %}

<!--
Type: model-index
Collections:
- Name: Wide ResNet
Models:
- Name: wide_resnet50_2
  In Collection: Wide ResNet
  Metadata:
    ID: wide_resnet50_2
    Layers: 50
    Parameters: 68883240
    FLOPs: 11426922496
    Activations: 14401512
    File Size: 275908223
    Architecture:
    - 1x1 Convolution
    - Batch Normalization
    - Bottleneck Residual Block
    - Convolution
    - Dense Connections
    - Global Average Pooling
    - Max Pooling
    - ReLU
    - Residual Connection
    Image Size: '224'
    Crop Pct: '0.875'
    Interpolation: bilinear
  Weights: https://download.pytorch.org/models/wide_resnet50_2-95faca4d.pth
  Code: resfam/models/resnet.py
  Results:
  - Task: Image Classification
    Dataset: ImageNet
    Metrics:
      Top 1 Accuracy: 78.47%
      Top 5 Accuracy: 94.09%
-->
"""


# A second family for the overview's order: a ResNet-D card for resnet18d alone, its figures left to
# `resfam-cards sync --fill` (step 3 of the guide)
SECOND_CARD = """\
# ResNet-D

{% include 'code_snippets.md' %}

<!--
Type: model-index
Collections:
- Name: ResNet-D
Models:
- Name: resnet18d
  In Collection: ResNet-D
  Metadata:
    ID: resnet18d
  Results:
  - Task: Image Classification
    Dataset: ImageNet
    Metrics:
      Top 1 Accuracy: 72.27%
      Top 5 Accuracy: 90.69%
-->
"""


@pytest.fixture(scope="module")
def new_family_project(tmp_path_factory):
    """The copy: the resfam package with the model line added; mkdocs.yml (its nav without the cards this
    copy lacks, so it lists the ResNet-D card and not the new one) and docs/ as they are; templates/ with
    the Wide ResNet card and the ResNet-D card, filled in by `resfam-cards sync --fill --write`."""
    root = tmp_path_factory.mktemp("new-family")
    package = root / "src" / "resfam"
    shutil.copytree(Path(resfam.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(package / "models" / "resnet.py", "a", encoding="utf-8") as model_file:
        model_file.write(MODEL_LINE)
    shutil.copytree(REPO / "docs", root / "docs")
    (root / "templates" / "models").mkdir(parents=True)
    shutil.copy(REPO / "templates" / "code_snippets.md", root / "templates")
    (root / "templates" / "models" / "wide-resnet.md").write_text(CARD, encoding="utf-8")
    (root / "templates" / "models" / "resnet-d.md").write_text(SECOND_CARD, encoding="utf-8")
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    for family in ("resnet", "resnext", "resnest", "res2net"):
        line = f"      - models/{family}.md\n"
        assert line in config
        config = config.replace(line, "")
    # the copy keeps two cards: the zoo's other models are left without one, and the build is told so
    others = [model for model in resfam.list_models() if model != "resnet18d"]
    assert "      without_card: []" in config
    config = config.replace("      without_card: []", f"      without_card: {others}")
    (root / "mkdocs.yml").write_text(config, encoding="utf-8")

    env = dict(offline_env(root / "guard", root / "cache"), PYTHONPATH=f"{root / 'src'}:{root / 'guard'}")
    done = subprocess.run([sys.executable, "-m", "resfam.cards.cli", "sync", "--fill", "--write",
                           "--cache-dir", str(root / "cache")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Parameters:" in (root / "templates" / "models" / "resnet-d.md").read_text(encoding="utf-8")
    assert (root / "templates" / "models" / "wide-resnet.md").read_text(encoding="utf-8") == CARD  # right as written
    return root


def test_the_new_model_s_card_verifies_with_the_measured_figures(new_family_project):
    report = verify(templates_dir=new_family_project / "templates", cache_dir=new_family_project / "cache",
                    package_dir=new_family_project / "src" / "resfam")
    assert report.ok and not report.drifts and not report.errors, [f.format() for f in report.findings]
    ok = {(f.model, f.field): f for f in report.findings if f.status == "ok"}
    assert ok["wide_resnet50_2", "Parameters"].measured == 68_883_240
    assert {field for model, field in ok if model == "wide_resnet50_2"} >= {
        "ID", "Parameters", "FLOPs", "Activations", "File Size", "Layers", "Image Size", "Crop Pct", "Interpolation",
        "Weights", "Architecture", "Code"}


def test_the_site_lists_the_new_family_after_the_families_of_the_nav(new_family_project, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(new_family_project / "src"))  # the copy's resfam, with the new model
    built = mkdocs_build(new_family_project / "mkdocs.yml", new_family_project / "build", new_family_project / "cache")
    assert built.returncode == 0, built.output  # strict: also the new page's place in the nav
    assert built.network_attempts == []
    card = (built.site / "models" / "wide-resnet" / "index.html").read_text(encoding="utf-8")
    # the comparison table shows it in millions; its mark says the exact count the code measures
    assert "68.88" in card and "code measures 68,883,240" in card
    home = (built.site / "index.html").read_text(encoding="utf-8")
    assert home.index('href="models/resnet-d/"') < home.index('href="models/wide-resnet/"')
    overview = (built.site / "models" / "index.html").read_text(encoding="utf-8")
    assert overview.index("resnet18d") < overview.index("wide_resnet50_2")

    # the plugin's `families` setting orders the overview instead; families it leaves out come last
    config = new_family_project / "mkdocs.yml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "      cache: true\n", "      cache: true\n      families: [wide-resnet]\n"), encoding="utf-8")
    built = mkdocs_build(config, new_family_project / "build-ordered", new_family_project / "cache")
    assert built.returncode == 0, built.output
    overview = (built.site / "models" / "index.html").read_text(encoding="utf-8")
    assert overview.index("wide_resnet50_2") < overview.index("resnet18d")


@pytest.mark.parametrize("family", ["Wide ResNet", "wide_resnet", "wide--resnet", "-wide", ""])
def test_a_family_that_is_not_a_slug_is_refused_with_the_registering_line(family):
    with pytest.raises(ValueError) as info:
        register_model("wide_resnet50_2", family, ModelConfig(url=""))
    line = next(entry.lineno + 1 for entry in info.traceback if entry.path == Path(__file__))  # the call above
    assert f"{__file__}:{line}: model 'wide_resnet50_2' registers under the family {family!r}" in str(info.value)
    assert "e.g. 'wide-resnet'" in str(info.value)
    assert not resfam.is_model("wide_resnet50_2")


def test_a_bad_family_in_a_model_file_names_its_line(new_family_project):
    """As the issue found it: the zoo does not import, naming the model line (not the registry)."""
    package = new_family_project / "src" / "resfam"
    broken = new_family_project / "broken" / "resfam"
    shutil.copytree(package, broken, ignore=shutil.ignore_patterns("__pycache__"))
    resnet = broken / "models" / "resnet.py"
    resnet.write_text(resnet.read_text(encoding="utf-8").replace('"wide-resnet"', '"Wide ResNet"'), encoding="utf-8")
    line = resnet.read_text(encoding="utf-8").splitlines().index(MODEL_LINE.strip().replace(
        '"wide-resnet"', '"Wide ResNet"')) + 1
    done = subprocess.run([sys.executable, "-c", "import resfam; resfam.list_models()"], cwd=new_family_project,
                          env=dict(os.environ, PYTHONPATH=str(broken.parent)),
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert f"{resnet}:{line}: model 'wide_resnet50_2' registers under the family 'Wide ResNet'" in done.stderr
