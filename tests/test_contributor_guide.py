"""docs/adding-a-model.md, followed literally in a copy of the project (its working tree, as a contributor's
clone would hold it): register `wide_resnet50_2`, `resfam-cards new`, finish the card as the guide says,
verify strictly, build strictly, then run the tests the guide tells a contributor to run. They pass, but
for the reference test, which fails saying what to do.

The copy uses this test's environment (`.venv` links to it) with the copy's own resfam first on PYTHONPATH,
as a contributor's editable install would import theirs; the network is cut off (sitebuild.offline_env)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sitebuild import REPO, offline_env, working_tree_files

pytestmark = pytest.mark.slow  # a copy of the project: a model measured, a site built, tests run

GUIDE = (REPO / "docs" / "adding-a-model.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    """The guide's code blocks in `language`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", GUIDE, re.MULTILINE | re.DOTALL)


def command(containing: str) -> str:
    """The one command of the guide's shell blocks that contains `containing` (its comment dropped)."""
    [found] = [line.split("  #")[0].strip() for block in blocks("bash") for line in block.splitlines()
               if containing in line]
    return found


# What the card's own text says where `resfam-cards new` left placeholders: the family, the recipe and
# the paper (Zagoruyko and Komodakis, Wide Residual Networks, BMVC 2016)
OWN_TEXT = {
    "what is new": "A Wide ResNet is a ResNet whose bottlenecks are wider inside: `wide_resnet50_2` is a "
                   "ResNet-50 with twice the channels in its 3x3 convolutions.",
    "training recipe": "Trained on ImageNet with the torchvision reference recipe.",
    "BibTeX": "@inproceedings{zagoruyko2016wide,\n  title={Wide Residual Networks},\n"
              "  author={Sergey Zagoruyko and Nikos Komodakis},\n  booktitle={BMVC},\n  year={2016}\n}",
}


@pytest.fixture(scope="module")
def contributor(tmp_path_factory, shared_cache):
    """The copy, and a runner of the guide's commands in it: (exit code, stdout + stderr)."""
    root = tmp_path_factory.mktemp("contributor") / "resfam"
    for name in working_tree_files():
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    (root / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    cache = root / ".resfam-cache"  # where the commands keep it; warm where the project's own cache is
    for warm in (shared_cache, REPO / ".resfam-cache"):
        if warm.is_dir():
            shutil.copytree(warm, cache, dirs_exist_ok=True)
    env = offline_env(root.parent / "guard", cache)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env["PYTHONPATH"]])

    def run(line: str) -> tuple[int, str]:
        done = subprocess.run(["bash", "-c", line], cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=1800)
        return done.returncode, done.stdout

    return root, run


def test_the_guide_ends_in_a_green_strict_build_and_only_the_reference_test_failing(contributor):
    root, run = contributor

    # 1. Register the model: the line of the guide at the end of resnet.py; the name resolves
    with open(root / "resfam" / "models" / "resnet.py", "a", encoding="utf-8") as models:
        models.write(blocks("python")[0])
    code, out = run(command("python -m resfam"))
    assert code == 0 and "wide_resnet50_2" in out, out

    # 2. The card: `new`, then finished as the guide says (the placeholders, the Results it shows)
    code, out = run(command("resfam-cards new"))
    assert code == 0, out
    card = root / "templates" / "models" / "wide-resnet.md"
    text = card.read_text(encoding="utf-8")
    assert text.startswith("# Wide ResNet\n") and "- Name: Wide ResNet\n" in text
    code, out = run(".venv/bin/resfam-cards verify --strict")  # straight from `new`: not publishable
    assert code == 1 and out.count("placeholder left in the card") == 3 and "states no accuracy" in out, out
    assert out.splitlines()[-1].startswith("FAILED: ")
    for line in [line for line in text.splitlines() if line.startswith("TODO:")]:
        [own] = [own for key, own in OWN_TEXT.items() if key in line]
        text = text.replace(line, own)
    [results] = [block for block in blocks("yaml") if "wide_resnet50_2" not in block and "78.47%" in block]
    card.write_text(text.replace("\n-->\n", "\n" + results + "-->\n"), encoding="utf-8")

    # 3. and 4. Verify strictly, build strictly: the new model was the only one measured
    code, out = run(command("resfam-cards verify --strict"))
    assert code == 0 and out.startswith("ok: "), out
    code, out = run(command("mkdocs build --strict"))
    assert code == 0, out
    overview = (root / "site" / "models" / "index.html").read_text(encoding="utf-8")
    assert "Wide ResNet" in overview and ">wide-resnet<" not in overview  # the table and the chart's legend
    home = (root / "site" / "index.html").read_text(encoding="utf-8")
    link = home[home.index('href="models/wide-resnet/"'):]
    assert "Wide ResNet" in link[:link.index("</a>")]  # the navigation's entry

    # 5. The tests the guide names: only the reference test fails, saying what to do
    code, out = run(command("pytest"))
    assert code == 1, out
    assert re.findall(r"^FAILED (\S+)", out, re.MULTILINE) == [
        "tests/test_zoo.py::test_registered_ids_are_the_reference_ids"], out
    assert "make_timm_reference.py wide_resnet50_2" in out and re.search(r"\b[1-9]\d* passed", out), out
