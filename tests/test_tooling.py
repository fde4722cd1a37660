"""resfam where maintainers meet it: the pre-commit hook, run by the real pre-commit on a local clone of
the repository (offline), and the CI workflow, linted by actionlint and zizmor (offline)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sitebuild import REPO, offline_env, session_cache
from tools import executable, missing

HOOK_FILES = (".pre-commit-hooks.yaml", "scripts/verify-cards-hook.sh")
WORKFLOW = REPO / ".github" / "workflows" / "docs.yml"


def run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=1200)


def git(*args: str, cwd: Path) -> str:
    done = run(shutil.which("git") or missing("needs git"), *args, cwd=cwd,
               env=dict(os.environ, GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.invalid",
                        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.invalid"))
    assert done.returncode == 0, done.stdout
    return done.stdout.strip()


# ---------------------------------------------------------------------------------------------
# The pre-commit hook


@pytest.fixture
def clone(tmp_path, tmp_path_factory):
    """A local git clone of the repository (with the hook files as they are in the working tree),
    whose .pre-commit-config.yaml uses the repository's hook at the clone's HEAD: what a project that
    adds the hook has, with no network."""
    pre_commit = executable("pre-commit")
    project = tmp_path / "clone"
    git("clone", "--quiet", "--no-hardlinks", str(REPO), str(project), cwd=tmp_path)
    for name in HOOK_FILES:
        shutil.copy2(REPO / name, project / name)
    git("add", *HOOK_FILES, cwd=project)
    git("commit", "--quiet", "--allow-empty", "-m", "the hook as in the working tree", cwd=project)
    config = {"repos": [{"repo": str(project), "rev": git("rev-parse", "HEAD", cwd=project), "hooks": [
        {"id": "resfam-cards-verify", "args": ["--cache-dir", str(session_cache(tmp_path_factory))]}]}]}
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    git("add", ".pre-commit-config.yaml", cwd=project)  # pre-commit refuses an unstaged config
    env = offline_env(tmp_path / "guard", session_cache(tmp_path_factory))
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")

    def pre_commit_run(*args: str, path: str) -> subprocess.CompletedProcess:
        return run(pre_commit, "run", "--color", "never", *args, cwd=project, env=dict(env, PATH=path))

    return project, pre_commit_run


def test_pre_commit_hook_passes_on_clean_cards_and_fails_naming_a_drifted_one(clone):
    project, pre_commit_run = clone
    with_venv = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    done = pre_commit_run("--all-files", path=with_venv)  # resfam-cards found on PATH
    assert done.returncode == 0 and re.search(r"verify the model cards against the code\.+Passed", done.stdout), \
        done.stdout

    template = project / "templates" / "models" / "resnet.md"
    text = template.read_text(encoding="utf-8")
    line = text.splitlines().index("    Layers: 18") + 1
    template.write_text(text.replace("    Layers: 18\n", "    Layers: 19\n", 1), encoding="utf-8")
    # the project's own .venv this time, with resfam-cards nowhere on PATH
    (project / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    done = pre_commit_run("--files", "templates/models/resnet.md", path=os.defpath)
    assert done.returncode == 1, done.stdout
    assert re.search(r"verify the model cards against the code\.+Failed", done.stdout), done.stdout
    assert f"templates/models/resnet.md:{line}: drift: resnet18 Layers: card says 19, code measures 18" \
        in done.stdout
    assert "network access" not in done.stdout

    # a commit touching neither a card nor a model file does not run it
    done = pre_commit_run("--files", "README.md", path=os.defpath)
    assert done.returncode == 0 and "(no files to check)Skipped" in done.stdout, done.stdout


def test_the_hook_says_how_to_fix_a_missing_resfam_cards(clone):
    project, pre_commit_run = clone
    done = pre_commit_run("--all-files", path=os.defpath)
    assert done.returncode == 1
    assert "no .venv/bin/resfam-cards" in done.stdout and "hint: run bash scripts/install.sh" in done.stdout
