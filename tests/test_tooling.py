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
from sitebuild import REPO, offline_env, working_tree_files
from tools import executable, missing

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
def clone(tmp_path, shared_cache):
    """A local git clone of the repository with the working tree's state committed on top (changed,
    new and removed files: what a contributor's commit would hold, a new card and model among them),
    whose .pre-commit-config.yaml uses the repository's hook at the clone's HEAD: what a project that
    adds the hook has, with no network."""
    pre_commit = executable("pre-commit")
    project = tmp_path / "clone"
    git("clone", "--quiet", "--no-hardlinks", str(REPO), str(project), cwd=tmp_path)
    commit_working_tree(project)
    config = {"repos": [{"repo": str(project), "rev": git("rev-parse", "HEAD", cwd=project), "hooks": [
        {"id": "resfam-cards-verify", "args": ["--cache-dir", str(shared_cache)]}]}]}
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    git("add", ".pre-commit-config.yaml", cwd=project)  # pre-commit refuses an unstaged config
    env = offline_env(tmp_path / "guard", shared_cache)
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")

    def pre_commit_run(*args: str, path: str) -> subprocess.CompletedProcess:
        return run(pre_commit, "run", "--color", "never", *args, cwd=project, env=dict(env, PATH=path))

    return project, pre_commit_run


def commit_working_tree(project: Path) -> None:
    """Commit in the clone `project` the repository's working tree as it is: every file git does not
    ignore, with its content now; files removed from the working tree removed."""
    for name in working_tree_files():
        source, target = REPO / name, project / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif target.is_file():
            target.unlink()
    git("add", "--all", cwd=project)
    git("commit", "--quiet", "--allow-empty", "-m", "the working tree", cwd=project)


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


# ---------------------------------------------------------------------------------------------
# The CI workflow


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps() -> list[dict]:
    [job] = workflow()["jobs"].values()
    return job["steps"]


def lint_copy(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the workflow with one change, where the linters look for it."""
    text = WORKFLOW.read_text(encoding="utf-8")
    assert old in text
    copy = tmp_path / ".github" / "workflows" / "docs.yml"
    copy.parent.mkdir(parents=True)
    copy.write_text(text.replace(old, new), encoding="utf-8")
    return copy


def actionlint(path: Path) -> subprocess.CompletedProcess:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None and os.environ.get("CI"):
        missing("actionlint checks the workflow's shell steps with shellcheck; scripts/test.sh installs it")
    return run(executable("actionlint"), "-no-color", f"-shellcheck={shellcheck or ''}", str(path),
               cwd=path.parents[2])


def zizmor(path: Path) -> subprocess.CompletedProcess:
    return run(executable("zizmor"), "--offline", "--no-progress", "--color", "never", str(path),
               cwd=path.parents[2])


def test_actionlint_finds_nothing_in_the_workflow(tmp_path):
    done = actionlint(WORKFLOW)
    assert done.returncode == 0 and done.stdout == "", done.stdout
    # and it is looking: a step output that does not exist is reported
    broken = lint_copy(tmp_path, "steps.cache.outputs.cache-primary-key", "steps.cash.outputs.cache-primary-key")
    done = actionlint(broken)
    assert done.returncode == 1 and 'property "cash" is not defined' in done.stdout, done.stdout


def test_zizmor_finds_nothing_in_the_workflow(tmp_path):
    done = zizmor(WORKFLOW)
    assert done.returncode == 0 and "No findings to report" in done.stdout, done.stdout
    # and it is looking: an action pinned by a tag instead of a commit is reported
    broken = lint_copy(tmp_path, "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2",
                       "actions/checkout@v4")
    done = zizmor(broken)
    assert done.returncode != 0 and "unpinned-uses" in done.stdout, done.stdout


def test_the_workflow_tests_then_builds_with_the_measurement_cache_then_uploads_the_site():
    flow = workflow()
    assert set(flow[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key `on` as true
    assert flow["permissions"] == {} and next(iter(flow["jobs"].values()))["permissions"] == {"contents": "read"}
    order = [step.get("name") or step["uses"].split("@")[0] for step in steps()]
    assert order == ["actions/checkout", "Install resfam and the test tools (torch pinned to the CPU build)",
                     "Versions the measurements depend on", "Restore the measurement cache",
                     "Card findings on the pull request's lines", "Tests", "Build the site (verifies every card)",
                     "Save the measurement cache", "Upload the site"]
    by_name = {step.get("name"): step for step in steps()}
    assert by_name["Install resfam and the test tools (torch pinned to the CPU build)"]["run"] == \
        "bash scripts/install.sh test"
    assert "torch==2.13.0" in (REPO / "scripts" / "install.sh").read_text(encoding="utf-8")
    assert by_name["Tests"]["run"] == "bash .ci/run"
    assert by_name["Build the site (verifies every card)"]["run"] == ".venv/bin/mkdocs build --strict"
    assert "--format github" in by_name["Card findings on the pull request's lines"]["run"]

    restore, save = by_name["Restore the measurement cache"], by_name["Save the measurement cache"]
    key = restore["with"]["key"]
    for part in ("hashFiles('resfam/**')", "steps.versions.outputs.torch", "steps.versions.outputs.fvcore"):
        assert part in key
    assert restore["with"]["path"] == save["with"]["path"] == ".resfam-cache"  # the plugin's default cache
    assert save["with"]["key"] == "${{ steps.cache.outputs.cache-primary-key }}"
    assert by_name["Upload the site"]["uses"].startswith("actions/upload-pages-artifact@")
    assert by_name["Upload the site"]["with"]["path"] == "site"
    for step in steps():
        if "uses" in step:
            assert re.fullmatch(r"[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]  # pinned to a commit


def test_the_workflow_job_has_a_time_out_within_cis_time():
    """A hang ends the job, well within the 90 minutes CI has for a run, and no test hangs the suite."""
    [job] = workflow()["jobs"].values()
    assert 0 < job["timeout-minutes"] <= 90
    config = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^timeout = \d+$", config, re.MULTILINE) and '"pytest-timeout' in config


# ---------------------------------------------------------------------------------------------
# scripts/serve.sh


def test_serve_installs_only_when_what_the_install_depends_on_changed(tmp_path):
    """serve.sh runs the install once, and again only after pyproject.toml or the install script changed:
    a copy of the script, with an install script and an mkdocs that only say they ran."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "serve.sh", tmp_path / "scripts" / "serve.sh")
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "scripts" / "install.sh").write_text(
        "mkdir -p .venv/bin\nprintf '#!/bin/sh\\necho serving \"$@\"\\n' > .venv/bin/mkdocs\n"
        "chmod +x .venv/bin/mkdocs\necho installed\n", encoding="utf-8")

    def serve() -> str:
        done = run("bash", "scripts/serve.sh", "-a", "127.0.0.1:0", cwd=tmp_path)
        assert done.returncode == 0, done.stdout
        return done.stdout

    assert serve() == "installed\nserving serve -a 127.0.0.1:0\n"
    assert serve() == "serving serve -a 127.0.0.1:0\n"  # nothing changed: no install
    with open(tmp_path / "pyproject.toml", "a", encoding="utf-8") as project:
        project.write("# a new dependency\n")
    assert serve() == "installed\nserving serve -a 127.0.0.1:0\n"


# scripts/bench_build.py


def test_the_build_benchmark_samples_the_peak_memory_of_the_whole_process_tree():
    """The peak is sampled by a low-priority thread (reading Pss costs milliseconds a process); a child
    that holds 200 MB for a second is seen, through its parent."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_build", REPO / "scripts" / "bench_build.py")
    bench_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_build)
    holder = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
              "'import time; block = bytearray(200 * 2**20); time.sleep(1.5)'])")
    parent = subprocess.Popen([sys.executable, "-c", holder])
    peak = bench_build.PeakMemory(parent.pid)
    parent.wait()
    assert 200 * 2**20 <= peak.stop() < 1024 * 2**20
