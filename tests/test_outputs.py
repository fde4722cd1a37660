"""No command destroys a file that is not its own: every path-taking option of every subcommand, as the
argument parser lists them, tried with every kind of project file in a copy of a project, changes no byte
but what the command exists to change; the writing options refuse the project's source folders and files
they did not write (exit 2, the file named, the option to use); `verify --format json`."""
from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pytest
from card_entries import RESNET18, RESNET26, card_text
from sitebuild import REPO

import resfam
from resfam.cards import CardError, write_atomic
from resfam.cards.cli import _parser, main

CARD = "templates/models/resnet.md"
# resnet26 without its Layers: `sync --fill --write` has a figure to add
CARD_TEXT = card_text(RESNET18, RESNET26.replace("    Layers: 26\n", ""))

# The kinds of file of a project that a path-taking option may be given
PROJECT_PATHS = {
    "card template": CARD,
    "docs page": "docs/index.md",
    "mkdocs.yml": "mkdocs.yml",
    "model file": "resfam/models/resnet.py",
    "templates folder": "templates",
    "docs folder": "docs",
    "package folder": "resfam/models",
}

# An option takes a path when its metavar says so (the convention of cli.py): PATH, FILE, DIR, OUT or DOCS (a
# docs folder), or a longer name ending in one of them (SITE_DIR); or when argparse converts it to a path itself.
PATH_METAVARS = ("PATH", "FILE", "DIR", "OUT", "DOCS")


def takes_path(action: argparse.Action) -> bool:
    if action.nargs == 0 or action.choices or isinstance(action, argparse._SubParsersAction):
        return False
    if action.type is Path or isinstance(action.type, argparse.FileType):
        return True
    metavar = action.metavar or action.dest.upper()
    names = metavar if isinstance(metavar, tuple) else (metavar,)
    return any(name == kind or name.endswith("_" + kind) for name in names for kind in PATH_METAVARS)


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name (an alias once)."""
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    found: dict[str, argparse.ArgumentParser] = {}
    for name, parser in commands.choices.items():
        if parser not in found.values():
            found[name] = parser
    return found


def path_options() -> list[tuple[str, str]]:
    """(subcommand, dest) of every path-taking option and positional."""
    return [(name, action.dest) for name, parser in subcommands().items() for action in parser._actions
            if takes_path(action)]


def base_values(command: str, outside: Path) -> dict[str, object]:
    """A command line that works in the project (by dest): each command doing what it exists to do, with
    --force where it has one, and outputs outside the project. A subcommand not named here gets its
    required arguments filled in by `command_line`."""
    return {
        "verify": {"paths": [CARD], "json": str(outside / "report.json"), "force": True},
        "sync": {"paths": [CARD], "write": True, "fill": True},
        "new": {"family": "resnest", "models": ["resnest14d"], "write": True},
        "list": {"paths": [CARD]},
        "export": {"target": "hub", "out": str(outside / "hub"), "paths": [CARD], "force": True},
        # the generated pages into docs/ (`resfam-cards pages`, where it exists)
        "pages": {"without_card": [model for model in resfam.list_models() if model not in ("resnet18", "resnet26")]},
    }.get(command, {})


def command_line(command: str, values: dict[str, object], filler: str) -> list[str]:
    """The arguments of `command` with these values (by dest); a required argument without a value gets
    `filler` (its first choice, if it has choices)."""
    parser = subcommands()[command]
    positionals, options = [], []
    for action in parser._actions:
        if action.dest in values:
            value = values[action.dest]
        elif action.required or (not action.option_strings and action.nargs not in ("*", "?")):
            value = action.choices and next(iter(action.choices)) or filler
        else:
            continue
        if not action.option_strings:
            positionals += value if isinstance(value, list) else [value]
        elif action.nargs == 0:
            options += [action.option_strings[-1]] if value else []
        else:
            for item in value if isinstance(value, list) else [value]:
                options += [action.option_strings[-1], str(item)]
    return [command, *positionals, *options]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `root`, by relative path."""
    return {path.relative_to(root).as_posix(): None if path.is_dir() else path.read_bytes()
            for path in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A small project: the repository's mkdocs.yml, docs/ and templates/ (with one small card of models the
    session's cache holds, instead of the repository's cards), and a copy of the resfam package."""
    root = tmp_path_factory.mktemp("pristine") / "project"
    root.mkdir()
    shutil.copy(REPO / "mkdocs.yml", root)
    shutil.copytree(REPO / "docs", root / "docs")
    shutil.copytree(REPO / "templates", root / "templates", ignore=shutil.ignore_patterns("models"))
    (root / "templates" / "models").mkdir()
    (root / CARD).write_text(CARD_TEXT)
    shutil.copytree(Path(resfam.__file__).parent, root / "resfam", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture
def project(pristine, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the small project, as the working folder."""
    root = tmp_path / "project"
    shutil.copytree(pristine, root)
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="module")
def expected_changes(pristine, shared_cache, tmp_path_factory) -> dict[str, dict[str, bytes | None]]:
    """What each command exists to change in the project, from its working command line: {command:
    {path: bytes}} (sync: the card's figures; new: its card; the others: nothing)."""
    changes = {}
    for command in subcommands():
        root = tmp_path_factory.mktemp(f"base-{command}") / "project"
        shutil.copytree(pristine, root)
        outside = root.parent / "outside"
        outside.mkdir()
        before = snapshot(root)
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(root)
            values = {**base_values(command, outside), "cache_dir": str(shared_cache), "quiet": True}
            code = main(command_line(command, values, CARD))
        # the working command line works, and writes its outputs (if any) outside
        assert code == 0 or not base_values(command, outside), command
        outputs = {"verify": ["report.json"], "export": ["hub"]}.get(command)
        assert outputs is None or [path.name for path in outside.iterdir()] == outputs
        after = snapshot(root)
        changes[command] = {path: data for path, data in after.items() if before.get(path, b"missing") != data}
    assert set(changes["sync"]) == {CARD} and set(changes["new"]) == {"templates/models/resnest.md"}
    assert not any(changes[command] for command in ("verify", "list", "export"))
    return changes


@pytest.mark.parametrize("kind", PROJECT_PATHS)
@pytest.mark.parametrize(("command", "dest"), path_options())
def test_no_path_option_changes_a_byte_it_does_not_exist_to_change(command, dest, kind, project, expected_changes,
                                                                   shared_cache, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    values = {**base_values(command, outside), "cache_dir": str(shared_cache), "quiet": True}
    path = PROJECT_PATHS[kind]
    values[dest] = [path] if isinstance(values.get(dest), list) else path
    before = snapshot(project)
    try:
        main(command_line(command, values, path))
    except SystemExit:  # argparse refused the arguments
        pass
    after = snapshot(project)
    allowed = expected_changes[command]
    changed = sorted(name for name in before.keys() | after.keys()
                     if before.get(name, b"missing") != after.get(name, b"missing")
                     and (name not in allowed or after.get(name) != allowed[name]))
    assert not changed, (command_line(command, values, path), capsys.readouterr().err)


def test_every_subcommand_has_path_options_and_options_about_files_say_so():
    """The walker above finds the options by their metavar: an option whose help speaks of a file or a folder
    must have a path metavar, or it would be left out."""
    assert {"verify", "sync", "new", "list", "export"} <= {command for command, _ in path_options()}
    assert ("verify", "json") in path_options() and ("export", "out") in path_options()
    # a {path} field of a URL template is not a path
    unnamed = [(name, action.dest) for name, parser in subcommands().items() for action in parser._actions
               if action.nargs != 0 and not action.choices and not takes_path(action) and action.help
               and re.search(r"(?<!{)\b(files?|folders?|director(y|ies)|paths?)\b(?!})", action.help)]
    assert unnamed == [], "give these options a path metavar (FILE, DIR, PATH, OUT, DOCS): the walker tries those"


# ---------------------------------------------------------------------------------------------
# The cases of the issue, and what a writing option may replace


def test_json_over_a_card_template_is_refused(project, shared_cache, capsys):
    before = snapshot(project)
    assert main(["verify", "--json", CARD, CARD, "-q", "--cache-dir", str(shared_cache)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{CARD}: error: --json: will not write the report into the project's source folder "
                          "templates/\n")
    assert "--format json" in err and snapshot(project) == before


def test_json_replaces_its_own_report_a_foreign_json_file_only_with_force(project, shared_cache, tmp_path,
                                                                         capsys):
    report, other, page = tmp_path / "report.json", tmp_path / "package.json", tmp_path / "notes.md"
    other.write_text('{"name": "not a report"}\n')
    page.write_text("# My notes\n")
    verify = ["verify", CARD, "-q", "--cache-dir", str(shared_cache)]
    assert main([*verify, "--json", str(report)]) == 0
    first = json.loads(report.read_text())
    assert first["generator"] == "resfam-cards verify" and first["ok"]
    assert main([*verify, "--json", str(report)]) == 0  # an earlier report: replaced
    capsys.readouterr()

    assert main([*verify, "--json", str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{other}: error: --json: the file is JSON but not a report of resfam-cards verify")
    assert "add --force" in err and other.read_text() == '{"name": "not a report"}\n'
    assert main([*verify, "--json", str(other), "--force"]) == 0
    assert json.loads(other.read_text())["generator"] == "resfam-cards verify"

    for force in ([], ["--force"]):  # not JSON: never replaced
        assert main([*verify, "--json", str(page), *force]) == 2
        assert f"{page}: error: --json: the file is not a report" in capsys.readouterr().err
        assert page.read_text() == "# My notes\n"
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_format_json_prints_the_report_on_stdout(project, shared_cache, tmp_path, capsys):
    assert main(["verify", CARD, "--format", "json", "--json", str(tmp_path / "r.json"), "-q",
                 "--cache-dir", str(shared_cache)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "r.json").read_text())
    assert printed["cards"][0]["path"] == CARD and printed["exit_code"] == 0
    assert "--format {text,github,json}" in subcommands()["verify"].format_help()
    assert "resfam-cards verify --format json" in (REPO / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("folder", ["templates", "docs", "resfam"])
def test_export_into_the_projects_source_folders_is_refused(folder, project, shared_cache, capsys):
    before = snapshot(project)
    assert main(["export", "hub", folder, CARD, "--force", "-q", "--cache-dir", str(shared_cache)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{folder}: error: OUT: will not export into the project's source folder {folder}/")
    assert snapshot(project) == before


def test_export_replaces_its_own_folders_a_hand_written_card_only_with_force(project, shared_cache, tmp_path,
                                                                            capsys):
    out = tmp_path / "hub"
    export = ["export", "hub", str(out), CARD, "-q", "--cache-dir", str(shared_cache)]
    assert main(export) == 0
    assert main(export) == 0  # over an earlier export
    hand_written = out / "resnet18" / "README.md"
    hand_written.write_text("# resnet18\n\nMy own card.\n")
    (out / "resnet26" / "config.json").write_text("{}\n")  # its README says it is an export: replaced
    capsys.readouterr()
    assert main(export) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{out}/resnet18/README.md: error: this model folder was not exported by resfam-cards")
    assert "add --force" in err and "resnet26" not in err
    assert hand_written.read_text() == "# resnet18\n\nMy own card.\n"
    assert main([*export, "--force"]) == 0
    assert hand_written.read_text().startswith("---\nlibrary_name: resfam\n")
    assert (out / "resnet26" / "config.json").read_text() != "{}\n"


def test_a_model_folder_that_links_into_the_project_is_refused_even_with_force(project, shared_cache, tmp_path,
                                                                              capsys):
    out = tmp_path / "hub"
    out.mkdir()
    (out / "resnet18").symlink_to(project / "docs")
    before = snapshot(project)
    assert main(["export", "hub", str(out), CARD, "--force", "-q", "--cache-dir", str(shared_cache)]) == 2
    assert f"{out}/resnet18: error: will not write into it: it leads into the project's source folder docs/" \
        in capsys.readouterr().err
    assert snapshot(project) == before and not (out / "resnet26").exists()

    (out / "resnet18").unlink()  # an earlier export, whose config.json is a link to a page
    assert main(["export", "hub", str(out), CARD, "-q", "--cache-dir", str(shared_cache)]) == 0
    (out / "resnet18" / "config.json").unlink()
    (out / "resnet18" / "config.json").symlink_to(project / "docs" / "index.md")
    capsys.readouterr()
    assert main(["export", "hub", str(out), CARD, "--force", "-q", "--cache-dir", str(shared_cache)]) == 2
    assert f"{out}/resnet18/config.json: error: will not replace it: it leads into the project's source folder " \
        "docs/" in capsys.readouterr().err
    assert snapshot(project) == before


def test_a_cache_dir_that_is_not_a_cache_is_refused(project, tmp_path, capsys):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me\n")
    for cache in (notes, project / "docs", project / "mkdocs.yml"):
        assert main(["list", CARD, "-q", "--cache-dir", str(cache)]) == 2
        assert re.match(rf"{re.escape(str(cache))}: error: --cache-dir: ", capsys.readouterr().err)
    assert [p.name for p in notes.iterdir()] == ["todo.txt"]


def test_new_writes_its_card_at_once_and_never_over_a_file(project, shared_cache, tmp_path, capsys):
    target = tmp_path / "new" / "resnest.md"
    target.parent.mkdir()
    write_atomic(target, "new\n", replace=False)
    assert target.read_text() == "new\n"
    with pytest.raises(CardError) as raised:
        write_atomic(target, "other\n", replace=False)
    assert raised.value.findings[0].message.startswith("cannot write the card template: File exists")
    assert target.read_text() == "new\n" and [p.name for p in target.parent.iterdir()] == ["resnest.md"]

    assert main(["new", "resnest", "--model", "resnest14d", "--write", "--templates", "docs", "-q",
                 "--cache-dir", str(shared_cache)]) == 2
    assert "docs/models/resnest.md: error: will not write a card template into the project's docs/ folder" \
        in capsys.readouterr().err
    assert not (project / "docs" / "models").exists()


def test_an_earlier_export_of_another_zoo_is_recognised_as_ours(tmp_path):
    """The Hub README names the zoo's package as its library (timm, a user's own): its `resfam` block is
    the export's mark, so exporting again replaces it without --force; a README without the block is not."""
    from resfam.cards.outputs import export_problems

    out = tmp_path / "hub"
    for name, header in (("vit_tiny_patch16_224", "library_name: timm\nresfam:\n  id: vit_tiny_patch16_224\n"),
                         ("hand_written", "library_name: timm\n")):
        (out / name).mkdir(parents=True)
        (out / name / "README.md").write_text(f"---\n{header}---\n\n# {name}\n", encoding="utf-8")
    problems = export_problems(str(out), ["vit_tiny_patch16_224", "hand_written"], ("README.md",), "templates",
                               force=False)
    assert [finding.path for finding in problems] == [str(out / "hand_written" / "README.md")]
