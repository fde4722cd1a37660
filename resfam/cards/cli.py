"""`resfam-cards`: verify the model cards against the code, sync figures back, scaffold a new card.

    resfam-cards verify [PATH...] [--json FILE] [--tolerance FIELD=PCT]... [--strict]
                                                        exit 0 clean, 1 drift (--strict: or a literal figure in
                                                        the prose), 2 bad input
                        [--format github]               findings as GitHub Actions annotations
    resfam-cards sync [PATH...] [--write] [--fill]      the figure changes as a diff; --write applies them
    resfam-cards new FAMILY --model ID [--model ID...] [--write]   a card template with measured figures
    resfam-cards list [PATH...]                         the cards, their models and their status
    resfam-cards export hub OUT [PATH...] [--license ID]   a Hugging Face Hub folder per model (README.md,
                                                        config.json), from cards that verify

Every command takes --templates DIR (default: templates), --no-cache, --cache-dir DIR, --workers N,
--time-limit SECONDS (per step of measuring a model), --memory-limit SIZE (per measuring worker), --quiet
(no progress lines on stderr), --zoo SOURCE (resfam, timm or package.module:attribute; default resfam)
and --code-url TEMPLATE (`Code:` as a URL of {path}, {line}, {version}). Bad input is reported one
problem per line, all together, with nothing written, and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cache import default_cache_dir
from .export import default_license, hub_folders, write_folders
from .findings import CardError, Finding
from .limits import format_size
from .model_index import parse_card
from .pool import (
    DEFAULT_MEMORY,
    DEFAULT_STEP_SECONDS,
    MEMORY_LIMIT_HINT,
    TIME_LIMIT_HINT,
    Limits,
    LimitsError,
    WorkerError,
)
from .report import format_github, format_report, summary_line, write_json
from .sync import (
    METADATA_SYNC_FIELDS,
    MODEL_SYNC_FIELDS,
    apply_edits,
    field_line,
    plan_sync,
    render_diff,
    sync_values,
    write_atomic,
)
from .verify import DEFAULT_TOLERANCES, MEASURED_FIELDS, Report, resolve_tolerances, shown_path, verify
from .vocabulary import read_vocabulary
from .zoo import Progress, ZooMeasurer
from .zoos import DEFAULT_ZOO, listing_hint

EXIT_OK, EXIT_DRIFT, EXIT_BAD_INPUT = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except CardError as error:
        _print_problems(error.findings)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------------------------------------
# Commands


def _verify(args: argparse.Namespace) -> int:
    report = _run_verify(args)
    formatter = format_github if args.format == "github" else format_report
    sys.stdout.write(formatter(report, verbose=args.verbose))
    if args.json:
        write_json(report, args.json)
    return report.strict_exit_code if args.strict else report.exit_code


def _sync(args: argparse.Namespace) -> int:
    report = _run_verify(args)
    if report.errors:
        _print_problems(report.errors)
        print(f"nothing written: {len(report.errors)} problem(s) to fix first", file=sys.stderr)
        return EXIT_BAD_INPUT
    changes = []
    for result in report.cards:
        edits = plan_sync(result.card, sync_values(result, args.fill), fill_missing=args.fill)
        if edits:
            new_text = apply_edits(result.card.text, edits)
            changes.append((result, edits, new_text))
            sys.stdout.write(render_diff(result.path, result.card.text, new_text))
    if not changes:
        print(f"nothing to change: {len(report.cards)} card(s) match the code", file=sys.stderr)
        return EXIT_OK
    edits_count = sum(len(edits) for _, edits, _ in changes)
    if not args.write:
        print(f"{edits_count} figure(s) to change in {len(changes)} card(s); run again with --write to apply",
              file=sys.stderr)
        return EXIT_DRIFT
    for result, edits, new_text in changes:
        _unchanged_since_read(result.path, result.card.text)
        write_atomic(result.path, new_text)
        print(f"wrote {len(edits)} figure(s) to {result.path}", file=sys.stderr)
    return EXIT_OK


def _new(args: argparse.Namespace) -> int:
    target = Path(args.templates) / "models" / f"{args.family}.md"
    problems = []
    if args.write and target.exists():
        problems.append(Finding("error", shown_path(target), None, "the card template already exists",
                                hint=f"edit it, or run: resfam-cards sync --fill --write {shown_path(target)}"))
    with _measurer(args) as zoo:
        try:
            registry = zoo.registry()
        except WorkerError as error:
            raise CardError([Finding("error", args.zoo, None, f"cannot load the {args.zoo} model zoo: {error}",
                                     hint="fix the model code at the place named")]) from None
        families = sorted({model.family for model in registry.values() if model.family is not None})
        if families and args.family not in families:
            problems.append(Finding("error", "FAMILY", None, f"unknown family {args.family!r}",
                                    hint=f"the registered families are: {', '.join(families)}"))
        for model_id in args.models:
            registered = registry.get(model_id)
            if registered is None:
                problems.append(Finding("error", "--model", None, f"unknown model {model_id!r}",
                                        hint=f"the registered models are listed by: {listing_hint(args.zoo)}"))
            elif registered.family is not None and registered.family != args.family and args.family in families:
                problems.append(Finding("error", "--model", None, f"{model_id} is registered in family "
                                                                  f"{registered.family!r}, not {args.family!r}",
                                        hint=f"use: new {registered.family} --model {model_id}"))
        if problems:
            raise CardError(problems)
        chosen = {model_id: registry[model_id] for model_id in dict.fromkeys(args.models)}
        measured = zoo.measure(chosen, {model_id: {model.image_size} for model_id, model in chosen.items()})
    failed = [Finding("error", "--model", None, f"{model_id} could not be measured: {model.error}")
              for model_id, model in measured.items() if model.error]
    if failed:
        raise CardError(failed)
    text = card_template(args.collection or args.family,
                         {model_id: model.values(model.registered.image_size) for model_id, model in measured.items()},
                         snippets=(Path(args.templates) / "code_snippets.md").is_file())
    parse_card(shown_path(target), text)  # what `new` writes must read back
    if not args.write:
        sys.stdout.write(text)
        return EXIT_OK
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(target, "x", encoding="utf-8") as handle:  # never over an existing file
            handle.write(text)
    except FileExistsError:
        raise CardError([Finding("error", shown_path(target), None, "the card template already exists",
                                 hint="edit it instead")]) from None
    print(f"wrote {shown_path(target)}: {len(measured)} model(s); add the text, the citation and the "
          f"accuracies, then run: resfam-cards verify {shown_path(target)}", file=sys.stderr)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    report = _run_verify(args)
    rows = [("card", "model", "ID", "status")]
    for result in report.cards:
        if result.card is None:
            rows.append((result.path, "-", "-", f"error: {len(result.errors)} problem(s)"))
            continue
        for model in result.card.models:
            mine = [f for f in result.findings if f.model == model.name]
            rows.append((result.path, model.name, model.model_id, _status(mine)))
        loose = [f for f in result.findings if f.model is None and f.status in ("error", "drift")]
        if loose:
            rows.append((result.path, "-", "-", _status(loose)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])
    print(summary_line(report))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    report = _run_verify(args)
    if not report.ok:
        sys.stderr.write(format_report(report))
        print("nothing written: the cards must match the code before they are exported", file=sys.stderr)
        return report.exit_code
    folders = hub_folders(report, args.templates, license_id=args.license or default_license())
    write_folders(folders, args.out)
    print(f"wrote {len(folders)} model folder(s) to {args.out}: README.md and config.json each; nothing was "
          "uploaded", file=sys.stderr)
    return EXIT_OK


def _status(findings: list[Finding]) -> str:
    errors = sum(f.status == "error" for f in findings)
    drifts = sum(f.status == "drift" for f in findings)
    if errors:
        return f"error ({errors})"
    if drifts:
        return f"drift ({drifts})"
    return f"ok ({sum(f.status == 'ok' for f in findings)} figures)"


# ---------------------------------------------------------------------------------------------
# Scaffolding


def card_template(collection: str, models: dict[str, dict[str, Any]], snippets: bool = True) -> str:
    """A new card template: placeholders for the text, and the model-index block with every field
    the code gives (`models`: {model ID: {card field: value}}), written as `sync --fill` writes them;
    with `snippets`, it includes the templates folder's code_snippets.md."""
    lines = [
        f"# {collection}",
        "",
        f"TODO: what is new about {collection}, in a few sentences, and the paper it comes from.",
        "",
        *(["{% include 'code_snippets.md' %}", ""] if snippets else []),
        "## How do I train this model?",
        "",
        "TODO: the training recipe, or where to find it.",
        "",
        "## Citation",
        "",
        "```BibTeX",
        "TODO: the paper's BibTeX entry",
        "```",
        "",
        "<!--",
        "Type: model-index",
        "Collections:",
        f"- Name: {collection}",
        "Models:",
    ]
    for model_id, values in models.items():
        lines += [f"- Name: {model_id}", f"  In Collection: {collection}", "  Metadata:", f"    ID: {model_id}"]
        lines += [f"    {field_line(name, values[name], 4)}"
                  for name in METADATA_SYNC_FIELDS if values.get(name) is not None]
        lines += [f"  {field_line(name, values[name], 2)}"
                  for name in MODEL_SYNC_FIELDS if values.get(name) is not None]
    lines += ["-->", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Shared plumbing


def _run_verify(args: argparse.Namespace) -> Report:
    tolerances, limits = _settings(args)
    return verify(args.paths or None, templates_dir=args.templates, tolerances=tolerances,
                  cache_dir=args.cache_dir, use_cache=not args.no_cache, progress=_progress(args),
                  max_workers=args.workers, limits=limits, without_card=args.without_card, zoo=args.zoo,
                  code_url=args.code_url, coverage=getattr(args, "coverage", None) or ["*"],
                  vocabulary=args.vocabulary)


def _measurer(args: argparse.Namespace) -> ZooMeasurer:
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir(args.templates))
    project_dir = Path(args.templates).resolve().parent  # where a zoo of the project's own is found
    return ZooMeasurer(cache_dir=cache_dir, progress=_progress(args), max_workers=args.workers,
                       limits=_limits(args), zoo=args.zoo, code_url=args.code_url,
                       vocabulary=read_vocabulary(args.vocabulary),
                       project_dir=project_dir)


def _progress(args: argparse.Namespace):
    if args.quiet:
        return None

    def show(event: Progress) -> None:
        print(event, file=sys.stderr, flush=True)

    return show


def _settings(args: argparse.Namespace) -> tuple[dict[str, float], Limits]:
    """The tolerances and the limits, every problem of either reported together."""
    problems, tolerances, limits = [], {}, None
    try:
        tolerances = _tolerances(args.tolerance)
    except CardError as error:
        problems += error.findings
    try:
        limits = _limits(args)
    except CardError as error:
        problems += error.findings
    if args.workers is not None and args.workers < 1:
        problems.append(Finding("error", "--workers", None, f"at least one measuring process is needed, got "
                                                            f"{args.workers}", hint="leave --workers out for "
                                                                                    "the default"))
    if problems:
        raise CardError(problems)
    return tolerances, limits


def _limits(args: argparse.Namespace) -> Limits:
    try:
        return Limits.parse(args.time_limit, args.memory_limit)
    except LimitsError as error:
        options = {"seconds": ("--time-limit", TIME_LIMIT_HINT), "memory": ("--memory-limit", MEMORY_LIMIT_HINT)}
        raise CardError([Finding("error", options[name][0], None, problem, hint=options[name][1])
                         for name, problem in error.problems.items()]) from None


def _tolerances(settings: list[str]) -> dict[str, float]:
    """`--tolerance FIELD=PCT` settings as {field: percent}; CardError listing every bad one, whether
    malformed or refused by the verifier (an unknown field, a negative value)."""
    tolerances: dict[str, Any] = {}
    problems = []
    hint = (f"fields: {', '.join(MEASURED_FIELDS)}; defaults (%): "
            + ", ".join(f"{k}={v:g}" for k, v in DEFAULT_TOLERANCES.items()))
    for setting in settings:
        name, equals, value = setting.rpartition("=")
        if not equals or not name.strip():
            problems.append(Finding("error", "--tolerance", None,
                                    f"{setting!r}: expected FIELD=PERCENT, e.g. FLOPs=0.5", hint=hint))
            continue
        try:
            tolerances[name.strip()] = float(value.strip().rstrip("%"))
        except ValueError:
            problems.append(Finding("error", "--tolerance", None, f"{setting!r}: {value!r} is not a number of "
                                                                  "percent", hint=hint))
    try:
        resolve_tolerances(tolerances)
    except CardError as error:
        problems += [Finding("error", "--tolerance", None, f.message, hint=hint) for f in error.findings]
    if problems:
        raise CardError(problems)
    return tolerances


def _unchanged_since_read(path: str, text: str) -> None:
    """Refuse to overwrite a card that was edited while it was being verified."""
    try:
        current = Path(path).read_bytes().decode("utf-8")  # read_text would fold CRLF into LF
    except (OSError, UnicodeDecodeError):
        current = None
    if current != text:
        raise CardError([Finding("error", path, None, "the card changed while it was being verified; "
                                                      "nothing was written to it", hint="run the sync again")])


def _print_problems(findings: list[Finding]) -> None:
    for finding in findings:
        print(finding.format(), file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--templates", default="templates", metavar="DIR",
                        help="the templates folder, holding models/<family>.md (default: templates)")
    common.add_argument("--no-cache", action="store_true", help="measure every model, use no cache")
    common.add_argument("--cache-dir", metavar="DIR", help="the cache folder (default: .resfam-cache next "
                                                           "to the templates folder)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    common.add_argument("--workers", type=int, metavar="N",
                        help="measuring processes at most (default: as many as the usable cores, and the "
                             "available memory at --memory-limit each, allow)")
    common.add_argument("--time-limit", metavar="SECONDS",
                        help=f"the time one step of measuring a model may take: building it, or tracing it at "
                             f"one image size (default: {DEFAULT_STEP_SECONDS:g})")
    common.add_argument("--memory-limit", metavar="SIZE",
                        help=f"the memory (address space) each measuring process may use, e.g. 2GiB "
                             f"(default: {format_size(DEFAULT_MEMORY)})")
    common.add_argument("--zoo", default=DEFAULT_ZOO, metavar="SOURCE",
                        help="where the models come from: resfam (default), timm, or package.module:attribute "
                             "(an object of your own package; one in the project folder is found there)")
    common.add_argument("--code-url", metavar="TEMPLATE",
                        help="Code: as a URL made of {path}, {line} and {version} (a zoo outside the repository), "
                             "e.g. https://github.com/huggingface/pytorch-image-models/blob/v{version}/{path}#L{line}")
    common.add_argument("--vocabulary", metavar="FILE",
                        help="architecture tags for classes the zoo owns: a YAML list of class, tag, definition")
    tolerance = argparse.ArgumentParser(add_help=False)
    tolerance.add_argument("--tolerance", action="append", default=[], metavar="FIELD=PCT",
                           help=f"relative tolerance in percent for {', '.join(MEASURED_FIELDS)} "
                                "(repeatable; defaults: " + ", ".join(f"{k} {v:g}%%" for k, v in
                                                                       DEFAULT_TOLERANCES.items()) + ")")
    checking = argparse.ArgumentParser(add_help=False, parents=[tolerance])
    checking.add_argument("paths", nargs="*", metavar="PATH", help="card templates (default: all)")
    checking.add_argument("--without-card", action="append", default=[], metavar="ID",
                          help="a registered model left without a card on purpose (repeatable); a full run "
                               "fails on any other model that no card lists")
    checking.add_argument("--coverage", action="append", default=[], metavar="PATTERN",
                          help="a full run asks a card only of the model IDs these shell-style patterns match "
                               "(repeatable; default: every model)")

    parser = argparse.ArgumentParser(prog="resfam-cards", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    verify_command = commands.add_parser("verify", parents=[common, checking],
                                         help="check the cards against the code (exit 0 clean, 1 drift, 2 bad input)")
    verify_command.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    verify_command.add_argument("-v", "--verbose", action="store_true", help="list every figure, also the ok ones")
    verify_command.add_argument("--strict", action="store_true",
                                help="a figure the prose writes out instead of citing the measurement fails too "
                                     "(exit 1), as in mkdocs build --strict")
    verify_command.add_argument("--format", choices=("text", "github"), default="text",
                                help="text (default), or github: each finding as a GitHub Actions workflow "
                                     "command, shown on the pull request's changed lines")
    verify_command.set_defaults(command=_verify)

    sync_command = commands.add_parser("sync", parents=[common, checking],
                                       help="show the figure changes that make the cards match the code")
    sync_command.add_argument("--write", action="store_true", help="rewrite the cards (only the changed figures)")
    sync_command.add_argument("--fill", action="store_true", help="also add the fields a card leaves out")
    sync_command.set_defaults(command=_sync)

    new_command = commands.add_parser("new", parents=[common], help="scaffold a card template for registered models")
    new_command.add_argument("family", metavar="FAMILY", help="the family, e.g. resnet-d")
    new_command.add_argument("--model", dest="models", action="append", required=True, metavar="ID",
                             help="a registered model ID (repeatable)")
    new_command.add_argument("--collection", help="the collection name shown as the title (default: FAMILY)")
    new_command.add_argument("--write", action="store_true",
                             help="write templates/models/FAMILY.md (never over an existing file)")
    new_command.set_defaults(command=_new)

    list_command = commands.add_parser("list", parents=[common, checking], help="the cards, their models and status")
    list_command.set_defaults(command=_list)

    export_command = commands.add_parser("export", parents=[common, tolerance],
                                         help="write the verified cards for another "
                                                                          "site (hub: the Hugging Face Hub)")
    export_command.add_argument("target", choices=("hub",), help="hub: a folder per model with README.md and "
                                                                 "config.json, ready to push next to its weights")
    export_command.add_argument("out", metavar="OUT", help="the folder to write the model folders into")
    export_command.add_argument("paths", nargs="*", metavar="PATH", help="card templates (default: all)")
    export_command.add_argument("--license", metavar="ID", help="the Hub license id of the cards (default: "
                                                                "resfam's own, apache-2.0)")
    export_command.set_defaults(command=_export, without_card=None)  # exports the cards, whatever they cover
    return parser


if __name__ == "__main__":
    sys.exit(main())
