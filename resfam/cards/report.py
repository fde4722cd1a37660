"""A verification report for people (like a compiler's errors), for CI (JSON) and for pull requests
(GitHub Actions workflow commands, which the runner turns into annotations on the changed lines).

    templates/models/resnet.md:57: drift: resnet50 Parameters: card says 25,000,000, code measures
    25,557,032 (-2.18%, tolerance 0.1%)
        hint: run: resfam-cards sync --write templates/models/resnet.md
    FAILED: 5 cards, 34 models: 305 figures ok, 1 drift, 0 errors, 0 warnings (1 model measured,
    33 figure sets from the cache, 2.1 s)

(each finding and the summary are one line; wrapped here)
"""
from __future__ import annotations

import json
import os
from typing import Any

from .findings import Finding
from .outputs import REPORT_GENERATOR
from .runner import summary as code_summary
from .sync import write_atomic
from .verify import Report

JSON_FORMAT = 1


def format_report(report: Report, *, verbose: bool = False, strict: bool = False) -> str:
    """Every error, drift and warning (with `verbose`, every ok and not checked figure too) and a summary
    line (with `strict`, one that fails on the strict warnings, as `verify --strict` exits)."""
    shown = [f for f in report.findings if verbose or f.status not in _QUIET]
    lines = [finding.format() for finding in shown]
    lines += fallback_lines(report) if verbose else []
    lines.append(summary_line(report, strict=strict))
    return "\n".join(lines) + "\n"


def format_github(report: Report, *, verbose: bool = False, strict: bool = False) -> str:
    """Every error, drift and warning as a GitHub Actions workflow command (`::error file=...,line=...,
    title=...::message`), then the summary line as plain text. With `verbose`, the ok figures are listed
    as plain lines too (an annotation per figure would bury the problems)."""
    lines = [github_command(finding) if finding.status not in _QUIET else finding.format()
             for finding in report.findings if verbose or finding.status not in _QUIET]
    lines += fallback_lines(report) if verbose else []
    lines.append(summary_line(report, strict=strict))
    return "\n".join(lines) + "\n"


# drift fails the check like an error does; a warning is kept as written
_QUIET = ("ok", "unchecked")  # listed with --verbose only; the summary counts the fields not checked
_GITHUB_LEVELS = {"error": "error", "drift": "error", "warning": "warning"}


def github_command(finding: Finding) -> str:
    """One finding as a workflow command: the level, the file and line it is about, a title naming the
    model and field, and the message with its hint on a second line."""
    properties = {"file": finding.path.replace(os.sep, "/")}
    if finding.line:
        properties["line"] = str(finding.line)
    properties["title"] = " ".join(filter(None, [finding.model, finding.field])) or f"resfam-cards {finding.status}"
    message = f"{finding.status}: {finding.message}" + (f"\nhint: {finding.hint}" if finding.hint else "")
    shown = ",".join(f"{name}={_escape_property(value)}" for name, value in properties.items())
    return f"::{_GITHUB_LEVELS[finding.status]} {shown}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    """A workflow command's message: %, CR and LF are percent-encoded (GitHub's rule), % first."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    """A workflow command's property value: as a message, and also : and , which end a property."""
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def summary_line(report: Report, *, strict: bool = False) -> str:
    """One line: "ok" or "FAILED" as the exit code says (with `strict`, that of `verify --strict`), the counts
    and what the run cost."""
    findings = report.findings
    figures = sum(1 for f in findings if f.status == "ok" and f.field)
    models = sum(len(card.card.models) for card in report.cards if card.card is not None)
    stats = report.stats
    cost = [f"{_count(stats.measured_models, 'model')} measured"]
    if stats.cached_sizes:
        cost.append(f"{_count(stats.cached_sizes, 'figure set')} from the cache")
    if stats.cpu_fallbacks:
        cost.append(f"{_count(len(stats.cpu_fallbacks), 'figure set')} traced on the CPU: the shape-only trace "
                    "failed, -v says why")
    code = code_summary(stats.code) if stats.code is not None else None
    if code:
        cost.append(code)
    cost.append(f"{stats.seconds:.1f} s")
    verdict = "FAILED" if (report.strict_exit_code if strict else report.exit_code) else "ok"
    unchecked = f", {len(report.unchecked)} not checked with this zoo" if report.unchecked else ""
    return (f"{verdict}: {_count(len(report.cards), 'card')}, {_count(models, 'model')}: {figures} figures ok, "
            f"{_count(len(report.drifts), 'drift')}, {_count(len(report.errors), 'error')}, "
            f"{_count(len(report.warnings), 'warning')}{unchecked} ({', '.join(cost)})")


def fallback_lines(report: Report) -> list[str]:
    """One line per figure set counted on the CPU because the shape-only trace failed, with the reason."""
    return [f"{model_id} at {size} px: FLOPs and activations traced on the CPU, the shape-only trace failed: "
            f"{reason}" for (model_id, size), reason in sorted(report.stats.cpu_fallbacks.items())]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def report_json(report: Report) -> dict[str, Any]:
    """The report as plain data: a summary, then per card its findings and measured figures."""
    return {
        "generator": REPORT_GENERATOR,  # the marker that lets a later run replace this file
        "format": JSON_FORMAT,
        "ok": report.ok,
        "exit_code": report.exit_code,
        "summary": {
            "cards": len(report.cards),
            "ok": sum(1 for f in report.findings if f.status == "ok"),
            "drift": len(report.drifts),
            "error": len(report.errors),
            "warning": len(report.warnings),
            "unchecked": len(report.unchecked),
            "measured_models": report.stats.measured_models,
            "cached_figure_sets": report.stats.cached_sizes,
            "cpu_fallbacks": len(report.stats.cpu_fallbacks),
            "seconds": round(report.stats.seconds, 3),
            "code_blocks": _code_counts(report),
        },
        "tolerances_pct": report.tolerances,
        "cards": [
            {
                "path": card.path,
                "family": card.card.family if card.card is not None else None,
                "ok": card.ok,
                "findings": [finding.to_dict() for finding in card.findings],
                "measured": card.measurements,
            }
            for card in report.cards
        ],
        "coverage": [finding.to_dict() for finding in report.coverage],
    }


def _code_counts(report: Report) -> dict[str, int]:
    runs = report.stats.code
    if runs is None:
        return {"ran": 0, "cached": 0, "marked": 0, "failed": 0, "not_run": 0, "seconds": 0.0}
    return {"ran": runs.count("ran", "cached"), "cached": runs.count("cached"), "marked": runs.count("marked"),
            "failed": runs.count("failed"), "not_run": runs.count("not run"), "seconds": round(runs.seconds, 3)}


def json_text(report: Report) -> str:
    """`report_json` as JSON text, one line per value."""
    # YAML may give a claim a type JSON lacks (a date); it is written as text
    return json.dumps(report_json(report), indent=2, default=str, allow_nan=False) + "\n"


def write_json(report: Report, path: str | os.PathLike[str]) -> None:
    """Write `json_text` to `path`, all at once (CardError when it cannot be written). Whether `path` may
    be replaced is the caller's to check (`outputs.report_file_problems`)."""
    write_atomic(path, json_text(report), what="the JSON report")
