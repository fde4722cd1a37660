"""What a `resfam-cards` command may write over: checked before anything is written (docs/architecture.md,
"What the command line writes").

A command replaces only a file of its own, recognised by the marker it writes into it: the JSON report
(`"generator": "resfam-cards verify"`), a Hub folder (its README.md's metadata names resfam and the model).
A file of the same kind without the marker (another JSON file, a hand-written Hub card) is replaced only
with `--force`; any other file (a card template, a page, mkdocs.yml, a model file) never is. Nothing is
written into the project's own source folders: the templates folder, and `docs/` and `resfam/` next to
it (its site and its package), whatever `--force` says. Each problem is a Finding naming the file and
the option to use; the caller reports them all and writes nothing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from .cache import is_cache_folder
from .findings import Finding
from .verify import shown_path

REPORT_GENERATOR = "resfam-cards verify"  # the JSON report's marker: its "generator"
_SOURCE_FOLDERS = ("docs", "resfam")  # next to the templates folder: the project's site and package


def project_folders(templates_dir: str | os.PathLike[str], *, templates: bool = True) -> list[Path]:
    """The project's source folders, which no output may go into: in the folder holding the templates
    folder and in the working folder, `docs/` and `resfam/`; with `templates`, also the templates folder
    and `templates/`."""
    roots = {Path(os.path.realpath(templates_dir)).parent, Path(os.path.realpath(os.getcwd()))}
    names = ("templates", *_SOURCE_FOLDERS) if templates else _SOURCE_FOLDERS
    folders = {root / name for root in roots for name in names}
    if templates:
        folders.add(Path(os.path.realpath(templates_dir)))
    return sorted(folders)


def inside_project(path: str | os.PathLike[str], templates_dir: str | os.PathLike[str], *,
                   templates: bool = True) -> Path | None:
    """The project source folder that `path` (resolved: through symbolic links) is in, or None."""
    target = Path(os.path.realpath(path))
    return next((folder for folder in project_folders(templates_dir, templates=templates)
                 if target.is_relative_to(folder)), None)


def report_file_problems(path: str, option: str, templates_dir: str, force: bool) -> list[Finding]:
    """Why the JSON report may not be written to `path` (empty: it may)."""
    hint = f"give {option} a new file name outside the project's source folders, or print the report: --format json"
    folder = inside_project(path, templates_dir)
    if folder is not None:
        return [Finding("error", path, None, f"{option}: will not write the report into the project's source "
                                             f"folder {shown_path(folder)}/", hint=hint)]
    if not os.path.lexists(path):
        return []
    if os.path.isdir(path):
        return [Finding("error", path, None, f"{option}: this is a folder, not a file", hint=hint)]
    data = _json_of(path)
    if isinstance(data, dict) and data.get("generator") == REPORT_GENERATOR:
        return []  # an earlier report: replaced
    if data is not None and not force:
        return [Finding("error", path, None, f"{option}: the file is JSON but not a report of resfam-cards verify; "
                                             "it was left as it is",
                        hint=f"to replace it, add --force; or {hint}")]
    if data is None:
        return [Finding("error", path, None, f"{option}: the file is not a report of resfam-cards verify (not "
                                             "JSON); it was left as it is", hint=hint)]
    return []


def export_problems(out: str, names: list[str], files: tuple[str, ...], templates_dir: str,
                    force: bool) -> list[Finding]:
    """Why the Hub folders `out/<name>/` (each holding `files`) may not be written (empty: they may)."""
    hint = "give OUT a folder outside the project's source folders (e.g. hub-export/)"
    folder = inside_project(out, templates_dir)
    if folder is not None:
        return [Finding("error", out, None, f"OUT: will not export into the project's source folder "
                                            f"{shown_path(folder)}/ (the next build would publish it)", hint=hint)]
    if os.path.lexists(out) and not os.path.isdir(out):
        return [Finding("error", out, None, "OUT: cannot make the folder: a file of that name is in the way",
                        hint="give OUT a folder, new or from an earlier export")]
    problems = []
    for name in names:
        target = Path(out) / name
        inside = inside_project(target, templates_dir)
        if inside is not None:  # a symbolic link into the project
            problems.append(Finding("error", str(target), None, f"will not write into it: it leads into the "
                                                                f"project's source folder {shown_path(inside)}/",
                                    hint="remove the link, or give another OUT"))
            continue
        if os.path.lexists(target) and not target.is_dir():
            problems.append(Finding("error", str(target), None, "cannot make the folder: a file of that name is in "
                                                                "the way; it was left as it is",
                                    hint="move it, or give another OUT"))
            continue
        ours = force or _exported(target / "README.md")  # an earlier export of this model: replaced
        for file in files:
            path = target / file
            if not os.path.lexists(path):
                continue
            inside = inside_project(path, templates_dir)
            if inside is not None or os.path.isdir(path):
                why = f"it leads into the project's source folder {shown_path(inside)}/" if inside else "it is a folder"
                problems.append(Finding("error", str(path), None, f"will not replace it: {why}",
                                        hint="move it, or give another OUT"))
            elif not ours:
                problems.append(Finding("error", str(path), None, "this model folder was not exported by "
                                                                  "resfam-cards (its README.md does not say so); it "
                                                                  "was left as it is",
                                        hint="to replace its README.md and config.json, add --force; or give another "
                                             "OUT"))
    return problems


def cache_dir_problems(cache_dir: str | os.PathLike[str], option: str, templates_dir: str) -> list[Finding]:
    """Why `cache_dir` may not be used (empty: it may): a folder of the project's sources, a file, or a
    folder holding other things than a cache of resfam-cards."""
    hint = "give --cache-dir a new folder or an earlier cache, or leave it out for .resfam-cache/"
    shown = os.fspath(cache_dir)
    folder = inside_project(cache_dir, templates_dir)
    if folder is not None:
        return [Finding("error", shown, None, f"{option}: will not keep the cache in the project's source "
                                              f"folder {shown_path(folder)}/", hint=hint)]
    if not os.path.lexists(cache_dir) or is_cache_folder(cache_dir):
        return []
    what = "a folder holding other things than a cache of resfam-cards" if os.path.isdir(cache_dir) else "a file"
    return [Finding("error", shown, None, f"{option}: this is {what}; nothing was written to it", hint=hint)]


def pages_folder_problems(out: str, templates_dir: str) -> list[Finding]:
    """Why `resfam-cards pages` may not write into `out` (empty: it may): a file, or a folder inside one of
    the project's source folders other than its docs folder (the templates, which the pages are made from,
    or the package)."""
    problem = None
    folder = inside_project(out, templates_dir)
    if os.path.exists(out) and not os.path.isdir(out):
        problem = "is a file, not a folder"
    elif folder is not None and folder.name != "docs":  # docs/ is where the pages belong
        problem = f"is inside the project's source folder {shown_path(folder)}/, not the site's docs folder"
    if problem is None:
        return []
    return [Finding("error", out, None, f"cannot write the pages here: {problem}",
                    hint="give the docs folder of the site, e.g. resfam-cards pages docs")]


def _exported(readme: Path) -> bool:
    """Whether `readme` is a Hub card exported by resfam-cards (its metadata says so)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not text.startswith("---\n") or "\n---\n" not in text:
        return False
    try:
        header = yaml.safe_load(text[4:text.index("\n---\n")])
    except yaml.YAMLError:
        return False
    # the library is the zoo's package (resfam, timm, a user's own): the `resfam` block is the export's own
    ours = isinstance(header, dict) and isinstance(header.get("resfam"), dict)
    return ours and isinstance(header.get("library_name"), str) and header["resfam"].get("id") is not None


def _json_of(path: str) -> object | None:
    """The JSON data in the file, or None when it is not JSON (or cannot be read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
