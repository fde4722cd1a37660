"""`resfam-cards`: verify the model cards against the code, sync figures back, scaffold a new card.

    resfam-cards verify [PATH...] [--tolerance FIELD=PCT]... [--strict]
                                                        exit 0 clean, 1 drift (--strict: or any warning),
                                                        2 bad input
                        [--format github]               findings as GitHub Actions annotations
                        [--format json]                 the report as JSON on stdout
                        [--json FILE [--force]]         also the JSON report in FILE (a new file, or a report
                                                        of an earlier run; --force: any JSON file)
    resfam-cards sync [PATH...] [--write] [--fill]      the figure changes as a diff; --write applies them
                                                        exit 0 nothing to change (or written), 1 changes not
                                                        written, 2 bad input (nothing written)
    resfam-cards new FAMILY --model ID [--model ID...] [--collection NAME] [--write]
                                                        a card template with measured figures
    resfam-cards list [PATH...]                         the cards, their models, status and figures
    resfam-cards bench ID... --output FILE [--batch N] [--threads N]   CPU inference speed, to a benchmark file
    resfam-cards measure ID [--image-size N]            one model measured in this process, every figure and
                                                        tag with how it was found (to debug a model)
    resfam-cards export hub OUT [PATH...] [--license ID] [--force]   a Hugging Face Hub folder per model
                                                        (README.md, config.json), from cards that verify; it
                                                        replaces earlier exports (--force: any such folder)
    resfam-cards pages [DOCS] [--config FILE] [--strict] [--watch]   the site's card pages, overview,
                                                        models.json and measurement tables as files in the
                                                        docs folder, for a builder without the plugin
    resfam-cards --version

Every command takes --templates DIR (default: templates), --no-cache, --cache-dir DIR, --workers N,
--time-limit SECONDS (per step of measuring a model), --memory-limit SIZE (per measuring worker), --quiet
(no progress lines on stderr), --zoo SOURCE (resfam, timm or package.module:attribute; default resfam)
and --code-url TEMPLATE (`Code:` as a URL of {path}, {line}, {version}). Bad input is reported one
problem per line, all together, with nothing written, and exit code 2. No command writes into the
project's templates/, docs/ or resfam/ folders but what it exists to change (sync: the cards' figures;
new: the new card), nor over a file it did not write (outputs.py).

An option that takes a path says so by its metavar: PATH (a card template read), FILE (a file), DIR (a
folder), OUT (a folder written into) or DOCS (a docs folder), alone or as the end of a longer one
(SITE_DIR); the test that tries every path-taking option with every kind of project file
(tests/test_outputs.py) finds them by it.
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .bench import DEFAULT_BATCH, DEFAULT_RUNS, DEFAULT_THREADS, bench, check_output, write_benchmark
from .cache import PACKAGE_DIR, default_cache_dir, installed_versions
from .claims import ModelClaims
from .export import EXPORTED_FILES, hub_folders, write_folders
from .fields import IDENTITY, REPORTED, TOLERANCE, fields_where
from .findings import CardError, Finding
from .limits import (
    DEFAULT_MEMORY,
    DEFAULT_STEP_SECONDS,
    MEMORY_LIMIT_HINT,
    TIME_LIMIT_HINT,
    Limits,
    LimitsError,
    format_size,
)
from .measure_one import measure_here
from .model_index import parse_card
from .outputs import cache_dir_problems, export_problems, inside_project, pages_folder_problems, report_file_problems
from .pool import WorkerError
from .report import format_github, format_report, json_text, summary_line, write_json
from .site import Project, read_project, site_files, source_state, table_files, write_site_files
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
from .unfinished import PLACEHOLDER, display_name
from .verify import DEFAULT_TOLERANCES, MEASURED_FIELDS, Report, resolve_tolerances, shown_path, verify
from .vocabulary import read_vocabulary
from .zoo import Progress, ZooMeasurer
from .zoos import DEFAULT_ZOO, listing_hint

EXIT_OK, EXIT_DRIFT, EXIT_BAD_INPUT = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if hasattr(args, "templates"):
        args.templates = args.templates or args.default_templates
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
    if args.json:
        _refuse(report_file_problems(args.json, "--json", args.templates, args.force))
    report = _run_verify(args)
    if args.format == "json":
        sys.stdout.write(json_text(report))
    else:
        formatter = format_github if args.format == "github" else format_report
        sys.stdout.write(formatter(report, verbose=args.verbose, strict=args.strict))
    if args.json:
        _refuse(report_file_problems(args.json, "--json", args.templates, args.force))  # as it is now
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
    source_folder = inside_project(target, args.templates, templates=False)
    if args.write and source_folder is not None:
        problems.append(Finding("error", shown_path(target), None, f"will not write a card template into the "
                                                                   f"project's {shown_path(source_folder)}/ folder",
                                hint="give --templates the templates folder (the default: templates)"))
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
                close = difflib.get_close_matches(model_id, list(registry), n=3, cutoff=0.5)
                problems.append(Finding("error", "--model", None, f"unknown model {model_id!r}",
                                        hint=(f"did you mean {' or '.join(close)}? " if close else "")
                                        + f"the registered models are listed by: {listing_hint(args.zoo)}"))
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
    text = card_template(args.collection or display_name(args.family),
                         {model_id: model.values(model.registered.image_size) for model_id, model in measured.items()},
                         snippets=(Path(args.templates) / "code_snippets.md").is_file())
    parse_card(shown_path(target), text)  # what `new` writes must read back
    if not args.write:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CardError([Finding("error", shown_path(target.parent), None, f"cannot make the folder: "
                                                                           f"{error.strerror or error}",
                                 hint="check --templates")]) from None
    write_atomic(target, text, replace=False)  # never over an existing file
    print(f"wrote {shown_path(target)}: {len(measured)} model(s); replace the TODO text, add the citation and "
          f"the accuracies (Results), then run: resfam-cards verify --strict {shown_path(target)}", file=sys.stderr)
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    report = _run_verify(args)
    rows = [("card", "model", IDENTITY.name, "status", "figures (as the card states them)")]
    for result in report.cards:
        if result.card is None:
            rows.append((result.path, "-", "-", f"error: {len(result.errors)} problem(s)", ""))
            continue
        for model in result.card.models:
            mine = [f for f in result.findings if f.model == model.name]
            rows.append((result.path, model.name, model.model_id, _status(mine), _figures(model)))
        loose = [f for f in result.findings if f.model is None and f.status in ("error", "drift")]
        if loose:
            rows.append((result.path, "-", "-", _status(loose), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    print(summary_line(report))
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    _refuse(export_problems(args.out, [], EXPORTED_FILES, args.templates, args.force))  # before measuring
    report = _run_verify(args)
    if not report.ok:
        sys.stderr.write(format_report(report))
        print("nothing written: the cards must match the code before they are exported", file=sys.stderr)
        return report.exit_code
    folders = hub_folders(report, args.templates, license_id=args.license)
    _refuse(export_problems(args.out, [folder.name for folder in folders], EXPORTED_FILES, args.templates,
                            args.force))
    write_folders(folders, args.out)
    print(f"wrote {len(folders)} model folder(s) to {args.out}: README.md and config.json each; nothing was "
          "uploaded", file=sys.stderr)
    return EXIT_OK


def _pages(args: argparse.Namespace) -> int:
    """Verify, then write the site's generated files into the docs folder (see site.py); with --watch,
    again on every change to a template or a model file, showing problems on the pages."""
    config = args.config or "mkdocs.yml"
    project = read_project(config) if args.config or os.path.exists(config) else None
    options = project.options if project else {}
    args.templates = args.templates or (project.templates_dir if project else "templates")
    if not args.cache_dir and options.get("cache_dir"):  # relative to the config file, as the plugin takes it
        args.cache_dir = os.path.join(os.path.dirname(os.path.abspath(config)), options["cache_dir"])
    args.tolerance = [f"{name}={value}" for name, value in (options.get("tolerances") or {}).items()] + args.tolerance
    args.without_card = [*(options.get("without_card") or []), *args.without_card]
    # the zoo settings of the plugin, as the plugin takes them (paths relative to the config file)
    if args.zoo == DEFAULT_ZOO and options.get("zoo"):
        args.zoo = options["zoo"]
    args.code_url = args.code_url or options.get("code_url")
    if not args.vocabulary and options.get("vocabulary"):
        args.vocabulary = os.path.join(os.path.dirname(os.path.abspath(config)), options["vocabulary"])
    args.coverage = options.get("coverage") or None
    out = args.out or (shown_path(project.docs_dir) if project else None)
    if out is None:
        raise CardError([Finding("error", "DOCS", None, "no docs folder to write into: no mkdocs.yml here",
                                 hint="give the folder, e.g. resfam-cards pages docs, or --config FILE")])
    _refuse(pages_folder_problems(out, args.templates))
    if not args.interval > 0:
        raise CardError([Finding("error", "--interval", None, f"must be a number of seconds above 0, got "
                                                              f"{args.interval:g}", hint="leave it out for 0.5")])
    settings = (project or Project(docs_dir=out, templates_dir=args.templates, options={})).settings()
    if not args.watch:
        report = _run_verify(args)
        exit_code = report.strict_exit_code if args.strict else report.exit_code
        if exit_code:
            sys.stderr.write(format_report(report))
            print(f"nothing written to {out}: the cards must match the code first", file=sys.stderr)
            return exit_code
        for finding in report.warnings:
            print(finding.format(), file=sys.stderr)
        _write_pages(site_files(report, settings, show_findings=False) + table_files(report), out)
        return EXIT_OK
    print(f"watching {args.templates} and the model files; the pages in {out} follow them (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    first = True
    try:
        while True:
            state = source_state(args.templates, PACKAGE_DIR)
            report = _run_verify(args)
            if not report.ok:  # as `mkdocs serve`: the problems go on the card pages
                sys.stderr.write(format_report(report))
            try:
                _write_pages(site_files(report, settings, show_findings=True) + table_files(report), out)
            except CardError as error:  # a file in the way: refused at the start; later, said until fixed
                if first:
                    raise
                _print_problems(error.findings)
            first = False
            while source_state(args.templates, PACKAGE_DIR) == state:
                time.sleep(args.interval)
    except KeyboardInterrupt:
        print("stopped watching", file=sys.stderr)
        return EXIT_OK


def _write_pages(files: list, out: str) -> None:
    result = write_site_files(files, out)
    print(f"{out}: {len(result.written)} file(s) written, {len(result.unchanged)} unchanged, "
          f"{len(result.removed)} removed" + "".join(f"\n  removed {path}" for path in result.removed),
          file=sys.stderr, flush=True)


def _measure(args: argparse.Namespace) -> int:
    try:
        measure_here(args.model, args.image_size, progress=None if args.quiet else sys.stderr)
    except KeyboardInterrupt:
        traceback.print_exc()  # where the model's code was: what measuring in this process is for
        raise
    return EXIT_OK


def _figures(model: ModelClaims) -> str:
    """The counts and accuracies an entry states, in the order of the table of fields: 'Parameters 11.69 M, ...'."""
    shown = []
    for card_field in fields_where(compare=(TOLERANCE, REPORTED)):
        claim = model.claim(card_field.name)
        if claim is not None:
            shown.append(f"{card_field.name} {card_field.kind.brief(claim.value)}")
    return ", ".join(shown)


def _bench(args: argparse.Namespace) -> int:
    check_output(args.output)  # a wrong path is refused before minutes of timing
    import resfam

    unknown = [model_id for model_id in args.models if not resfam.is_model(model_id)]
    if unknown:
        raise CardError([Finding("error", "<command line>", None, f"unknown model ID {model_id!r}",
                                 hint="the registered models are listed by: python -m resfam") for model_id in unknown])
    progress = None if args.quiet else (lambda line: print(f"timed {line}", file=sys.stderr))
    data = bench(args.models, batch=args.batch, threads=args.threads, runs=args.runs, progress=progress)
    write_benchmark(data, args.output)
    print(f"wrote {args.output}: {len(data['models'])} model(s) on {data['machine']['cpu']}, load average "
          f"{data['machine']['load_average']} during the runs", file=sys.stderr)
    return EXIT_OK


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


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
        f"{PLACEHOLDER} what is new about {collection}, in a few sentences, and the paper it comes from.",
        "",
        *(["{% include 'code_snippets.md' %}", ""] if snippets else []),
        "## How do I train this model?",
        "",
        f"{PLACEHOLDER} the training recipe, or where to find it.",
        "",
        "## Citation",
        "",
        "```BibTeX",
        f"{PLACEHOLDER} the paper's BibTeX entry",
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
    _refuse(_cache_dir_problems(args))
    return verify(args.paths or None, templates_dir=args.templates, tolerances=tolerances,
                  cache_dir=args.cache_dir, use_cache=not args.no_cache, progress=_progress(args),
                  max_workers=args.workers, limits=limits, without_card=args.without_card, zoo=args.zoo,
                  code_url=args.code_url, coverage=getattr(args, "coverage", None) or None,
                  vocabulary=args.vocabulary)


def _measurer(args: argparse.Namespace) -> ZooMeasurer:
    _refuse(_cache_dir_problems(args))
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir(args.templates))
    project_dir = Path(args.templates).resolve().parent  # where a zoo of the project's own is found
    return ZooMeasurer(cache_dir=cache_dir, progress=_progress(args), max_workers=args.workers,
                       limits=_limits(args), zoo=args.zoo, code_url=args.code_url,
                       vocabulary=read_vocabulary(args.vocabulary),
                       project_dir=project_dir)


def _cache_dir_problems(args: argparse.Namespace) -> list[Finding]:
    if args.no_cache:
        return []
    option = "--cache-dir" if args.cache_dir else "the cache folder next to --templates"
    return cache_dir_problems(args.cache_dir or default_cache_dir(args.templates), option, args.templates)


def _refuse(problems: list[Finding]) -> None:
    """Stop, writing nothing, when there is any problem (CardError: exit 2)."""
    if problems:
        raise CardError(problems)


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
    # no default here: the actions of a parent parser are shared by every subcommand, so a subcommand's own
    # default (pages takes the config's templates folder) is set by `default_templates` instead
    common.add_argument("--templates", metavar="DIR",
                        help="the templates folder, holding models/<family>.md (default: templates)")
    common.add_argument("--no-cache", action="store_true", help="measure every model, use no cache")
    common.add_argument("--cache-dir", metavar="DIR", help="the cache folder (default: .resfam-cache next "
                                                           "to the templates folder)")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    measuring = common.add_argument_group("measuring", "how the models are measured (in worker processes)")
    measuring.add_argument("--workers", type=int, metavar="N",
                        help="measuring processes at most (default: as many as the usable cores, and the "
                             "available memory at --memory-limit each, allow)")
    measuring.add_argument("--time-limit", metavar="SECONDS",
                        help=f"the time one step of measuring a model may take: building it, or tracing it at "
                             f"one image size (default: {DEFAULT_STEP_SECONDS:g})")
    measuring.add_argument("--memory-limit", metavar="SIZE",
                        help=f"the memory (address space) each measuring process may use, e.g. 2GiB "
                             f"(default: {format_size(DEFAULT_MEMORY)})")
    common.add_argument("--zoo", default=DEFAULT_ZOO, metavar="SOURCE",
                        help="where the models come from: resfam (default), timm, or package.module:attribute "
                             "(an object of your own package; a package of the project is found there)")
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
                               "(repeatable; default: the zoo's: every model of resfam, none of timm or your own zoo)")

    parser = argparse.ArgumentParser(prog="resfam-cards", description=__doc__.splitlines()[0])
    parser.set_defaults(default_templates="templates")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_versions()['resfam']}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    verify_command = commands.add_parser("verify", parents=[common, checking],
                                         help="check the cards against the code (exit 0 clean, 1 drift, 2 bad input)")
    verify_command.add_argument("--json", metavar="FILE",
                                help="also write the report as JSON to FILE: a new file, or a report of an earlier "
                                     "run (to print it instead: --format json)")
    verify_command.add_argument("--force", action="store_true",
                                help="let --json replace a JSON file that is not a report (never another kind of "
                                     "file, nor one in the project's templates/, docs/ or resfam/)")
    verify_command.add_argument("-v", "--verbose", action="store_true", help="list every figure, also the ok ones")
    verify_command.add_argument("--strict", action="store_true",
                                help="every warning fails too (exit 1), as in mkdocs build --strict")
    verify_command.add_argument("--format", choices=("text", "github", "json"), default="text",
                                help="text (default); github: each finding as a GitHub Actions workflow "
                                     "command, shown on the pull request's changed lines; json: the report as "
                                     "JSON (the format of --json FILE)")
    verify_command.set_defaults(command=_verify)

    sync_command = commands.add_parser("sync", parents=[common, checking],
                                       help="show the figure changes that make the cards match the code "
                                            "(exit 0 none or written, 1 not written, 2 bad input)",
                                       epilog="exit codes: 0 the cards match the code, or --write wrote the "
                                              "changes; 1 changes shown, not written (add --write); 2 bad input "
                                              "(a card that cannot be read or checked): nothing written")
    sync_command.add_argument("--write", action="store_true", help="rewrite the cards (only the changed figures)")
    sync_command.add_argument("--fill", action="store_true", help="also add the fields a card leaves out")
    sync_command.set_defaults(command=_sync)

    new_command = commands.add_parser("new", parents=[common], help="scaffold a card template for registered models")
    new_command.add_argument("family", metavar="FAMILY", help="the family, e.g. resnet-d")
    new_command.add_argument("--model", dest="models", action="append", required=True, metavar="ID",
                             help="a registered model ID (repeatable)")
    new_command.add_argument("--collection", metavar="NAME",
                             help="the family's display name: the card's title, and its name in the overview's "
                                  "table and chart and in the navigation (default: from FAMILY, e.g. wide-resnet: "
                                  "Wide ResNet)")
    new_command.add_argument("--write", action="store_true",
                             help="write templates/models/FAMILY.md (never over an existing file)")
    new_command.set_defaults(command=_new)

    list_command = commands.add_parser("list", parents=[common, checking], help="the cards, their models and status")
    list_command.set_defaults(command=_list)

    measure_command = commands.add_parser("measure", help="measure one model in this process (no worker, no cache, "
                                                          "no limit): every figure and tag with how it was found")
    measure_command.add_argument("model", metavar="ID", help="a registered model ID")
    measure_command.add_argument("--image-size", type=int, metavar="N",
                                 help="count FLOPs and activations at N px (default: the model's registered size)")
    measure_command.add_argument("-q", "--quiet", action="store_true", help="no step lines on stderr")
    measure_command.set_defaults(command=_measure)

    export_command = commands.add_parser("export", parents=[common, tolerance],
                                         help="write the verified cards for another "
                                                                          "site (hub: the Hugging Face Hub)")
    export_command.add_argument("target", choices=("hub",), help="hub: a folder per model with README.md and "
                                                                 "config.json, ready to push next to its weights")
    export_command.add_argument("out", metavar="OUT", help="the folder to write the model folders into")
    export_command.add_argument("paths", nargs="*", metavar="PATH", help="card templates (default: all)")
    export_command.add_argument("--license", metavar="ID", help="a Hub license id for every card, overriding "
                                                                "each model's own (default: the licence of its "
                                                                "weights, as the registry records it)")
    export_command.add_argument("--force", action="store_true",
                                help="replace the README.md and config.json of a model folder in OUT that an "
                                     "export did not write (never a file in the project's templates/, docs/ or "
                                     "resfam/)")
    export_command.set_defaults(command=_export, without_card=None)  # exports the cards, whatever they cover

    pages_command = commands.add_parser("pages", parents=[common, tolerance],
                                        help="write the verified card pages, the overview and models.json into the "
                                             "docs folder, for a builder without the MkDocs plugin (Zensical)")
    pages_command.add_argument("out", nargs="?", metavar="DOCS",
                               help="the docs folder to write into (default: the docs_dir of the config file); only "
                                    "files with resfam's mark are ever replaced or removed")
    pages_command.add_argument("--config", metavar="FILE",
                               help="the site's config file, whose nav, site_url and resfam plugin settings the pages "
                                    "follow (default: mkdocs.yml, when there is one)")
    pages_command.add_argument("--strict", action="store_true",
                               help="every warning fails too (nothing written), as in mkdocs build --strict")
    pages_command.add_argument("--watch", action="store_true",
                               help="keep the pages up to date as templates and model files change, showing problems "
                                    "on the pages (for zensical serve)")
    pages_command.add_argument("--without-card", action="append", default=[], metavar="ID",
                               help="a registered model left without a card on purpose (repeatable), besides the "
                                    "config's without_card")
    pages_command.add_argument("--interval", type=float, default=0.5, metavar="SECONDS",
                               help="how often --watch looks for changes (default: 0.5)")
    pages_command.set_defaults(command=_pages, default_templates=None, paths=None)

    bench_command = commands.add_parser("bench", help="time CPU inference of models and write a benchmark file "
                                                      "(the overview shows it; the build never runs it)")
    bench_command.add_argument("models", nargs="+", metavar="ID", help="registered model IDs")
    bench_command.add_argument("--output", required=True, metavar="FILE", help="the benchmark file to write (.json)")
    bench_command.add_argument("--batch", type=_positive, default=DEFAULT_BATCH, metavar="N",
                               help=f"the larger batch size, timed besides batch 1 (default: {DEFAULT_BATCH})")
    bench_command.add_argument("--threads", type=_positive, default=DEFAULT_THREADS, metavar="N",
                               help=f"torch's CPU threads (default: {DEFAULT_THREADS})")
    bench_command.add_argument("--runs", type=_positive, default=DEFAULT_RUNS, metavar="N",
                               help=f"timed runs per batch size, after one to warm up; the median counts "
                                    f"(default: {DEFAULT_RUNS})")
    bench_command.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    bench_command.set_defaults(command=_bench)
    return parser


if __name__ == "__main__":
    sys.exit(main())
