"""The bad-card corpus (issue 6), end to end through the doors users hit: `resfam-cards verify`,
`resfam-cards sync --write` and `mkdocs build --strict`.

tests/bad_cards/good.md verifies clean; every other file there is a copy of it with one kind of mistake
(its name says which), and EXPECTED is the exact report for it: file, line, what is wrong, how to fix it.
Cards too big or too odd to keep as files are made here (GENERATED). Each card is copied to
templates/models/resnet.md of a fresh project, and then

- `verify` exits 2 and prints exactly those findings and a FAILED summary, and nothing on stderr;
- `sync --write` exits 2, prints the same findings and "nothing written", and writes nothing;
- every file of the project is byte for byte what it was.

MKDOCS_CASES also go through a real `mkdocs build --strict` (offline) and the installed console script.
The other tests here: the measurement cache survives a corrupt entry, and verify makes no network access.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from card_entries import RESNET18_MEASURED
from sitebuild import mkdocs_build, network_attempts, offline_env, source_snapshot

import resfam
from resfam.cards import render
from resfam.cards.cli import main

CORPUS = Path(__file__).parent / "bad_cards"
GOOD = (CORPUS / "good.md").read_text(encoding="utf-8")
P = "templates/models/resnet.md"  # where every card is put, and so the path in every finding
SNIPPETS = "```python\nimport resfam\n\nmodel = resfam.create_model('{{ model_name }}')\n```\n"


def E(line: int | None, message: str, hint: str) -> str:
    """One finding as the report prints it."""
    return f"{P}{f':{line}' if line else ''}: error: {message}\n    hint: {hint}"


SCAFFOLD = "add one, or scaffold a card with 'resfam-cards new FAMILY --model ID'"
YAML = "check the indentation and the ':' after each key; quote values that contain ': ', ' #', or start with " \
       "a special character"
SYNC = f"or run 'resfam-cards sync --write {P}' to fill it in"
UNSAFE_TAG = "YAML tag '{0}' is not allowed in a model-index block; only plain values, lists and mappings are " \
             "read (the YAML is loaded safely)"
UTF8 = "save the file with UTF-8 encoding"
IMPORT_PATH = "a card names a model only through the resfam registry: write 'ID: resnet18' " \
              "(resfam.list_models() lists the names)"
JINJA = "check the '{% ... %}' and '{{ ... }}' tags on this line; each block tag needs its matching end tag"
SANDBOX = "templates run in a sandbox: no attributes starting with '_', no file or network access"
RUNAWAY = "a card renders in milliseconds and is a page of text: look for a loop or a text that grows without end"
INTERPOLATIONS = "bicubic, bilinear, box, hamming, lanczos, nearest"
INCLUDE = "check the name; includes are looked up relative to templates/"
RENDER_SECONDS = 1.0  # for endless-loop.md; a card renders in milliseconds
# text-doubled-without-end.md must reach the memory limit, not a short time limit, on a loaded machine too
SHORT_TIME_LIMIT = {"endless-loop.md"}

CODE_HINT = "fix the code (or the template that writes it); a block that must not run is marked by <!-- no-run --> " \
            "on the line before its fence (docs/measurement.md)"
REGISTRY = "the registered models are listed by: python -m resfam"

EXPECTED: dict[str, list[str]] = {
    # -- the code and the names on the page (issue 20)
    "code-block-fails.md": [E(9, "the code block starting 'config = resfam.get_model_confg(\"resnet18\")' fails: "
                                 "AttributeError: module 'resfam' has no attribute 'get_model_confg' (raised at "
                                 "resfam/_lazy.py:22)", CODE_HINT)],
    "code-unknown-model.md": [E(9, "the code block starting 'model = resfam.create_model(\"resnet5O\")' names the "
                                   "model 'resnet5O', which is not registered",
                                "did you mean resnet50, resnet50d, resnet152d? " + REGISTRY)],
    "prose-unknown-model.md": [E(4, "the prose names the model 'resnet50_gn', which is not registered",
                                 "did you mean resnet50, resnet50d, resnest50d? " + REGISTRY)],
    "prose-missing-file.md": [E(4, "the prose names the file 'resfam/models/resnets.py', which does not exist",
                                "check the path (relative to the folder holding resfam/)")],
    "prose-renamed-function.md": [E(4, "the prose names 'resfam.get_model_confg', but resfam defines no "
                                       "'get_model_confg'", "did you mean resfam.get_model_config, "
                                    "resfam.get_model_entry, resfam.default_config? check the name in "
                                    "resfam/__init__.py")],
    "prose-unknown-class.md": [E(4, "the prose names the class 'BottleNeck', which no module of resfam defines",
                                 "did you mean Bottleneck, Res2NetBottleneck? a bare CamelCase name in inline code is "
                                 "read as a class of the zoo; write another library's class with its module "
                                 "(nn.Conv2d)")],
    "in-collection-undefined.md": [E(23, "resnet18 is 'In Collection' 'ResNt', which the 'Collections' list does not "
                                         "define", "use one of: ResNet")],
    # -- the file as a whole
    "empty.md": [E(None, "the file is empty: a card template needs a summary and a model-index block", SCAFFOLD)],
    "only-blank-lines.md": [
        E(None, "the file is empty: a card template needs a summary and a model-index block", SCAFFOLD)],
    "no-block.md": [E(None, "no model-index block: the models must be listed in an HTML comment "
                            "'<!-- Type: model-index ... -->'", SCAFFOLD)],
    "block-not-in-a-comment.md": [E(None, "no model-index block: the models must be listed in an HTML comment "
                                          "'<!-- Type: model-index ... -->'", SCAFFOLD)],
    "two-blocks.md": [E(43, "a second model-index block (the first starts at line 18); a card has exactly one",
                        "move its models into the first block and delete this one")],
    "comment-never-closed.md": [E(18, "the HTML comment holding the model-index block is never closed",
                                  "end the block with '-->' on a line of its own")],
    "empty-block.md": [E(19, "the model-index block has no 'Models' list",
                         "add 'Models:' with one '- Name: <model>' entry per model")],
    "latin-1-byte.md": [E(3, "the file is not valid UTF-8: byte 0xe9 at column 47 cannot be decoded", UTF8)],
    "utf-16.md": [E(1, "the file is not valid UTF-8: byte 0xff at column 1 cannot be decoded", UTF8)],
    "png-image.md": [E(1, "the file is not valid UTF-8: byte 0x89 at column 1 cannot be decoded", UTF8)],
    "ten-megabytes.md": [E(None, "the file is 10.1 MB; a card template may be at most 2.1 MB",
                           "check that this is the card template you meant; a card is a page of text")],
    # -- YAML syntax
    "bad-indentation.md": [E(28, "malformed YAML in the model-index block: inconsistent indentation: this line "
                                 "does not line up with the lines above it (while parsing a block mapping at line "
                                 "23)", YAML)],
    "missing-colon.md": [E(29, "malformed YAML in the model-index block: no ':' after the key on this line",
                           "write the line as 'Key: value'")],
    "unclosed-quote.md": [E(32, "malformed YAML in the model-index block: the quote opened on this line is never "
                                "closed", "add the closing quote at the end of the value")],
    "unclosed-flow-list.md": [E(27, "malformed YAML in the model-index block: expected ',' or ']', but got ':' "
                                    "(while parsing a flow sequence at line 25)", YAML)],
    "second-yaml-document.md": [E(22, "malformed YAML in the model-index block: a second YAML document ('---'); "
                                      "the block holds one (expected a single document in the stream at line 19)",
                                  YAML)],
    "tab-indentation.md": [E(27, "tab character in the indentation (column 1); YAML indents with spaces only",
                             "replace the tab with spaces")],
    "crlf-and-a-tab.md": [E(27, "tab character in the indentation (column 1); YAML indents with spaces only",
                            "replace the tab with spaces")],
    "tab-after-colon.md": [E(27, "malformed YAML in the model-index block: found character '\\t' that cannot "
                                 "start any token", "replace tabs with spaces")],
    "nul-character.md": [E(27, "malformed YAML in the model-index block: character #x0000 is not allowed",
                           "delete the control character")],
    "jinja-in-block.md": [E(28, "Jinja syntax '{{' inside the model-index block; its values must be written out "
                                "so the build can check them", "replace the expression with the literal value")],
    "nested-too-deep.md": [E(25, "the model-index block is nested more than 32 levels deep",
                             "a model-index needs only Models > entry > Metadata/Results > values")],
    # -- unsafe YAML: refused, never constructed
    "python-object-tag.md": [E(27, UNSAFE_TAG.format("!!python/object/apply:os.system"),
                               "remove '!!python/object/apply:os.system' and write a plain value")],
    "python-name-tag.md": [E(26, UNSAFE_TAG.format("!!python/name:resfam.models.resnet.resnet18"),
                             "remove '!!python/name:resfam.models.resnet.resnet18' and write a plain value")],
    "custom-tag.md": [E(34, UNSAFE_TAG.format("!include"), "remove '!include' and write a plain value")],
    "anchor-and-alias.md": [E(42, "alias '*resnet18' in the model-index block; anchors and aliases are not "
                                  "supported", "write the value out in full where it is used")],
    # -- the schema
    "wrong-type.md": [E(19, "'Type' must be 'model-index', got 'model-card'", "write 'Type: model-index'")],
    "no-models.md": [E(19, "the model-index block has no 'Models' list",
                       "add 'Models:' with one '- Name: <model>' entry per model")],
    "models-a-mapping.md": [E(23, "'Models' must be a list, got a mapping",
                              "write one '- Name: <model>' entry per model under 'Models:'")],
    "models-empty.md": [E(22, "'Models' lists no models", "add one '- Name: <model>' entry per model")],
    "entry-not-a-mapping.md": [E(41, "each entry of 'Models' must be a mapping, got 'resnet34'",
                                 "start the entry with '- Name: <model>'")],
    "missing-name.md": [E(23, "a model entry has no 'Name'", "add 'Name: <model>' as the first key of the entry")],
    "name-a-number.md": [E(23, "a model 'Name' must be text, got 18",
                           "YAML reads 18 as a number: quote it, Name: '18'")],
    "name-a-yaml-boolean.md": [E(23, "a model 'Name' must be text, got yes",
                                 "YAML reads yes as a boolean: quote it, Name: 'yes'")],
    "duplicate-model-names.md": [E(41, "model 'resnet18' is listed twice (first at line 23)",
                                   "delete one of the two entries or rename it")],
    "duplicate-key.md": [E(30, "duplicate key 'Parameters' in the Metadata of resnet18 (first at line 28)",
                           "keep one of the two lines; YAML would silently use the last one")],
    "metadata-a-list.md": [E(26, "'Metadata' of resnet18 must be a mapping, got a list",
                             "indent the fields under 'Metadata:'")],
    "results-a-mapping.md": [E(36, "'Results' of resnet18 must be a list, got a mapping",
                               "write '- Task: ...' entries with 'Dataset' and 'Metrics'")],
    "architecture-not-a-list.md": [E(28, "'Architecture' of resnet18 must be a list of names, got 'Residual "
                                         "Connection'", "write one '- <name>' line per item under 'Architecture:'")],
    "architecture-unknown-tag.md": [E(40, "resnet18 Architecture: 'Squeeze-and-Excitation' is not an architecture "
                                          "tag", "the tags are: 1x1 Convolution, Average Pooling, Batch Normalization, "
                                                 "Blur Pooling, Bottleneck Residual Block, Convolution, Dense "
                                                 "Connections, Depthwise Convolution, Dropout, GELU, Global Average "
                                                 "Pooling, Group Normalization, Grouped Convolution, Hard Swish, "
                                                 "Layer Normalization, Max Pooling, Multi-Head Attention, ReLU, ReLU6, "
                                                 "Res2Net Block, ResNeXt Block, Residual Block, Residual Connection, "
                                                 "Sigmoid Activation, Softmax, Split Attention, Swish "
                                                 "(defined on the measurement page); a tag for a class of the zoo is "
                                                 "declared in a vocabulary file (the plugin's 'vocabulary' setting, "
                                                 "--vocabulary FILE)")],
    "code-not-text.md": [E(34, "'Code' of resnet18 must be text, got 42",
                           "write the path of the file that registers the model, relative to the repository root, "
                           "e.g. resfam/models/resnet.py (optionally with #L<line>)")],
    # -- the figures
    "parameters-not-a-number.md": [E(28, "'Parameters' of resnet18 must be an integer, got '11.7M'",
                                     f"write the exact count, {SYNC}")],
    "parameters-quoted.md": [E(28, "'Parameters' of resnet18 must be an integer, got '11689512' (a quoted string: "
                                   "remove the quotes)", f"write the exact count, {SYNC}")],
    "parameters-huge.md": [E(28, "'Parameters' of resnet18 is implausibly large: 116895120000000000000 (more "
                                 "than 10^15)", f"write the exact count, {SYNC}")],
    "flops-negative.md": [E(29, "'FLOPs' of resnet18 must be a non-negative integer, got -1819065856",
                            f"write the exact count (fvcore convention: one multiply-add is one FLOP), {SYNC}")],
    "layers-a-float.md": [E(27, "'Layers' of resnet18 must be an integer, got 18.5", f"write the exact depth, {SYNC}")],
    "file-size-empty.md": [E(30, "'File Size' of resnet18 has no value", f"write the exact size in bytes, {SYNC}")],
    "image-size-not-a-size.md": [E(31, "'Image Size' of resnet18 must be a whole number of pixels such as '224', "
                                       "got 'large'", "write the input resolution in pixels, e.g. '224'")],
    "image-size-huge.md": [E(31, "'Image Size' of resnet18 must be between 1 and 4096 pixels, got 100000",
                             "write the input resolution in pixels, e.g. '224'")],
    "crop-pct-above-one.md": [E(32, "'Crop Pct' of resnet18 must be a fraction in (0, 1], got 87.5",
                                "write the crop fraction, e.g. '0.875'")],
    "interpolation-unknown.md": [E(33, f"'Interpolation' of resnet18 must be one of {INTERPOLATIONS}, got 'cubic'",
                                   f"use one of: {INTERPOLATIONS}")],
    "weights-not-a-url.md": [E(34, "'Weights' of resnet18 must be an http(s) URL, got 'resnet18-5c106cde.pth'",
                               "write the full https:// URL of the checkpoint")],
    "accuracy-above-100.md": [E(39, "'Top 1 Accuracy' of resnet18 must be between 0 and 100%, got 697.4%",
                                "write a percentage such as 76.13%")],
    "several-mistakes.md": [  # every problem of a card at once
        E(27, "'Layers' of resnet18 must be an integer, got 'eighteen'", f"write the exact depth, {SYNC}"),
        E(33, f"'Interpolation' of resnet18 must be one of {INTERPOLATIONS}, got 'linear'",
          f"use one of: {INTERPOLATIONS}"),
        E(40, "'Top 5 Accuracy' of resnet18 must be a percentage such as 76.13%, got 'high'",
          "write a percentage such as 92.86%")],
    # -- naming the model: through the registry only
    "unknown-id.md": [E(26, "resnet18: unknown model ID 'resnet19'", "did you mean resnet18, resnet18d, "
                                                                     "resnet152d? the registered models are listed "
                                                                     "by: python -m resfam")],
    "id-of-another-family.md": [E(26, "resnest14d: model 'resnest14d' is registered in family 'resnest', not in "
                                      "'resnet' (this card's family, from its file name)",
                                  "move the model to templates/models/resnest.md")],
    "id-an-import-path.md": [E(26, "'ID' of resnet18 must be the model's registered name, not an import path: "
                                   "got 'resfam.models.resnet.resnet18'", IMPORT_PATH)],
    "id-an-import-path-with-colon.md": [E(26, "'ID' of resnet18 must be the model's registered name, not an "
                                              "import path: got 'resfam.models.resnet:resnet18'", IMPORT_PATH)],
    "name-an-import-path.md": [E(23, "resfam.models.resnet.ResNet: an entry without an 'ID' names its model by "
                                     "its 'Name', which must be the model's registered name, not an import path",
                                 "a card names a model only through the resfam registry: add 'ID: <registered "
                                 "name>' under 'Metadata' (resfam.list_models() lists the names)")],
    # -- the template around the block
    "jinja-syntax-error.md": [E(6, "Jinja syntax error: the tag '{%' opened on this line is never closed with '%}' "
                                   "(Jinja stopped at line 8: unexpected char '#')", "end the tag with '%}'")],
    "jinja-unclosed-expression.md": [E(1, "Jinja syntax error: the tag '{{' opened on this line is never closed "
                                          "with '}}' (Jinja stopped at line 3: expected token 'end of print "
                                          "statement', got 'Networks')", "end the tag with '}}'")],
    "jinja-unclosed-for.md": [E(6, "Jinja syntax error: Unexpected end of template. Jinja was looking for the "
                                   "following tags: 'endfor' or 'else'. The innermost block that needs to be closed "
                                   "is 'for'.", "add '{% endfor %}' where the 'for' block ends")],
    "undefined-variable.md": [E(1, "undefined variable: 'colection' is undefined",
                                "card templates may use: model_name, model_ids, family, collection, models (see "
                                "resfam/cards/render.py)")],
    "undefined-attribute.md": [E(1, "undefined attribute: 'str object' has no attribute 'title_case'",
                                 "check the name after the '.'")],
    "include-missing-file.md": [E(6, "included template 'code_snippet.md' not found in templates/", INCLUDE)],
    "include-outside-templates.md": [E(6, "included template '../../etc/passwd' not found in templates/", INCLUDE)],
    "include-itself.md": [E(6, "the template includes itself without end", "remove the include cycle")],
    "jinja-division-by-zero.md": [E(1, "error while rendering: ZeroDivisionError: integer division or modulo by "
                                       "zero", "check the expression on this line")],
    "sandbox-escape.md": [E(6, "unsafe template: access to attribute '__class__' of 'str' object is unsafe.",
                            SANDBOX)],
    "huge-repeat.md": [E(1, "unsafe template: repeating a sequence 1000000000 times makes it too long", RUNAWAY)],
    "endless-loop.md": [E(6, f"the template ran for more than {RENDER_SECONDS:g} s and was stopped here", RUNAWAY)],
    "text-doubled-without-end.md": [E(7, "the template ran out of memory here (the renderer may use 1 GB)", RUNAWAY)],
}

GENERATED = {
    # 10 MB of prose after the block: not a card a person wrote
    "ten-megabytes.md": lambda: GOOD.encode() + b"All work and no play makes a card a dull card.  " * 210_000,
    # Windows line endings do not move the lines a finding names
    "crlf-and-a-tab.md": lambda: GOOD.replace("    Layers: 18", "\tLayers: 18").replace("\n", "\r\n").encode(),
}
MKDOCS_CASES = ["empty.md", "tab-indentation.md", "python-object-tag.md", "latin-1-byte.md", "unknown-id.md",
                "jinja-syntax-error.md", "code-block-fails.md"]


def card_bytes(name: str) -> bytes:
    return GENERATED[name]() if name in GENERATED else (CORPUS / name).read_bytes()


def test_the_corpus_and_the_expectations_match():
    files = {path.name for path in CORPUS.iterdir()} - {"good.md"}
    assert files.isdisjoint(GENERATED)
    assert files | set(GENERATED) == set(EXPECTED)
    assert len(EXPECTED) >= 30
    assert all(card_bytes(name) != GOOD.encode() for name in EXPECTED)


def make_project(root: Path, card: bytes) -> Path:
    """A project with templates/code_snippets.md, templates/models/resnet.md = `card`, and what a
    site needs: mkdocs.yml and docs/ (the card pages link to docs/measurement.md)."""
    (root / "templates" / "models").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "templates" / "code_snippets.md").write_text(SNIPPETS, encoding="utf-8")
    (root / P).write_bytes(card)
    (root / "docs" / "index.md").write_text("# A card with a mistake\n", encoding="utf-8")
    (root / "docs" / "measurement.md").write_text("# How the figures are measured\n", encoding="utf-8")
    # the one card names a few models: the build is told the others are left without a card
    named = set(re.findall(rb"ID: ([\w.-]+)", card))
    others = [model for model in resfam.list_models() if model.encode() not in named]
    (root / "mkdocs.yml").write_text(
        "site_name: A card with a mistake\nplugins:\n  - resfam:\n      templates_dir: templates\n"
        f"      cache_dir: !ENV [RESFAM_CACHE_DIR, null]\n      without_card: {others}\n", encoding="utf-8")
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture
def project_with(tmp_path, monkeypatch):
    """`project_with(card)`: a fresh project (make_project) with `card`, as the working folder; its path."""
    def with_card(card: bytes, name: str = "") -> Path:
        if name in SHORT_TIME_LIMIT:
            monkeypatch.setattr(render, "RENDER_SECONDS", RENDER_SECONDS)
        root = make_project(tmp_path / "project", card)
        monkeypatch.chdir(root)
        return root

    return with_card


def summary(findings: list[str]) -> str:
    """The summary line after `findings`: a failure with exactly these errors, no drift, no warning."""
    errors = f"{len(findings)} error{'s' if len(findings) > 1 else ''}"
    return rf"FAILED: 1 card, \d+ models?: \d+ figures ok, 0 drifts, {errors}, 0 warnings \(.*\)"


def test_the_good_card_verifies_clean(project_with, cli):
    project_with(GOOD.encode())
    assert cli("verify", P)[0] == 0
    assert cli("sync", "--write", P) == (0, "", "nothing to change: 1 card(s) match the code\n")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_bad_card_fails_verify_and_sync_cleanly_and_nothing_is_written(name, project_with, cli):
    card = card_bytes(name)
    root = project_with(card, name)
    before = snapshot(root)
    expected = "\n".join(EXPECTED[name])

    code, out, err = cli("verify", P)
    assert (code, err) == (2, "")
    report, last = out.rstrip("\n").rsplit("\n", 1)
    assert report == expected
    assert re.fullmatch(summary(EXPECTED[name]), last), last

    code, out, err = cli("sync", "--write", P)
    assert (code, out) == (2, "")
    assert err == f"{expected}\nnothing written: {len(EXPECTED[name])} problem(s) to fix first\n"

    assert snapshot(root) == before
    assert (root / P).read_bytes() == card


@pytest.mark.slow  # a real `mkdocs build`
@pytest.mark.parametrize("name", MKDOCS_CASES)
def test_a_bad_card_fails_the_site_build_and_the_console_script_cleanly(name, tmp_path, shared_cache):
    root = make_project(tmp_path / "project", card_bytes(name))
    before = snapshot(root)
    expected = "\n".join(EXPECTED[name])

    build = mkdocs_build(root / "mkdocs.yml", tmp_path, shared_cache)
    assert build.returncode == 1
    assert f"ERROR   -  resfam: the model cards do not match the code; the site is not built.\n{expected}\n" \
           in build.output
    assert "Traceback" not in build.output
    assert build.output.rstrip().endswith("Aborted with a BuildError!")
    assert not build.site.exists()
    assert build.network_attempts == []

    script = Path(sys.executable).with_name("resfam-cards")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "resfam.cards.cli"]
    env = offline_env(tmp_path / "guard-cli", shared_cache)
    for args in (["verify", P], ["sync", "--write", P]):
        done = subprocess.run([*command, *args, "--cache-dir", str(shared_cache), "-q"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        assert expected in (done.stdout if args[0] == "verify" else done.stderr)
        assert "Traceback" not in done.stdout + done.stderr
    assert network_attempts(env) == []
    assert snapshot(root) == before


@pytest.mark.slow  # a real `mkdocs build`
def test_the_good_card_builds(tmp_path, shared_cache):
    # the control for the failing builds: the same project with the good card is a site
    root = make_project(tmp_path / "project", GOOD.encode())
    build = mkdocs_build(root / "mkdocs.yml", tmp_path, shared_cache)
    assert build.returncode == 0, build.output
    assert (build.site / "models" / "resnet" / "index.html").is_file()
    assert "✓ ran in this build" in (build.site / "models" / "resnet" / "index.html").read_text(encoding="utf-8")
    assert build.network_attempts == []
    assert source_snapshot(root) == build.sources_before


@pytest.mark.parametrize("command", [[], ["verify"], ["sync"], ["new"], ["list"]],
                         ids=["resfam-cards", "verify", "sync", "new", "list"])
def test_every_command_prints_its_help(command, capsys):
    # the door before any card: a '%' in a help text makes argparse raise instead of printing it
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: resfam-cards {' '.join(command)}".rstrip())


# ---------------------------------------------------------------------------------------------
# The cache survives a corrupt entry: it is a miss, the model is measured again, the entry rewritten

CORRUPTIONS = {
    "truncated": lambda data: data[: len(data) // 2],
    "not UTF-8": lambda data: b"\xff\xfe\x00garbage" + data[:40],
    "wrong types": lambda data: json.dumps(dict(json.loads(data), value={"parameters": "many"})).encode(),
}


def entries_of(cache: Path, kind: str, model: str | None = None) -> dict[Path, object]:
    """{entry file: its value} of the readable entries of `kind` ('measurement' or 'registry') in `cache`,
    for `model` when given; an entry is found by what it says it is, whichever folder and key hash hold it."""
    found = {}
    for path in sorted(cache.rglob(f"{kind}/*.json")):
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            key, value = entry["key"], entry["value"]
        except (ValueError, KeyError, TypeError):
            continue
        if model is None or key.get("model") == model:
            found[path] = value
    return found


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_cache_entry_is_measured_again(corruption, project_with, cli, shared_cache, tmp_path):
    project_with(GOOD.encode())
    assert cli("verify", P)[0] == 0  # the session cache holds resnet18 and the registry now
    cache = tmp_path / "cache"
    shutil.copytree(shared_cache, cache)
    corrupted = [*entries_of(cache, "measurement", "resnet18"), *entries_of(cache, "registry")]
    assert len(corrupted) >= 2
    for entry in corrupted:
        entry.write_bytes(CORRUPTIONS[corruption](entry.read_bytes()))

    code, out, err = cli("verify", P, cache=cache)
    assert (code, err) == (0, "")
    assert re.fullmatch(r"ok: 1 card, 1 model: 9 figures ok, 0 drifts, 0 errors, 0 warnings "
                        r"\(1 model measured, 1 code block ran, 0 marked not to run, [0-9.]+ s\)\n", out)
    # written again, whole
    rewritten = entries_of(cache, "measurement", "resnet18").values()
    assert RESNET18_MEASURED.parameters in [value.get("parameters") for value in rewritten]
    # (the session's cache may hold registry entries of other code, e.g. of a site build's resfam: still corrupt)
    assert any("resnet18" in value.get("models", ()) for value in entries_of(cache, "registry").values())
    code, out, err = cli("verify", P, cache=cache)
    assert (code, err) == (0, "")
    assert "(0 models measured, 1 figure set from the cache, " in out  # the rewritten entries are used


# ---------------------------------------------------------------------------------------------
# No network: verify (and the worker and renderer processes it starts) with sockets cut off


def test_verify_makes_no_network_access(tmp_path):
    root = make_project(tmp_path / "project", GOOD.encode())
    env = offline_env(tmp_path / "guard", tmp_path / "cold-cache")  # a cold cache: the worker measures
    # the guard is live in any Python this environment starts: an attempt is refused and logged
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 80), 1)"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 1 and "network access in a test" in probe.stderr
    assert network_attempts(env) != []
    Path(env["RESFAM_TEST_NETWORK_LOG"]).unlink()

    done = subprocess.run([sys.executable, "-m", "resfam.cards.cli", "verify", P, "--cache-dir",
                           env["RESFAM_CACHE_DIR"]], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: 1 card, 1 model: 9 figures ok")
    assert "(1 model measured, " in done.stdout
    assert "measured 1/1: resnet18 (224 px)" in done.stderr
    assert network_attempts(env) == []


# ---------------------------------------------------------------------------------------------
# Warnings fail --strict (issue 20): verify passes without it, and says why --strict fails

WARNED = {
    "stage-list-by-hand": (GOOD.replace("instead of learning unreferenced functions.\n",
                                        "instead of learning unreferenced functions. resnet18 stacks 2, 2, 2, 2 "
                                        "blocks.\n"),
                           f"{P}:4: warning: the prose writes the stage layout '2, 2, 2, 2 blocks' by hand, which "
                           "the build does not check; the code measures resnet18 blocks: 2, 2, 2, 2\n"
                           "    hint: write {{ models.resnet18.blocks | join(', ') }} instead (the template's "
                           "variables: resfam/cards/render.py)"),
    "collection-without-models": (GOOD.replace("- Name: ResNet\n", "- Name: ResNet\n- Name: ResNet-C\n", 1),
                                  f"{P}:22: warning: the collection 'ResNet-C' has no model: no entry is 'In "
                                  "Collection' 'ResNet-C'\n    hint: add 'In Collection: ResNet-C' to its models, "
                                  "or remove the collection"),
}


@pytest.mark.parametrize("name", sorted(WARNED))
def test_a_warning_passes_verify_and_fails_verify_strict(name, project_with, cli):
    card, warning = WARNED[name]
    project_with(card.encode())
    code, out, err = cli("verify", P)
    assert (code, err) == (0, "")
    assert out.startswith(warning + "\nok: 1 card, 1 model: ")
    code, strict_out, _ = cli("verify", P, "--strict")
    assert code == 1 and strict_out.startswith(warning + "\nFAILED: 1 card, 1 model: ")  # the summary says so too


@pytest.mark.slow  # a real `mkdocs build`
def test_a_warning_fails_the_strict_site_build(tmp_path, shared_cache):
    card, warning = WARNED["collection-without-models"]
    build = mkdocs_build(make_project(tmp_path / "project", card.encode()) / "mkdocs.yml", tmp_path, shared_cache)
    assert build.returncode == 1 and f"WARNING -  resfam: {warning}" in build.output, build.output


def test_a_block_marked_not_to_run_is_counted_and_not_run(project_with, cli):
    marked = GOOD.replace("{% include 'code_snippets.md' %}\n", "{% include 'code_snippets.md' %}\n\n<!-- no-run: "
                          "partial -->\n```python\nmodel.fit(images, ...)\n```\n")
    project_with(marked.encode())
    code, out, err = cli("verify", P)
    assert (code, err) == (0, "")
    assert "1 code block ran, 0 marked" not in out and ", 1 code block ran, 1 marked not to run, " in out


def test_a_block_over_the_time_limit_is_an_error_at_its_line(project_with, cli):
    endless = GOOD.replace("{% include 'code_snippets.md' %}\n", "{% include 'code_snippets.md' %}\n\n```python\n"
                           "x = 0\nwhile True: x = model.eval()\n```\n")
    project_with(endless.encode())
    code, out, err = cli("verify", P, "--time-limit", "3")
    assert (code, err) == (2, "")
    assert out.startswith(f"{P}:10: error: the code block starting 'x = 0' fails: running code block 2 took "
                          "more than 3 s, the time limit per step (set with --time-limit or the plugin's time_limit)")
    assert ", 1 code block ran, 1 failed, 0 marked not to run, " in out
