"""`resfam-cards pages DOCS`: the site's generated files written into a docs folder for a builder without
the MkDocs plugin. Only files with resfam's mark are replaced or removed, nothing is written on a drift
or a file in the way, the same cards give the same bytes, and --watch follows the templates."""
from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from card_entries import RESNEST14D, RESNET18, RESNET26, card_text, make_templates
from sitebuild import offline_env

import resfam
from resfam.cards.site import GENERATED_MARK, SiteFile, is_generated, page_url, relative_url, write_site_files

CARDS = ("resnet18", "resnet26", "resnest14d")
HAND_WRITTEN = {"index.md": "# Home\n\nWritten by hand.\n",
                "models/notes.md": "# Notes\n\nBy hand, next to the cards.\n",
                "models.schema.json": '{"title": "by hand"}\n'}


@pytest.fixture
def project(tmp_path):
    """A site with two cards of the cached small models, a config whose nav orders them, and hand-written
    pages in the docs folder (one among the card pages)."""
    root = tmp_path / "project"
    make_templates(root / "templates", resnet=card_text(RESNET18, RESNET26), resnest=card_text(RESNEST14D))
    others = [model for model in resfam.list_models() if model not in CARDS]
    (root / "mkdocs.yml").write_text(
        "site_name: test\nnav:\n  - index.md\n  - Models:\n      - models/index.md\n      - models/resnest.md\n"
        "      - models/resnet.md\nplugins:\n  - resfam:\n      source_url: https://example.org/blob/main/\n"
        f"      without_card: [{', '.join(others)}]\n", encoding="utf-8")
    for path, text in HAND_WRITTEN.items():
        (root / "docs" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / path).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def pages(cli, project, monkeypatch):
    """Run `resfam-cards pages ARGS` in the project, with the session's cache."""
    monkeypatch.chdir(project)
    return lambda *args: cli("pages", *args)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_the_pages_are_written_marked_and_the_hand_written_ones_left_alone(pages, project):
    code, _, err = pages()  # the docs folder and the settings of mkdocs.yml
    assert code == 0, err
    docs = project / "docs"
    files = snapshot(docs)
    generated = {"models/index.md", "models/resnet.md", "models/resnest.md", "models.json",
                 ".resfam/table-of-fields.md", ".resfam/architecture-tags.md", ".resfam/models.json.sha256"}
    assert set(files) == generated | set(HAND_WRITTEN)
    for path, text in HAND_WRITTEN.items():
        assert files[path] == text.encode()
    for path in generated - {"models.json", ".resfam/models.json.sha256"}:
        assert is_generated(docs / path, docs), path
        assert GENERATED_MARK in files[path].decode().splitlines()[:5]
    assert files["models/index.md"].startswith(b"---\nhide:")  # the mark goes after the front matter
    digest = hashlib.sha256(files["models.json"]).hexdigest()
    assert files[".resfam/models.json.sha256"].decode() == f"{digest}  models.json\n"
    # the settings of mkdocs.yml: the nav's order, the plugin's source_url
    overview = files["models/index.md"].decode()
    assert overview.index("(resnest.md#resnest14d)") < overview.index("(resnet.md#resnet18)")
    assert "[resfam/models/resnet.py](https://example.org/blob/main/resfam/models/resnet.py)" in \
        files["models/resnet.md"].decode()
    assert '"card_url": "models/resnet/#resnet26"' in files["models.json"].decode()
    assert "| Params (M)" in overview and "✓ verified" in files["models/resnest.md"].decode()

    # the same cards give the same bytes, and nothing is rewritten
    code, _, err = pages()
    assert code == 0 and "docs: 0 file(s) written, 6 unchanged, 0 removed" in err
    assert snapshot(docs) == files


def test_pages_of_a_card_no_longer_there_are_removed(pages, project):
    assert pages()[0] == 0
    (project / "templates" / "models" / "resnest.md").unlink()
    nav = project / "mkdocs.yml"
    nav.write_text(nav.read_text(encoding="utf-8").replace(
        "without_card: [", "without_card: [resnest14d, "), encoding="utf-8")
    code, _, err = pages()
    assert code == 0, err
    assert "removed models/resnest.md" in err
    files = snapshot(project / "docs")
    assert "models/resnest.md" not in files and "models/resnet.md" in files
    assert all(files[path] == text.encode() for path, text in HAND_WRITTEN.items())


def test_a_file_in_the_way_is_refused_and_nothing_is_written(pages, project):
    docs = project / "docs"
    (docs / "models" / "resnet.md").write_text("# My own ResNet page\n", encoding="utf-8")
    before = snapshot(docs)
    code, _, err = pages()
    assert code == 2
    assert re.search(r"docs/models/resnet\.md: error: not written: a file that resfam-cards did not generate", err)
    assert snapshot(docs) == before

    # a generated models.json edited by hand is no longer resfam's
    (docs / "models" / "resnet.md").unlink()
    assert pages()[0] == 0
    (docs / "models.json").write_text('{"edited": true}\n', encoding="utf-8")
    before = snapshot(docs)
    code, _, err = pages()
    assert code == 2 and "docs/models.json: error: not written" in err and "differ from the hash" in err
    assert snapshot(docs) == before


def test_a_drift_writes_nothing_and_names_the_line(pages, project):
    template = project / "templates" / "models" / "resnet.md"
    text = template.read_text(encoding="utf-8")
    template.write_text(text.replace(f"Parameters: {11689512}", "Parameters: 12000000"), encoding="utf-8")
    line = text[:text.index("Parameters: 11689512")].count("\n") + 1
    code, _, err = pages()
    assert code == 1
    assert f"templates/models/resnet.md:{line}: drift: resnet18 Parameters" in err
    assert snapshot(project / "docs") == {path: text.encode() for path, text in HAND_WRITTEN.items()}


@pytest.mark.parametrize("out", ["docs/index.md", "templates", "templates/models"])
def test_a_wrong_folder_is_refused(pages, project, out):
    before = snapshot(project)
    code, _, err = pages(out)
    assert code == 2 and f"{out}: error: cannot write the pages here" in err
    assert snapshot(project) == before


def test_write_site_files_replaces_only_what_changed(tmp_path):
    files = [SiteFile("a.md", "# A\n"), SiteFile("data.json", "{}\n")]
    first = write_site_files(files, tmp_path)
    assert first.written == ["a.md", "data.json"]
    assert write_site_files(files, tmp_path).unchanged == ["a.md", "data.json"]
    second = write_site_files([SiteFile("a.md", "# A, again\n")], tmp_path)
    assert second.written == ["a.md"] and second.removed == ["data.json"]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == ["a.md"]


def test_urls_are_those_of_mkdocs():
    from mkdocs.structure.files import File

    for uri in ("index.md", "models/index.md", "models/resnet-d.md", "models.json", "a b.md"):
        for directory_urls in (True, False):
            assert page_url(uri, directory_urls) == File(uri, "docs", "site", directory_urls).url, uri
    assert relative_url("models/resnet/", "models/") == "resnet/"
    assert relative_url("models/resnet.html", "models/index.html") == "resnet.html"
    assert relative_url("models.json", "models/") == "../models.json"


# ---------------------------------------------------------------------------------------------
# --watch: what zensical serve shows follows the templates


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_watch_rewrites_the_pages_on_a_change_and_shows_a_drift_and_stops_on_ctrl_c(project, tmp_path, shared_cache):
    page = project / "docs" / "models" / "resnet.md"
    env = offline_env(tmp_path / "guard", shared_cache)
    process = subprocess.Popen(
        [sys.executable, "-m", "resfam.cards.cli", "pages", "--watch", "--interval", "0.1", "-q",
         "--cache-dir", str(shared_cache)],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # SIGINT as a terminal's Ctrl-C delivers it, whatever the suite's own handling inherited
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(page.exists)
        template = project / "templates" / "models" / "resnet.md"
        text = template.read_text(encoding="utf-8")
        template.write_text(text.replace("Written for the tests.", "Edited while watching."), encoding="utf-8")
        wait_for(lambda: "Edited while watching." in page.read_text(encoding="utf-8"))
        assert GENERATED_MARK in page.read_text(encoding="utf-8")

        template.write_text(text.replace("Parameters: 11689512", "Parameters: 12000000"), encoding="utf-8")
        line = text[:text.index("Parameters: 11689512")].count("\n") + 1
        wait_for(lambda: "This card does not match the code" in page.read_text(encoding="utf-8"))
        shown = page.read_text(encoding="utf-8")
        assert f"templates/models/resnet.md:{line}: drift: resnet18 Parameters" in shown
        assert "✗ drift" in shown
        assert (project / "docs" / "index.md").read_text(encoding="utf-8") == HAND_WRITTEN["index.md"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, output
    assert "stopped watching" in output and "Traceback" not in output
    assert not any(name.endswith(".tmp") for name in os.listdir(page.parent))



def test_mkdocs_builds_over_the_generated_pages_and_refuses_a_hand_written_one(pages, project, shared_cache,
                                                                              caplog):
    """Both builders can work from one docs folder: the plugin's pages take the place of those `pages`
    wrote; a hand-written page at the path of one stops the build."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    assert pages()[0] == 0
    config_text = (project / "mkdocs.yml").read_text(encoding="utf-8")
    (project / "mkdocs.yml").write_text(
        config_text.replace("  - resfam:\n", f"  - resfam:\n      cache_dir: {shared_cache}\n"), encoding="utf-8")

    def mkdocs_build():
        config = load_config(str(project / "mkdocs.yml"), site_dir=str(project / "site"))
        config.plugins.on_startup(command="build", dirty=False)
        try:
            build(config)
        finally:
            config.plugins.on_shutdown()

    before = snapshot(project / "docs")
    mkdocs_build()
    assert (project / "site" / "models" / "resnet" / "index.html").is_file()
    assert (project / "site" / "models.json").read_bytes() == before["models.json"]
    assert snapshot(project / "docs") == before

    (project / "docs" / "models" / "resnet.md").write_text("# My own ResNet page\n", encoding="utf-8")
    with pytest.raises(Abort):
        mkdocs_build()
    assert re.search(r"models/resnet\.md in .* has the path of a file the resfam plugin generates", caplog.text)
