"""The usage snippets as a new user runs them: resfam installed the way the README and the home page say
(`pip install "resfam[examples]"`, torch pinned to the CPU build the suite uses) into a fresh virtual
environment, then the snippets of a card run there as one script, offline, with a local checkpoint
standing in for the download, and the README's first example after them. Both must print the top-5
class names.

pip's own cache is kept (the wheels are not fetched again on the next run). A machine without the
package index skips the test, except in CI (`CI` set), where it must run.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import torch
from PIL import Image
from sitebuild import REPO, network_attempts, offline_env
from test_snippets import SNIPPETS, TEMPLATES, snippets_for

import resfam
from resfam.cards import card_context, parse_card
from resfam.cards.runner import page_blocks

pytestmark = pytest.mark.slow  # a fresh virtual environment with torch in it

CARD = REPO / "templates" / "models" / "resnet.md"  # its snippets make resnet18, the smallest model
INSTALL = ("torch==2.13.0", "{source}[examples]")  # the README's install, from this checkout


def fresh_venv(root: Path) -> Path:
    """A new virtual environment with resfam installed as a user installs it; its python."""
    source = root / "source"  # a copy: building in the repository would write into it
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "resfam", source / "resfam", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           *(part.format(source=source) for part in INSTALL)],
                          capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        reason = f"cannot install resfam into a fresh virtual environment:\n{done.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return python


def test_the_snippets_run_after_the_documented_install_and_print_labels(tmp_path):
    python = fresh_venv(tmp_path)
    model = card_context(parse_card(CARD))["model_name"]
    script = "\n".join(block.code for block in page_blocks(snippets_for(CARD), str(SNIPPETS), TEMPLATES))
    assert model == "resnet18" and f'resfam.create_model("{model}", pretrained=True)' in script
    work = tmp_path / "work"
    work.mkdir()
    (work / "snippets.py").write_text(script, encoding="utf-8")
    Image.effect_noise((320, 240), 64).convert("RGB").save(work / "image.jpg")  # the reader's photo
    torch.manual_seed(0)
    # the README's first example too, as a user pastes it
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (work / "readme.py").write_text(readme.split("## Use\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0],
                                    encoding="utf-8")
    assert 'create_model("resnet50d", pretrained=True)' in (work / "readme.py").read_text(encoding="utf-8")
    for model_id in (model, "resnet50d"):
        url = resfam.get_model_config(model_id).url  # where torch.hub looks first: $TORCH_HOME/hub/checkpoints
        checkpoint = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(urlsplit(url).path)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(resfam.create_model(model_id).state_dict(), checkpoint)

    env = offline_env(tmp_path / "guard", tmp_path / "cache")
    env["PYTHONPATH"] = str(tmp_path / "guard")  # the network guard only: resfam is the one installed
    env["TORCH_HOME"] = str(tmp_path / "torch")
    done = subprocess.run([str(python), "snippets.py"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert network_attempts(env) == []
    labels = resfam.imagenet_labels()
    printed = re.findall(r"^ *(.+?): +[\d.]+%$", done.stdout, re.MULTILINE)
    assert len(printed) == 5 and all(name in labels for name in printed), done.stdout
    assert "Feature channels: [64, 128, 256, 512] Feature reduction: [4, 8, 16, 32]" in done.stdout

    done = subprocess.run([str(python), "readme.py"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    listed, top5 = done.stdout.splitlines()
    assert "resnest50d" in listed
    top5 = ast.literal_eval(top5)
    assert len(top5) == 5 and all(name in labels for name in top5), done.stdout
