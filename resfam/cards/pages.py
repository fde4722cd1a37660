"""The site's view of verified cards: the Markdown of each card page and of the overview page.

Nothing here measures or compares: the engine (`verify`) has already decided, figure by figure, what
is ok and what drifts. This module only shows it:

- `card_page`: the rendered template without its raw model-index comment, plus one table comparing
  the card's models (the fields with a `column` in the table of fields) and each model's other fields
  in a short list below it; a verified figure carries a mark that links to (and, as a tooltip, says)
  how it was measured. When asked, it also puts the card's findings in an admonition at the top (red for drift and
  errors; `mkdocs serve` shows them instead of stopping).
- `overview_page`: every model of the catalog (`catalog.model_catalog`, the data of models.json) in
  one table (sorted and filtered in the browser by `docs/assets/resfam.js`), an inline SVG chart of
  top-1 accuracy against GFLOPs and, when a benchmark file is given, its speeds (`speed_section`).

It takes plain data (a `CardPage` per card, `figures.py`) so it can be used, and tested, without MkDocs.
"""
from __future__ import annotations

import html
import math
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .fields import (
    BY_NAME,
    CHART_X,
    CHART_Y,
    CODE,
    FIELDS,
    REPORTED,
    TAGS,
    TOLERANCE,
    CardField,
    columns,
)
from .figures import (
    NOT_CHECKED,
    PROBLEM_STATUSES,
    VERIFIED_FIELDS,
    CardPage,
    Figure,
    ModelFigures,
    anchor,
    model_figures,
    zoo_package_of,
)
from .findings import Finding
from .kinds import markdown_text as _md
from .page_text import insert_after_first, insert_before_first, strip_model_index
from .runner import mark_ran
from .zoos import built_as

if TYPE_CHECKING:
    from .bench import Benchmark
    from .catalog import CatalogModel

MEASUREMENT_PAGE = "measurement.md"

# ---------------------------------------------------------------------------------------------
# Card pages


def card_page(page: CardPage, *, show_findings: bool) -> str:
    """The Markdown of a card's page.

    show_findings: put drift, errors and warnings in admonitions at the top (serve mode); a build
    never gets here with problems, since they fail it.
    """
    markdown = page.markdown if page.markdown is not None else f"# {page.title}\n"
    markdown = strip_model_index(mark_ran(markdown, page.code, page.versions))
    models = _models_section(page)
    if models:
        markdown = insert_before_first(markdown, level=2, text=models)
    if show_findings:
        notice = findings_admonitions(page.findings)
        if notice:
            markdown = insert_after_first(markdown, level=1, text=notice)
    return markdown


def findings_admonitions(findings: Sequence[Finding]) -> str:
    """Problems in a red admonition, warnings in a yellow one; each finding as the engine formats it."""
    parts = []
    problems = [f for f in findings if f.status in PROBLEM_STATUSES]
    warnings = [f for f in findings if f.status == "warning"]
    if problems:
        parts.append(_admonition(
            "danger", "This card does not match the code",
            "The site build and `resfam-cards verify` fail on this card; this page shows why while you edit "
            "(`mkdocs serve`, `resfam-cards pages --watch`). `resfam-cards sync --write` writes the measured "
            "figures into the template.",
            problems))
    if warnings:
        parts.append(_admonition("warning", "Worth a look", "Kept as written, but check:", warnings))
    return "\n".join(parts)


def _admonition(kind: str, title: str, lead: str, findings: Sequence[Finding]) -> str:
    # findings hold card text: a code block shows it verbatim and keeps Markdown/HTML out of it
    body = "\n".join(f.format() for f in findings)
    fence = "`" * max(3, _longest_run(body, "`") + 1)
    lines = [lead, "", fence + "text", *body.splitlines(), fence]
    return f'!!! {kind} "{title}"\n\n' + "".join(f"    {line}\n" if line else "\n" for line in lines)


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(f"{re.escape(char)}+", text)
    return max(map(len, runs), default=0)


def _models_section(page: CardPage) -> str:
    models = model_figures(page)
    if not models:
        return ""
    measurement = posixpath.relpath(MEASUREMENT_PAGE, posixpath.dirname(page.src_uri) or ".")
    reported = _joined([field.column for field in columns() if field.compare == REPORTED])
    parts = ["## Models\n",
             f"Figures marked ✓ were measured from the code when this page was built and match the card; "
             f"hover over a mark, or see [how the figures are measured]({measurement}). {reported} are "
             f"reported by the publishers of the weights. Click a model for its details.\n",
             measured_with(page.versions, measurement)]
    # md_in_html: the div lets the stylesheet fit the table to the page
    parts += ['<div class="resfam-compare" markdown>\n', comparison_table(models, measurement), "</div>\n"]
    parts.append('<div class="resfam-models" markdown>\n')
    for model in models:
        parts.append(f"### {_md(model.name)} {{ #{anchor(model.name)} }}\n")
        parts.append(_model_details(model, measurement, page.source_url))
    parts.append("</div>\n")
    return "\n".join(parts)


def comparison_table(models: Sequence[ModelFigures], measurement: str) -> str:
    """One row per model, one column per field with a `column` in the table of fields: each figure
    scaled as the table of fields says, with its mark."""
    rows = ["| Model | " + " | ".join(field.column for field in columns()) + " |",
            "| --- |" + " ---: |" * len(columns())]
    for model in models:
        cells = [f"[{_breakable(model.name)}](#{anchor(model.name)})"]
        for column in columns():
            figure = model.figures.get(column.name)
            if figure is None:
                cells.append("—")
                continue
            mark = _mark(figure, measurement, compact=True)
            cells.append(column_value(column, figure.value) + (f" {mark}" if mark else ""))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def column_value(field: CardField, value: Any) -> str:
    """A figure as its column shows it: a number scaled (value / scale, `digits` decimals), text as is."""
    number = field.kind.number(value)
    try:
        return f"{float(number) / field.scale:.{field.digits}f}"
    except (TypeError, ValueError):
        return _md(str(value))


def _model_details(model: ModelFigures, measurement: str, source_url: str | None) -> str:
    """The fields of a model the comparison table leaves out, one line each, as a list."""
    lines = []
    for name, figure in model.figures.items():
        field = BY_NAME.get(name)
        if field is None or field.column or not field.label or figure.value in ("", None):
            continue  # the card's other fields (training settings) are in its text and in models.json
        mark = _mark(figure, measurement)
        shown = field.kind.shown(figure.value, source_url)
        lines.append(f"- **{field.label}**: {shown}" + (f" {mark}" if mark else ""))
    return "\n".join(lines) + "\n"


def _mark(figure: Figure, measurement: str, compact: bool = False) -> str:
    """How far to trust the figure, as a link to the page that explains it (the mark alone, ✓ or ✗, when
    `compact`; a reported figure then gets none: its column says so)."""
    field = BY_NAME[figure.field]
    if field.compare == REPORTED:
        if compact:
            return ""
        section = field.anchor if field.place == CODE else "reported"
        how = field.how if field.place == CODE else "Reported with the weights; not measured by the build"
        return f'[reported]({measurement}#{section} "{_title(how)}")'
    _, section, how = VERIFIED_FIELDS[figure.field]
    finding = figure.finding
    if figure.status in PROBLEM_STATUSES:
        text = f"✗ {finding.status}"
        if finding.measured is not None:
            text += f": measured {_md(_plain(finding.measured))}"
        if finding.drift_pct is not None:
            text += f" ({finding.drift_pct:+.2f} %)"
        return f'[{"✗" if compact else text}]({measurement}#{section} "{_title(text + ". " + finding.message)}")' \
               "{ .resfam-drift }"
    if figure.status == "measured":
        title = f"Not on the card; measured when this page was built: {how}"
        return f'[{"✓" if compact else "✓ measured"}]({measurement}#{section} "{_title(title)}"){{ .resfam-verified }}'
    if figure.status == "verified":
        title = f"Verified when this page was built: {how}. {finding.message}"
        return f'[{"✓" if compact else "✓ verified"}]({measurement}#{section} "{_title(title)}"){{ .resfam-verified }}'
    if figure.status == NOT_CHECKED:
        return f'[{"n/c" if compact else "not checked with this zoo"}]({measurement}#zoos "{_title(finding.message)}")'
    return ""


def measured_with(versions: Mapping[str, str], measurement: str) -> str:
    """How a page's figures were made, in a note: the versions that measured them and the conventions.
    Nothing in it depends on when the page was built, so unchanged code rebuilds the same page."""
    zoo = zoo_package_of(versions)
    tools = [f"{name} {versions[name]}" for name in dict.fromkeys(("torch", "fvcore", "resfam", zoo))
             if versions.get(name, "not installed") != "not installed"]
    made = f"with {_joined(tools)}, " if tools else ""
    return (f"**How these figures were made.** Measured {made}on the CPU, each model built as "
            f"{built_as(zoo)} (the 1000-class head) and put in evaluation mode; FLOPs and "
            "activations for one image at the model's image size. FLOPs follow fvcore's convention: one "
            f"multiply-add is one FLOP. See [how the figures are measured]({measurement}).\n")


def _joined(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------------------------------------
# The measurement page: its tables come from the table of fields and the zoo's tag vocabulary

# The measurement page (docs/measurement.md) takes each table where a line includes its file (see
# `table_mark`): the plugin replaces the line; another builder includes the file that `resfam-cards pages`
# writes (pymdownx.snippets, paths relative to the docs folder).
FIELDS_TABLE = ".resfam/table-of-fields.md"
TAGS_TABLE = ".resfam/architecture-tags.md"


def default_measurement_page() -> str:
    """The measurement page of a project that writes none (a zoo of its own): a section per field that
    the card marks link to, the tables `measurement_page` fills in, and what "not checked" means."""
    lines = ["# How the figures are measured", "",
             "Every build measures the models from the code and compares each figure of each card.", "",
             table_mark(FIELDS_TABLE), ""]
    for anchor_id in dict.fromkeys(card_field.anchor for card_field in FIELDS if card_field.anchor):
        hows = [card_field for card_field in FIELDS if card_field.anchor == anchor_id]
        lines += [f"## {hows[0].label} {{ #{anchor_id} }}", "",
                  " ".join(f"{card_field.name}: {card_field.how}." for card_field in hows), ""]
        if any(card_field.compare == TAGS for card_field in hows):  # the vocabulary, after its field
            lines += [table_mark(TAGS_TABLE), ""]
    lines += ["## Not checked with this zoo { #zoos }", "",
              "A field the card states but the zoo gives no fact for (a zoo without nominal depths has no "
              "Layers) is shown as not checked: neither a pass nor a drift.", "",
              "## Reported figures { #reported }", "",
              "Accuracies are reported with the weights by their publishers; the build does not measure them.", ""]
    return "\n".join(lines)


def measurement_page(markdown: str, tolerances: Mapping[str, float], architecture_tags: Mapping[str, str]) -> str:
    """The measurement page with its two tables filled in where the page marks them."""
    for path, table in measurement_tables(tolerances, architecture_tags).items():
        markdown = markdown.replace(table_mark(path), table)
    return markdown


def table_mark(path: str) -> str:
    """The line of the measurement page that stands for the table in `path`: a pymdownx.snippets include."""
    return f'--8<-- "{path}"'


def measurement_tables(tolerances: Mapping[str, float], architecture_tags: Mapping[str, str]) -> dict[str, str]:
    """{path: its Markdown table} of the measurement page's tables (`FIELDS_TABLE`, `TAGS_TABLE`)."""
    fields = ["| Field | What the build computes | Check |", "| --- | --- | --- |"]
    for card_field in FIELDS:
        if card_field.verified or card_field.compare == REPORTED:
            if card_field.place == CODE and card_field.verified:
                check = "measured on every build; not written on a card"
            elif card_field.compare == TOLERANCE:
                tolerance = tolerances.get(card_field.name, card_field.tolerance)
                check = f"within {tolerance:g} %" if tolerance else "exact"
            else:
                check = card_field.compare.described
            how = card_field.how or "carried over from the publisher of the weights"
            fields.append(f"| [{card_field.name}](#{card_field.anchor or 'reported'}) | {_md(how)} | {check} |")
    tags = ["| Tag | The network has it when |", "| --- | --- |"]
    tags += [f"| {_md(tag)} | {_md(definition)} |" for tag, definition in sorted(architecture_tags.items())]
    return {FIELDS_TABLE: "\n".join(fields) + "\n", TAGS_TABLE: "\n".join(tags) + "\n"}


# ---------------------------------------------------------------------------------------------
# The overview page


def overview_page(models: Sequence[CatalogModel], *, src_uri: str, urls: Mapping[str, str],
                  models_json: str | None = None, versions: Mapping[str, str] | None = None,
                  benchmark: Benchmark | None = None) -> str:
    """The Markdown of the overview page at `src_uri`: a table and a chart of `models` (the build's
    `catalog.model_catalog`, which models.json is made from too).

    urls: card src_uri -> its URL relative to the overview page, for the chart's links (raw SVG is
    not rewritten by MkDocs, unlike the table's Markdown links).
    models_json: the site path of models.json, linked from the page when given.
    versions: the versions that measured the figures, for the page's note (`measured_with`).
    benchmark: a benchmark file (`bench.read_benchmark`), shown in a section of its own when given.
    """
    here = posixpath.dirname(src_uri) or "."
    measurement = posixpath.relpath(MEASUREMENT_PAGE, here)
    families = list(dict.fromkeys(model.collection for model in models))
    table = ["| Model | Family | " + " | ".join(field.column for field in columns()) + " |",
             "| --- | --- |" + " ---: |" * len(columns())]
    points = []
    for model in models:
        link = posixpath.relpath(model.src_uri, here)
        cells = [f"[{_breakable(model.name)}]({link}#{model.anchor})", _md(model.collection)]
        cells += [column_value(field, model.figures[field.name].value) if field.name in model.figures else "—"
                  for field in columns()]
        table.append("| " + " | ".join(cells) + " |")
        compute, accuracy = model.number(CHART_X.name), model.number(CHART_Y.name)
        if compute and accuracy is not None:
            points.append(ChartPoint(model.name, families.index(model.collection), model.collection,
                                     compute / CHART_X.scale, accuracy, model.image_size,
                                     f"{urls[model.src_uri]}#{model.anchor}"))
    as_json = (f" The same figures, with their units, conventions and status, are in "
               f"[models.json]({posixpath.relpath(models_json, here)}).") if models_json else ""
    return "\n".join([
        "---\nhide:\n  - toc\n---\n",  # front matter: the wide table gets the table of contents' room
        "# All models\n",
        f"Every model of every card: {len(models)} models in {len(families)} families. Parameters, GFLOPs, "
        f"activations and file sizes are [measured from the code]({measurement}) on every build; GFLOPs "
        "and activations are counted at each model's own image size. Click a column header to sort, type "
        f"in the box to filter, and click a model to open its card. "
        f"{_joined([field.column for field in columns() if field.compare == REPORTED])} are reported by the "
        f"publishers of the weights.{as_json}\n",
        measured_with(versions or {}, measurement),
        '<div class="resfam-sortable" markdown>\n',
        "\n".join(table) + "\n",
        "</div>\n",
        "## Accuracy against compute\n",
        "Top-1 ImageNet accuracy (reported with the weights) against GFLOPs (measured, at each model's "
        "image size, log scale). Each point links to its card.\n",
        accuracy_chart(points, families),
        speed_section(benchmark, {model.model_id: f"{posixpath.relpath(model.src_uri, here)}#{model.anchor}"
                                  for model in models}) if benchmark is not None else "",
    ])


def speed_section(benchmark: Benchmark, links: Mapping[str, str]) -> str:
    """The speeds of a benchmark file, as measured on its machine and date: never verified, never timed
    by the build; marked stale when the zoo's code has changed since. links: model ID -> its card."""
    data = benchmark.data
    computer = data["machine"]
    load = computer.get("load_average")
    busy = f", load average up to {load:g} during the runs" if isinstance(load, (int, float)) else ""
    torch_version = data["versions"].get("torch", "an unrecorded torch")
    parts = ["## Speed\n",
             f"CPU inference throughput in images per second, **measured on {_md(str(computer.get('cpu')))} "
             f"({computer.get('cores')} cores{busy}), {_md(data['date'])}**, with torch {_md(torch_version)} and "
             f"{data['threads']} thread(s), at each model's image size. These figures come from "
             f"`resfam-cards bench` on that machine (`{_md(posixpath.basename(benchmark.path))}`), not from this "
             "build: they are not verified, and another machine, or the same one under another load, gives "
             "others.\n"]
    if benchmark.stale:
        parts.append('!!! warning "Stale: measured on older code"\n\n    The zoo\'s code has changed since '
                     "this benchmark was made; run `resfam-cards bench` again to update it.\n")
    sizes = benchmark.batch_sizes
    rows = ["| Model | Input (px) | " + " | ".join(f"Batch {size} (images/s)" for size in sizes) + " |",
            "| --- | ---: |" + " ---: |" * len(sizes)]
    for model_id, model in data["models"].items():
        name = f"[{_breakable(model_id)}]({links[model_id]})" if model_id in links else _breakable(model_id)
        speeds = model["images_per_second"]
        rows.append(f"| {name} | {model['image_size']} | "
                    + " | ".join(f"{speeds[size]:.2f}" if size in speeds else "—" for size in sizes) + " |")
    parts += ['<div class="resfam-compare" markdown>\n', "\n".join(rows) + "\n", "</div>\n"]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# The chart


@dataclass(frozen=True)
class ChartPoint:
    name: str
    series: int  # index of the family, for its colour
    family: str
    gflops: float
    top1: float
    image_size: int
    href: str


_CHART_W, _CHART_H = 760, 420
_MARGIN = {"left": 56, "right": 20, "top": 16, "bottom": 52}


def accuracy_chart(points: Sequence[ChartPoint], families: Sequence[str]) -> str:
    """An inline SVG scatter plot of top-1 accuracy (linear) against GFLOPs (log).

    Colours come from CSS variables (`--resfam-series-N`, set for the light and the dark scheme in
    docs/assets/resfam.css); text and axes use currentColor, so the chart follows the theme.
    """
    if not points:
        return '<p class="resfam-chart-empty">No model has both GFLOPs and a top-1 accuracy to plot.</p>\n'
    left, top = _MARGIN["left"], _MARGIN["top"]
    right, bottom = _CHART_W - _MARGIN["right"], _CHART_H - _MARGIN["bottom"]
    x_lo, x_hi = _log_range([p.gflops for p in points])
    y_lo, y_hi = math.floor(min(p.top1 for p in points)) - 1, math.ceil(max(p.top1 for p in points)) + 1

    def x(value: float) -> float:
        return left + (math.log10(value) - x_lo) / (x_hi - x_lo) * (right - left)

    def y(value: float) -> float:
        return bottom - (value - y_lo) / (y_hi - y_lo) * (bottom - top)

    parts = [f'<svg class="resfam-chart" viewBox="0 0 {_CHART_W} {_CHART_H}" role="img" '
             f'aria-labelledby="resfam-chart-title" xmlns="http://www.w3.org/2000/svg">',
             '<title id="resfam-chart-title">Top-1 accuracy against GFLOPs, one point per model</title>']
    for tick in _log_ticks(x_lo, x_hi):
        px = x(tick)
        parts.append(f'<line class="resfam-chart__grid" x1="{px:.1f}" y1="{top}" x2="{px:.1f}" y2="{bottom}"/>')
        parts.append(f'<text class="resfam-chart__tick" x="{px:.1f}" y="{bottom + 18}" '
                     f'text-anchor="middle">{tick:g}</text>')
    for tick in range(y_lo, y_hi + 1, 2 if y_hi - y_lo > 8 else 1):
        py = y(tick)
        parts.append(f'<line class="resfam-chart__grid" x1="{left}" y1="{py:.1f}" x2="{right}" y2="{py:.1f}"/>')
        parts.append(f'<text class="resfam-chart__tick" x="{left - 8}" y="{py + 4:.1f}" '
                     f'text-anchor="end">{tick}</text>')
    parts.append(f'<rect class="resfam-chart__frame" x="{left}" y="{top}" width="{right - left}" '
                 f'height="{bottom - top}"/>')
    parts.append(f'<text class="resfam-chart__label" x="{(left + right) / 2:.1f}" y="{_CHART_H - 10}" '
                 'text-anchor="middle">GFLOPs (fvcore, at the model\'s image size)</text>')
    parts.append(f'<text class="resfam-chart__label" transform="translate(16 {(top + bottom) / 2:.1f}) '
                 'rotate(-90)" text-anchor="middle">Top-1 accuracy (%)</text>')
    for point in points:
        label = (f"{point.name} ({point.family}): {point.top1:.2f} % top-1, {point.gflops:.2f} GFLOPs "
                 f"at {point.image_size} × {point.image_size}")
        parts.append(f'<a class="resfam-chart__point" href="{html.escape(point.href)}" '
                     f'data-model="{html.escape(point.name)}"><title>{html.escape(label)}</title>'
                     f'<circle class="resfam-series-{point.series % 8}" cx="{x(point.gflops):.1f}" '
                     f'cy="{y(point.top1):.1f}" r="6"/></a>')
    parts.append("</svg>")
    legend = "".join(f'<span class="resfam-legend__item"><span class="resfam-legend__swatch '
                     f'resfam-series-{index % 8}"></span>{html.escape(name)}</span>'
                     for index, name in enumerate(families))
    # one line: a blank line would end Markdown's raw HTML block
    return (f'<figure class="resfam-chart-figure">{"".join(parts)}'
            f'<figcaption class="resfam-legend">{legend}</figcaption></figure>\n')


def _log_range(values: Sequence[float]) -> tuple[float, float]:
    """log10 bounds a little wider than the data, so no point sits on the frame."""
    lo, hi = math.log10(min(values)), math.log10(max(values))
    pad = max(0.05, (hi - lo) * 0.06)
    return lo - pad, hi + pad


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks between 10**lo and 10**hi."""
    ticks = []
    for exponent in range(math.floor(lo), math.ceil(hi) + 1):
        for mantissa in (1, 2, 5):
            tick = mantissa * 10.0 ** exponent
            if lo <= math.log10(tick) <= hi:
                ticks.append(tick)
    return ticks


# ---------------------------------------------------------------------------------------------
# Markdown helpers


def _breakable(name: str) -> str:
    """A model name for a narrow table cell: it may break after an underscore, nowhere else."""
    return _md(name).replace("\\_", "\\_<wbr>")


def _title(text: str) -> str:
    """Text for a Markdown link title (a tooltip): one line, no double quote to end it early."""
    return " ".join(text.split()).replace('"', "'")


def _plain(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
