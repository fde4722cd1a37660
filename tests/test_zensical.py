"""Zensical, for real: the README's commands (`resfam-cards pages docs --strict`, then `zensical build
--strict`) in a copy of the project give a site with every card page and the same card content as the
MkDocs build of the same copy (figures, statuses, tags, code links, compared as data since the themes
differ) and the same models.json; a drift stops the sequence with the finding MkDocs names."""
from __future__ import annotations

import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sitebuild import REPO, mkdocs_build, network_attempts, offline_env, source_snapshot
from test_site import drift, project_copy
from tools import executable

from resfam.cards import parse_card

pytestmark = pytest.mark.slow  # a cold verification of the whole zoo, two site builds

FAMILIES = sorted(path.stem for path in (REPO / "templates" / "models").glob("*.md"))
# the README's commands for Zensical, as a user runs them from the project folder
ZENSICAL_COMMANDS = "resfam-cards pages docs --strict && zensical build --strict"


class PageData(HTMLParser):
    """What a page says, whatever theme frames it: each table's rows (cell text, link targets and
    tooltips) under the id of the heading above it, and the ids of the model sections."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tables: list[tuple[str | None, list[list[tuple[str, tuple[str, ...]]]]]] = []
        self.heading_ids: list[str] = []
        self.links: list[str] = []  # every link target of the page, in order
        self._heading: str | None = None
        self._cell: list[str] | None = None
        self._links: list[str] = []
        self._row: list | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("h2", "h3") and attributes.get("id"):
            self._heading = attributes["id"]
            self.heading_ids.append(attributes["id"])
        elif tag == "table":
            self.tables.append((self._heading, []))
        elif tag == "tr" and self.tables:
            self._row = []
            self.tables[-1][1].append(self._row)
        elif tag in ("td", "th"):
            self._cell, self._links = [], []
        if tag == "a":
            self.links.append(attributes.get("href") or "")
        if tag == "a" and self._cell is not None:
            self._links += [attributes.get("href") or "", attributes.get("title") or ""]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append((" ".join("".join(self._cell).split()), tuple(self._links)))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def page_data(site: Path, page: str) -> PageData:
    return PageData((site / page / "index.html").read_text(encoding="utf-8"))


def run(command: str, project: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=project, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=1800)


@pytest.fixture(scope="module")
def zensical_env(tmp_path_factory, shared_cache):
    """The offline environment, with the test environment's resfam-cards and zensical first on PATH."""
    folders = {os.path.dirname(executable("zensical")), os.path.dirname(executable("resfam-cards"))}
    env = offline_env(tmp_path_factory.mktemp("zensical-guard"), shared_cache)
    env["PATH"] = os.pathsep.join([*sorted(folders), env.get("PATH", "")])
    return env


def test_zensical_builds_every_card_page_with_the_content_of_the_mkdocs_build(tmp_path, zensical_env,
                                                                            shared_cache):
    project = project_copy(tmp_path / "project")
    done = run(ZENSICAL_COMMANDS, project, zensical_env)
    assert done.returncode == 0, done.stdout
    assert network_attempts(zensical_env) == []
    zensical_site = project / "site"
    # the MkDocs build of the same copy, the generated pages in its docs folder (the plugin makes its own)
    mkdocs = mkdocs_build(project / "mkdocs.yml", tmp_path / "mkdocs", shared_cache)
    assert mkdocs.returncode == 0, mkdocs.output

    assert (zensical_site / "models.json").read_bytes() == (mkdocs.site / "models.json").read_bytes()
    assert (zensical_site / "models.schema.json").read_bytes() == (REPO / "docs" / "models.schema.json").read_bytes()
    for page in ["models", "measurement", *(f"models/{family}" for family in FAMILIES)]:
        ours, theirs = page_data(zensical_site, page), page_data(mkdocs.site, page)
        assert ours.tables == theirs.tables, page
        assert ours.tables and all(rows for _, rows in ours.tables), page
    for family in FAMILIES:  # every model: its row of the comparison table, its section, its code link
        data, theirs = page_data(zensical_site, f"models/{family}"), page_data(mkdocs.site, f"models/{family}")
        rows = {row[0][0]: row for row in data.tables[0][1][1:]}
        code_links, their_code_links = ([link for link in page.links if link.startswith(
            "https://github.com/resfam/resfam/blob/main/resfam/models/")] for page in (data, theirs))
        models = [entry.name for entry in parse_card(REPO / "templates" / "models" / f"{family}.md").models]
        for model in models:
            assert rows[model][1][0].endswith("✓"), (family, model, rows[model])  # Parameters, verified
        assert len(code_links) == len(models) and code_links == their_code_links, family
    # the generated files stay out of git's way and out of the site's own sources
    assert not (zensical_site / ".resfam").exists()


def test_a_drift_stops_the_zensical_commands_with_the_finding_of_the_mkdocs_build(tmp_path, zensical_env,
                                                                                  shared_cache):
    project = project_copy(tmp_path / "project")
    line = drift(project / "templates" / "models" / "resnest.md", "resnest50d", "FLOPs", 0.9)
    finding = f"templates/models/resnest.md:{line}: drift: resnest50d FLOPs"
    docs = source_snapshot(project)
    failed = run(ZENSICAL_COMMANDS, project, zensical_env)
    assert failed.returncode == 1, failed.stdout
    assert finding in failed.stdout and "Traceback" not in failed.stdout
    assert not (project / "site").exists() and source_snapshot(project) == docs  # nothing written, nothing built
    mkdocs = mkdocs_build(project / "mkdocs.yml", tmp_path / "mkdocs", shared_cache)
    assert mkdocs.returncode != 0 and finding in mkdocs.output
    # Zensical alone fails too: without the generated files, the measurement page's includes are missing
    bare = run("zensical build --strict", project, zensical_env)
    assert bare.returncode != 0 and ".resfam/table-of-fields.md" in bare.stdout


@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
def test_the_builders_table_gives_the_commands_run_here(page):
    text = (REPO / page).read_text(encoding="utf-8").replace(".venv/bin/", "")
    assert f"`{ZENSICAL_COMMANDS}`" in text
    version = re.search(r'"zensical==([0-9.]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8")).group(1)
    assert f"| Zensical {version} |" in text  # the version the table names is the one installed
