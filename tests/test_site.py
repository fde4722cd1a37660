"""The site: a real `mkdocs build --strict` of the repository, a failing build of a copy with a drifted
figure or a broken template, the plugin's serve mode through its hooks, and the Markdown of the pages.

The builds run offline (see sitebuild.py) and share one measurement cache per session, so only the first
one measures the zoo.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from card_entries import RESNET50_MEASURED
from mkdocs.commands.build import build
from mkdocs.config import load_config
from sitebuild import (
    REPO,
    mkdocs_build,
    network_attempts,
    offline_env,
    refuse_network,
    source_snapshot,
)
from tools import python_module

import resfam
from resfam.cards import Finding, parse_card
from resfam.cards.cache import PACKAGE_DIR
from resfam.cards.catalog import model_catalog
from resfam.cards.fields import CODE, FIELDS
from resfam.cards.figures import VERIFIED_FIELDS, CardPage
from resfam.cards.page_text import strip_model_index
from resfam.cards.pages import card_page, overview_page
from resfam.cards.plugin import list_card_pages

pytestmark = pytest.mark.slow  # real `mkdocs build`s of the whole zoo

FAMILIES = sorted(path.stem for path in (REPO / "templates" / "models").glob("*.md"))
ALL_MODELS = {model.name: family for family in FAMILIES
              for model in parse_card(REPO / "templates" / "models" / f"{family}.md").models}


@pytest.fixture(scope="module")
def built(repository_site):
    """The repository's site, built (and so verified) once; the tests below look at it."""
    assert repository_site.returncode == 0, repository_site.output
    return repository_site


def html_files(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


class Links(HTMLParser):
    """The ids, links, scripts and stylesheets of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, dict]] = []  # (href, attributes of the <a>)
        self.resources: list[str] = []  # script src, link href, img src
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "a" and "href" in attributes:
            self.links.append((attributes["href"], attributes))
        elif tag in ("script", "img", "iframe") and attributes.get("src"):
            self.resources.append(attributes["src"])
        elif tag == "link" and attributes.get("href"):
            self.resources.append(attributes["href"])


def page_of(site: Path, url: str) -> Path:
    """The built file an in-site URL (relative to the site root) leads to."""
    path = urlsplit(url).path.lstrip("/")
    return site / (path + "index.html" if path.endswith("/") or not path else path)


# ---------------------------------------------------------------------------------------------
# The repository's build


def test_build_passes_offline_and_writes_no_sources(built):
    assert "resfam" in built.output  # the plugin ran: it logs what it measured or took from the cache
    assert built.network_attempts == []
    assert source_snapshot(REPO) == built.sources_before  # nothing written into templates/ or docs/
    assert not any((REPO / folder / "models" / "index.md").exists() for folder in ("templates", "docs"))
    for family in FAMILIES:
        assert (built.site / "models" / family / "index.html").is_file()
    assert (built.site / "models" / "index.html").is_file()


def test_no_model_index_comment_and_nothing_from_other_hosts(built):
    for path in html_files(built.site):
        text = path.read_text(encoding="utf-8")
        comments = re.findall(r"<!--.*?-->", text, re.DOTALL)
        assert not [c for c in comments if "Models:" in c or "model-index" in c], path
        if path.parent.parent.name == "models":  # a card: the block's content is nowhere on it
            assert "In Collection" not in text and "Training Data" not in text, path
        for resource in Links(text).resources:
            assert not urlsplit(resource).netloc, f"{path}: {resource}"  # every asset is on this site
        assert "fonts.googleapis" not in text and "fonts.gstatic" not in text, path


def test_card_pages_show_verified_tables_and_edit_their_template(built):
    for family in FAMILIES:
        text = (built.site / "models" / family / "index.html").read_text(encoding="utf-8")
        page = Links(text)
        models = [name for name, home in ALL_MODELS.items() if home == family]
        for name in models:
            assert name in page.ids, name
        marks = [attrs for _, attrs in page.links if "resfam-verified" in attrs.get("class", "")]
        verified = [attrs for attrs in marks if attrs["title"].startswith("Verified when this page was built")]
        # every model: parameters, FLOPs, activations, file size, layers, image size, crop, interpolation,
        # weights, architecture, code; and its features per stage, measured (not on the card)
        assert len(verified) == 11 * len(models)
        measured = [attrs for attrs in marks if attrs not in verified]
        assert len(measured) == 2 * len(models)
        assert all(attrs["title"].startswith("Not on the card; measured when this page was built")
                   for attrs in measured)
        sources = [href for href, _ in page.links if href.startswith("https://github.com/resfam/resfam/blob/main/")]
        assert set(sources) == {f"https://github.com/resfam/resfam/blob/main/resfam/models/"
                                f"{'resnet' if family in ('resnet-d', 'resnext') else family}.py"}
        for attrs in marks:
            assert urlsplit(attrs["href"]).path == "../../measurement/", attrs
        assert "admonition" not in text  # nothing to report on a clean build
        edit = [href for href, attrs in page.links if attrs.get("rel") == "edit"]
        assert edit == [f"https://github.com/resfam/resfam/edit/main/templates/models/{family}.md"]
        assert "How do I use this model?" in text and "create_model" in text


def test_the_measurement_page_lists_the_fields_and_the_architecture_tags(built):
    text = (built.site / "measurement" / "index.html").read_text(encoding="utf-8")
    assert "resfam: table of fields" not in text and "resfam: architecture tags" not in text
    for row in ("within 0.1 %", "within 1 %", "the same set, both ways", "the same file (and line)",
                "reported, not checked"):
        assert row in text, row
    for tag in ("Grouped Convolution", "Split Attention", "Res2Net Block", "Blur Pooling", "Softmax"):
        assert f"<td>{tag}</td>" in text, tag


def test_overview_links_every_model_in_table_and_chart(built):
    overview = built.site / "models" / "index.html"
    page = Links(overview.read_text(encoding="utf-8"))
    base = "models/"
    table = {href for href, attrs in page.links if "resfam-chart__point" not in attrs.get("class", "")
             and "#" in href and not href.startswith("#")}
    chart = {href for href, attrs in page.links if "resfam-chart__point" in attrs.get("class", "")}
    assert len(chart) == len(ALL_MODELS)
    for links in (table, chart):
        targets = {}
        for href in links:
            url = urljoin(base, href)
            target = page_of(built.site, url)
            assert target.is_file(), href
            targets[urlsplit(url).fragment] = target
        assert set(ALL_MODELS) <= set(targets)
        for name, target in targets.items():
            if name in ALL_MODELS:
                assert target.parent.name == ALL_MODELS[name]
                assert name in Links(target.read_text(encoding="utf-8")).ids


def test_models_json_follows_its_schema_and_states_every_figure_of_every_card(built):
    jsonschema = python_module("jsonschema")
    schema = json.loads((REPO / "docs" / "models.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads((built.site / "models.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)
    assert (built.site / "models.schema.json").is_file()  # published next to it

    assert sorted(model["name"] for model in data["models"]) == sorted(ALL_MODELS)
    versions = {"torch": metadata.version("torch"), "fvcore": metadata.version("fvcore")}
    for model in data["models"]:
        family = ALL_MODELS[model["name"]]
        entry = parse_card(REPO / "templates" / "models" / f"{family}.md").model(model["name"])
        claims = entry.claims()
        assert (model["family"], model["id"]) == (family, entry.model_id)
        # the cards state everything but the fields shown from the code: features per stage, licence
        code_only = {field.name for field in FIELDS if field.place == CODE}
        assert set(model["figures"]) == set(claims) | code_only
        config = resfam.get_model_config(entry.model_id)
        for field in ("Feature Channels", "Feature Reduction"):
            assert model["figures"][field]["status"] == "measured" and len(model["figures"][field]["value"]) == 4
        assert model["figures"]["Feature Reduction"]["value"] == [4, 8, 16, 32]
        assert [(model["figures"][field]["value"], model["figures"][field]["status"])
                for field in ("License", "License Source", "License Note")] == [
            (config.license, "reported"), (config.license_url, "reported"), (config.license_note, "reported")]
        for field, claim in claims.items():
            figure = model["figures"][field]
            written = claim.value
            if field in ("Top 1 Accuracy", "Top 5 Accuracy"):
                assert (figure["value"], figure["unit"], figure["status"]) == (float(written.rstrip("%")), "%",
                                                                               "reported")
            elif field in VERIFIED_FIELDS:
                assert figure["status"] == "verified" and figure["measured"] is not None, (model["name"], field)
                assert figure["value"] == (float(written) if field == "Crop Pct" else
                                           int(written) if field == "Image Size" else written)
            else:  # training facts: stated, not checked
                assert (figure["value"], figure["status"]) == (written, "reported")
        assert model["figures"]["FLOPs"]["unit"] == "FLOPs" and model["figures"]["File Size"]["unit"] == "bytes"
        assert model["image_size"] == int(entry.fields["Image Size"].value)
        assert {name: model["measured_with"][name] for name in versions} == versions
        card = page_of(built.site, model["card_url"])
        assert card.parent.name == family and model["name"] in Links(card.read_text(encoding="utf-8")).ids


def test_the_overview_table_and_chart_show_the_figures_of_models_json(built):
    data = {model["name"]: model for model in json.loads((built.site / "models.json").read_text(encoding="utf-8"))
            ["models"]}
    overview = (built.site / "models" / "index.html").read_text(encoding="utf-8")
    table = overview[overview.index('class="resfam-sortable"'):overview.index("</table>")]
    rows = [[re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)[1:]]
    assert len(rows) == len(data)
    for name, collection, params, gflops, activations, megabytes, top1, top5, size, licence in rows:
        figures = {field: figure["value"] for field, figure in data[name]["figures"].items()}
        assert collection == data[name]["collection"] and int(size) == data[name]["image_size"]
        assert licence == figures["License"]
        assert [params, gflops, activations, top1, top5, megabytes] == [
            f"{figures['Parameters'] / 1e6:.2f}", f"{figures['FLOPs'] / 1e9:.2f}",
            f"{figures['Activations'] / 1e6:.2f}", f"{figures['Top 1 Accuracy']:.2f}",
            f"{figures['Top 5 Accuracy']:.2f}", f"{figures['File Size'] / 1e6:.1f}"]
    points = re.findall(r'data-model="([^"]+)"><title>[^<]*: ([0-9.]+) % top-1, ([0-9.]+) GFLOPs at (\d+)', overview)
    assert len(points) == len(data)
    for name, top1, gflops, size in points:
        figures = data[name]["figures"]
        assert (top1, gflops, int(size)) == (f"{figures['Top 1 Accuracy']['value']:.2f}",
                                             f"{figures['FLOPs']['value'] / 1e9:.2f}", data[name]["image_size"])
    assert 'href="../models.json"' in overview


# ---------------------------------------------------------------------------------------------
# Copies that must not build


def project_copy(root: Path) -> Path:
    """mkdocs.yml, docs/ and templates/ of the repository in `root` (the resfam package is the installed one)."""
    root.mkdir()
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    for folder in ("docs", "templates"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def drift(template: Path, model: str, field: str, factor: float) -> int:
    """Scale one figure of `template` by `factor`, in place; returns its line."""
    claim = parse_card(template).model(model).fields[field]
    text = template.read_text(encoding="utf-8")
    start, end = claim.span
    template.write_text(text[:start] + str(round(claim.value * factor)) + text[end:], encoding="utf-8")
    return claim.line


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "plain"])
def test_build_of_a_drifted_copy_fails_naming_model_and_field(built, tmp_path, shared_cache, strict):
    # `built` first: the repository's build has filled the session's cache, so this one measures nothing
    project = project_copy(tmp_path / "project")
    template = project / "templates" / "models" / "resnet-d.md"
    line = drift(template, "resnet50d", "Parameters", 1.05)
    failed = mkdocs_build(project / "mkdocs.yml", tmp_path, shared_cache,
                          *([] if strict else ["--no-strict"]), "-q")
    assert failed.returncode != 0
    assert f"templates/models/resnet-d.md:{line}: drift: resnet50d Parameters" in failed.output
    assert "resfam-cards sync --write" in failed.output
    assert "Traceback" not in failed.output
    assert not (failed.site / "index.html").exists()
    assert failed.network_attempts == []


@pytest.mark.parametrize("lie", ["tag", "code", "coverage"])
def test_build_of_a_copy_whose_card_says_more_than_the_code_fails(built, tmp_path, shared_cache, lie):
    project = project_copy(tmp_path / "project")
    template = project / "templates" / "models" / "resnet.md"
    card = parse_card(template)
    text = card.text
    if lie == "tag":
        claim = card.model("resnet50").claim("Architecture")
        text = text[:claim.span[1]] + "\n    - Grouped Convolution" + text[claim.span[1]:]
        expected = f"templates/models/resnet.md:{claim.line}: drift: resnet50 Architecture: the network has no " \
                   "Grouped Convolution"
    elif lie == "code":
        claim = card.model("resnet50").claim("Code")
        text = text[:claim.span[0]] + "resfam/models/res2net.py" + text[claim.span[1]:]
        expected = f"templates/models/resnet.md:{claim.line}: drift: resnet50 Code: card says " \
                   "resfam/models/res2net.py, the model is registered at resfam/models/resnet.py"
    else:
        start = text.index("- Name: resnet26\n")
        text = text[:start] + text[text.index("\n- Name: ", start + 1) + 1:]
        expected = "templates/models/resnet.md: drift: resnet26 (family resnet) is registered but on no card"
    template.write_text(text, encoding="utf-8")
    failed = mkdocs_build(project / "mkdocs.yml", tmp_path, shared_cache)
    assert failed.returncode != 0
    assert expected in failed.output, failed.output
    assert "Traceback" not in failed.output and not (failed.site / "index.html").exists()


def test_build_with_a_broken_template_fails_cleanly(built, tmp_path, shared_cache):
    project = project_copy(tmp_path / "project")
    template = project / "templates" / "models" / "resnext.md"
    text = template.read_text(encoding="utf-8")
    template.write_text(text.replace("{% include 'code_snippets.md' %}", "{% include 'code_snippets.md' %"),
                        encoding="utf-8")
    failed = mkdocs_build(project / "mkdocs.yml", tmp_path, shared_cache)
    assert failed.returncode != 0
    assert re.search(r"templates/models/resnext\.md:\d+: error: Jinja syntax error", failed.output), failed.output
    assert "Traceback" not in failed.output


def test_a_card_missing_from_the_nav_is_listed_with_the_other_cards(built, tmp_path, shared_cache):
    """A new family's card needs only its template: the plugin adds its page to an explicit nav."""
    project = project_copy(tmp_path / "project")
    config = project / "mkdocs.yml"
    config.write_text(config.read_text(encoding="utf-8").replace("      - models/res2net.md\n", ""), encoding="utf-8")
    assert "models/res2net.md" not in config.read_text(encoding="utf-8")
    done = mkdocs_build(config, tmp_path, shared_cache)
    assert done.returncode == 0, done.output  # strict: a page left out of the nav would fail it
    home = (done.site / "index.html").read_text(encoding="utf-8")
    models_nav = home[home.index("models/resnest/"):]
    assert 'href="models/res2net/"' in models_nav  # in the Models section, after the listed cards


# ---------------------------------------------------------------------------------------------
# ProperDocs: the maintained fork of MkDocs 1.6, with its plugin API


def article(page: Path) -> str:
    """The page's content, without the theme's frame (which names the generator)."""
    return re.search(r"<article.*?</article>", page.read_text(encoding="utf-8"), re.DOTALL).group()


def test_properdocs_builds_the_same_site_and_runs_the_verification(built, tmp_path, shared_cache):
    python_module("properdocs")
    done = mkdocs_build(REPO / "mkdocs.yml", tmp_path / "clean", shared_cache, builder="properdocs")
    assert done.returncode == 0, done.output
    assert done.network_attempts == []
    files = sorted(path.relative_to(built.site) for path in built.site.rglob("*") if path.is_file())
    assert sorted(path.relative_to(done.site) for path in done.site.rglob("*") if path.is_file()) == files
    for page in html_files(built.site):
        assert article(done.site / page.relative_to(built.site)) == article(page), page
    assert (done.site / "models.json").read_bytes() == (built.site / "models.json").read_bytes()

    # the plugin's messages reach ProperDocs' output: a warning of the engine, which fails the strict build
    # as every warning does (issue 20)
    project = project_copy(tmp_path / "project")
    template = project / "templates" / "models" / "resnest.md"
    text = template.read_text(encoding="utf-8")
    template.write_text(text.replace("    ID: resnest50d\n", "    ID: resnest50d\n    Colour: blue\n", 1),
                        encoding="utf-8")
    warned = mkdocs_build(project / "mkdocs.yml", tmp_path / "warned", shared_cache,
                          builder="properdocs")
    assert warned.returncode == 1 and "Aborted with 1 warnings in strict mode" in warned.output, warned.output
    assert re.search(r"resfam: templates/models/resnest\.md:\d+: warning: unknown key 'Colour'", warned.output)

    line = drift(template, "resnest50d", "FLOPs", 0.9)
    failed = mkdocs_build(project / "mkdocs.yml", tmp_path / "drifted", shared_cache,
                          builder="properdocs")
    assert failed.returncode != 0 and "Traceback" not in failed.output
    assert f"templates/models/resnest.md:{line}: drift: resnest50d FLOPs" in failed.output


def test_list_card_pages_appends_what_an_explicit_nav_leaves_out():
    nav = [{"Home": "index.md"}, {"Models": ["models/index.md", {"ResNet": "models/resnet.md"}]}, "about.md"]
    list_card_pages(nav, ["models/res2net.md", "models/resnet.md"], "models/index.md")
    assert nav == [{"Home": "index.md"},
                   {"Models": ["models/index.md", {"ResNet": "models/resnet.md"}, "models/res2net.md"]}, "about.md"]
    without_cards = [{"Home": "index.md"}]
    list_card_pages(without_cards, ["models/resnet.md"], "models/index.md")
    assert without_cards == [{"Home": "index.md"}]  # its author left the cards out


# ---------------------------------------------------------------------------------------------
# Serve mode, through the plugin's hooks


class WatchRecorder:
    """Stands in for mkdocs' LiveReloadServer: records what the plugin asks it to watch."""

    def __init__(self):
        self.watched: list[str] = []

    def watch(self, path, func=None, *, recursive=True):
        self.watched.append(path)


def serve_build(project: Path, site_dir: Path):
    """One `mkdocs serve` build: a fresh config, startup in serve mode, the whole build."""
    config = load_config(config_file=str(project / "mkdocs.yml"), site_dir=str(site_dir))
    config.plugins.on_startup(command="serve", dirty=False)
    build(config, serve_url="http://127.0.0.1:8000/")
    return config


def test_serve_shows_drift_on_the_page_and_recovers(built, tmp_path, shared_cache, monkeypatch, caplog):
    project = project_copy(tmp_path / "project")
    env = offline_env(tmp_path / "guard", shared_cache)
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # read by load_config (!ENV) and by the engine's workers
    refuse_network(monkeypatch)
    template = project / "templates" / "models" / "resnet-d.md"
    original = template.read_text(encoding="utf-8")
    line = drift(template, "resnet50d", "FLOPs", 0.5)
    before = source_snapshot(project)
    caplog.set_level(logging.INFO, logger="mkdocs.plugins.resfam")

    config = serve_build(project, tmp_path / "site")
    card = (tmp_path / "site" / "models" / "resnet-d" / "index.html").read_text(encoding="utf-8")
    danger = re.search(r'<div class="admonition danger">.*?</div>', card, re.DOTALL)
    assert danger, "no red admonition on the drifting card"
    assert f"templates/models/resnet-d.md:{line}: drift: resnet50d FLOPs" in danger.group()
    assert card.index("admonition danger") < card.index('id="models"')  # at the top of the page
    assert "admonition" not in (tmp_path / "site" / "models" / "resnet" / "index.html").read_text(encoding="utf-8")
    assert "resnet50d FLOPs" in caplog.text  # and in the terminal

    recorder = WatchRecorder()
    assert config.plugins.on_serve(recorder, config=config, builder=None) is recorder
    assert str(project / "templates") in recorder.watched and str(PACKAGE_DIR) in recorder.watched

    # the contributor fixes the card: the next build is clean, and measures nothing again
    template.write_text(original, encoding="utf-8")
    caplog.clear()
    serve_build(project, tmp_path / "site")
    card = (tmp_path / "site" / "models" / "resnet-d" / "index.html").read_text(encoding="utf-8")
    assert "admonition" not in card
    assert not [r for r in caplog.records if r.getMessage().startswith("resfam: measured")]
    assert source_snapshot(project) == {**before, "templates/models/resnet-d.md":
                                        hashlib.sha256(original.encode()).hexdigest()}
    assert network_attempts(env) == []


# ---------------------------------------------------------------------------------------------
# The page Markdown itself


def test_card_page_markdown_keeps_code_and_escapes_findings():
    markdown = (
        "# Family\n\nSummary.\n\n```python\n## not a heading\n```\n\n## Usage\n\nText.\n\n"
        "<!--\nType: model-index\nModels:\n- Name: m\n-->\n"
    )
    finding = Finding("error", "templates/models/family.md", 3, "bad ```value``` <script>x</script>",
                      hint="fix it")
    page = CardPage("models/family.md", "templates/models/family.md", "family", None, markdown, [finding])
    out = card_page(page, show_findings=True)
    assert "model-index" not in out and "Models:" not in out
    assert out.index('!!! danger "This card does not match the code"') < out.index("Summary.")
    # the finding sits in a code block whose fence is longer than any backtick run in it
    assert "    ````text\n    templates/models/family.md:3: error: bad ```value``` <script>x</script>\n" in out
    assert out.index("## not a heading") < out.index("## Usage")
    assert "!!!" not in card_page(page, show_findings=False)


def test_strip_model_index_leaves_other_comments():
    text = "# T\n\n<!-- a note -->\n\nBody.\n\n<!--\nType: model-index\nModels: []\n-->\n"
    assert strip_model_index(text) == "# T\n\n<!-- a note -->\n\nBody.\n"


# ---------------------------------------------------------------------------------------------
# Prose that cites the measurement, and pages that say how it was made


def test_a_literal_figure_in_the_prose_fails_the_strict_build_only(built, tmp_path, shared_cache):
    project = project_copy(tmp_path / "project")
    template = project / "templates" / "models" / "resnet.md"
    text = template.read_text(encoding="utf-8")
    text = text.replace("\n\n{% include 'code_snippets.md' %}", "\n\nresnet50 has 23.0 million parameters.\n\n"
                                                               "{% include 'code_snippets.md' %}", 1)
    template.write_text(text, encoding="utf-8")
    line = text.splitlines().index("resnet50 has 23.0 million parameters.") + 1
    strict = mkdocs_build(project / "mkdocs.yml", tmp_path / "strict", shared_cache)
    assert strict.returncode != 0
    assert (f"templates/models/resnet.md:{line}: warning: the prose writes '23.0 million parameters' as a "
            "literal figure, which the build does not check; the code measures resnet50 Parameters: 25,557,032"
            in strict.output), strict.output
    assert "write {{ models.resnet50.parameters | millions }} instead" in strict.output
    plain = mkdocs_build(project / "mkdocs.yml", tmp_path / "plain", shared_cache, "--no-strict")
    assert plain.returncode == 0, plain.output  # a warning, kept as written


def test_pages_say_how_their_figures_were_made(built):
    from resfam.cards.cache import installed_versions

    versions = installed_versions()
    for page in [built.site / "models" / "index.html"] + [built.site / "models" / f / "index.html" for f in FAMILIES]:
        text = re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))
        assert (f"How these figures were made. Measured with torch {versions['torch']}, fvcore "
                f"{versions['fvcore']} and resfam {versions['resfam']}, on the CPU") in text, page
        assert "evaluation mode" in text and "one multiply-add is one FLOP" in text, page


def test_two_builds_of_unchanged_code_write_identical_html(built, tmp_path, shared_cache):
    again = mkdocs_build(REPO / "mkdocs.yml", tmp_path, shared_cache)
    assert again.returncode == 0, again.output
    first = {path.relative_to(built.site): path.read_bytes() for path in html_files(built.site)}
    second = {path.relative_to(again.site): path.read_bytes() for path in html_files(again.site)}
    assert first.keys() == second.keys() and len(first) > 5
    assert [name for name in first if first[name] != second[name]] == []


def test_a_model_whose_stages_change_gets_prose_and_tables_from_the_new_code(built, tmp_path, shared_cache,
                                                                           monkeypatch):
    """The issue's done-when: tv_resnet101 gets other blocks per stage in a copy of the project (its
    package included); `sync --write` rewrites the figures, and the strict build then publishes prose and
    tables that agree with the new code, with no prose edited by hand."""
    project = project_copy(tmp_path / "project")
    shutil.copytree(PACKAGE_DIR, project / "resfam", ignore=shutil.ignore_patterns("__pycache__"))
    models = project / "resfam" / "models" / "resnet.py"
    source = models.read_text(encoding="utf-8")
    start = source.index('register_resnet("tv_resnet101"')
    end = source.index("\n", source.index("layers=", start))
    registration = source[start:end]
    assert "layers=(3, 4, 23, 3)" in registration
    models.write_text(source[:start] + registration.replace("(3, 4, 23, 3)", "(3, 4, 12, 3)") + source[end:],
                      encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(project))  # the copy's resfam, for sync, the build and its workers
    template = project / "templates" / "models" / "resnet.md"
    prose_before = strip_model_index(template.read_text(encoding="utf-8"))
    env = offline_env(tmp_path / "guard", shared_cache)

    synced = subprocess.run([sys.executable, "-m", "resfam.cards.cli", "sync", "--write", "-q"], cwd=project,
                            env=env, capture_output=True, text=True, timeout=1800)
    assert synced.returncode == 0, synced.stderr
    assert "-    Layers: 101\n+    Layers: 68\n" in synced.stdout  # the diff sync printed
    assert strip_model_index(template.read_text(encoding="utf-8")) == prose_before  # only figures were written
    assert parse_card(template).model("tv_resnet101").fields["Layers"].value == 2 + 3 * (3 + 4 + 12 + 3)

    done = mkdocs_build(project / "mkdocs.yml", tmp_path, shared_cache)
    assert done.returncode == 0, done.output
    html = (done.site / "models" / "resnet" / "index.html").read_text(encoding="utf-8")
    prose = html[html.index("<article"):html.index('id="models"')]  # the card's text, before its tables
    prose = " ".join(re.sub(r"<[^>]+>", "", prose).split())
    assert "tv_resnet101 uses 3, 4, 12, 3 and" in prose and "23" not in prose
    table = html[html.index('class="resfam-compare"'):]
    table = " ".join(re.sub(r"<[^>]+>", " ", table[:table.index("</table>")]).split())
    claimed = parse_card(template).model("tv_resnet101").fields
    assert f"tv_ resnet101 {claimed['Parameters'].value / 1e6:.2f} ✓" in table
    details = html[html.index('id="tv_resnet101"'):]
    details = " ".join(re.sub(r"<[^>]+>", " ", details[:details.index("</ul>")]).split())
    assert "Layers : 68 ✓ verified" in details
    assert network_attempts(env) == []


def test_the_overview_and_the_card_tables_show_activations():
    activations = RESNET50_MEASURED.activations
    text = ("# ResNet\n\n<!--\nModels:\n- Name: resnet50\n  Metadata:\n"
            f"    Activations: {activations}\n    Image Size: '224'\n-->\n")
    card = parse_card("templates/models/resnet.md", text)
    ok = Finding("ok", "templates/models/resnet.md", 6, "resnet50 Activations: 11,114,984", model="resnet50",
                 field="Activations", claimed=activations, measured=activations)
    page = CardPage("models/resnet.md", "templates/models/resnet.md", "resnet", card, text, [ok],
                    versions={"torch": "2.13.0", "fvcore": "0.1.5", "resfam": "0.1.0"})
    assert "| 11.11 [✓](../measurement.md#activations" in card_page(page, show_findings=False)
    overview = overview_page(model_catalog([page]), src_uri="models/index.md", urls={"models/resnet.md": "resnet/"},
                             versions=page.versions)
    header, _, row = [line for line in overview.splitlines() if line.startswith("| ")][:3]
    assert header.split(" | ")[4] == "Activations (M)" and row.split(" | ")[4] == "11.11"
    assert "Measured with torch 2.13.0, fvcore 0.1.5 and resfam 0.1.0, on the CPU" in overview
