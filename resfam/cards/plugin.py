"""The MkDocs plugin: verified card pages, made at build time.

    plugins:
      - search
      - resfam:
          templates_dir: templates   # card templates in templates/models/, relative to mkdocs.yml
          tolerances: {FLOPs: 0.1}   # percent, per field; the engine's defaults otherwise
          cache: true                # reuse measurements of unchanged models
          cache_dir: null            # where; the engine's default when unset
          source_url: https://github.com/OWNER/resfam/blob/main/   # `Code:` paths become links
          without_card: [resnet26]   # registered models left without a card on purpose
          families: []               # the overview's family order; default: the nav's order of the cards
          workers: null              # measuring processes; default: as many as cores and memory allow
          time_limit: 120            # seconds per step of measuring a model (building, each image size)
          memory_limit: 4 GiB        # per measuring process
          zoo: resfam                # or timm, or package.module:attribute (docs: Verified cards for your own zoo)
          code_url: null             # `Code:` as a URL of {path}, {line}, {version}: a zoo outside the repository
          coverage: ["*"]            # a build asks a card only of the model IDs these patterns match;
                                     # default: every model of resfam, none of timm or your own zoo
          vocabulary: null           # a file of architecture tags for classes the zoo owns (vocabulary.py)

A thin layer: `verify` (the engine) parses, renders, measures and compares every card; `site` turns
the result into the site's files (`pages` makes the Markdown, `catalog` the `models.json`), as it does
for `resfam-cards pages`; this module only hands them to MkDocs as generated files. A file of the docs
folder at the path of one of them that `resfam-cards pages` wrote (it carries the mark) gives way to
the build's own; any other is an error.

- `mkdocs build`: any drift or bad card stops the build with the engine's report (a PluginError:
  no traceback, and a failure even without --strict). Every warning of the engine (a figure the
  prose writes out instead of citing the measurement, an unknown key, ...) is a MkDocs warning, which
  `--strict` fails on.
- Card pages an explicit `nav` leaves out are added to it, after the cards it lists: a new family
  needs only its template.
- A model that takes too long or too much memory to measure, or crashes its worker, is an error on
  its cards (see `pool`). While models are measured, the build log says so every few seconds.
- `mkdocs serve`: the build goes on; a card with problems shows them in a red box at the top of its
  page. `templates/` and the resfam package are watched; the engine's cache keeps a rebuild down to
  the models whose definition or claims changed.
"""
from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from jinja2 import Environment, FileSystemBytecodeCache
from mkdocs.config import base
from mkdocs.config import config_options as c
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

if TYPE_CHECKING:  # only `mkdocs serve` needs it, and it loads it itself (~40 ms a build otherwise; 2026-11-22)
    from mkdocs.livereload import LiveReloadServer

from .bench import Benchmark, read_benchmark
from .cache import cache_subfolder, default_cache_dir
from .findings import CardError
from .limits import MEMORY_LIMIT_HINT, TIME_LIMIT_HINT, Limits, LimitsError
from .model_index import parse_card
from .pages import MEASUREMENT_PAGE, default_measurement_page, measurement_page
from .render import start_renderer
from .report import fallback_lines, format_report
from .site import OVERVIEW, SiteSettings, card_src_uri, family_order, is_generated, nav_entries, nav_paths, site_files
from .verify import Report, card_templates, verify
from .zoo import Progress, zoo_folder
from .zoos import DEFAULT_ZOO

# "mkdocs.plugins.resfam" under MkDocs; under ProperDocs, which serves `mkdocs` imports from its own
# package, "properdocs.plugins.resfam": a logger its command line shows
log = logging.getLogger(f"{BasePlugin.__module__}.resfam")


class ResfamConfig(base.Config):
    templates_dir = c.Type(str, default="templates")
    tolerances = c.Type(dict, default={})
    cache = c.Type(bool, default=True)
    cache_dir = c.Optional(c.Type(str))
    overview = c.Type(str, default=OVERVIEW)
    source_url = c.Optional(c.Type(str))  # e.g. https://github.com/OWNER/resfam/blob/main/: `Code:` links
    without_card = c.Type(list, default=[])  # registered model IDs deliberately left without a card
    families = c.ListOfItems(c.Type(str), default=[])
    workers = c.Optional(c.Type(int))
    time_limit = c.Optional(c.Type((int, float, str)))  # None: limits.DEFAULT_STEP_SECONDS
    memory_limit = c.Optional(c.Type((int, str)))  # None: limits.DEFAULT_MEMORY
    benchmark = c.Optional(c.Type(str))  # a `resfam-cards bench` file, shown on the overview (never re-run)
    zoo = c.Type(str, default=DEFAULT_ZOO)  # zoos.py: resfam, timm or package.module:attribute
    code_url = c.Optional(c.Type(str))
    coverage = c.ListOfItems(c.Type(str), default=[])  # empty: the zoo's default (verify.py)
    vocabulary = c.Optional(c.Type(str))  # relative to mkdocs.yml


class ResfamPlugin(BasePlugin[ResfamConfig]):
    def __init__(self) -> None:
        self.serving = False
        self.report: Report | None = None  # the last build's verification, stats included (the benchmark reads it)

    def on_startup(self, *, command: Literal["build", "gh-deploy", "serve"], dirty: bool) -> None:
        # Having on_startup also keeps this instance across `mkdocs serve` rebuilds.
        self.serving = command == "serve"

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        self.templates_dir = self._project_path(config, self.config.templates_dir)
        self.project_dir = os.path.dirname(os.path.abspath(self.templates_dir))  # as verify() finds the zoo
        if not os.path.isdir(os.path.join(self.templates_dir, "models")):
            raise PluginError(f"resfam: no card templates: {self.templates_dir}/models/ does not exist "
                              f"(set 'templates_dir' of the resfam plugin in {config.config_file_path})")
        self.cache_dir = self.config.cache_dir and self._project_path(config, self.config.cache_dir)
        self.vocabulary = self.config.vocabulary and self._project_path(config, self.config.vocabulary)
        self.limits = self._limits(config)
        start_renderer()  # it starts up while MkDocs gathers the theme's files, before the cards need it
        templates = card_templates(self.templates_dir)
        cards = [card_src_uri(path, self.templates_dir) for path in templates]
        # the overview's order; families not in it come last
        self.family_order = family_order(self.config.families, config.nav, cards)
        if config.nav is not None:  # a new family's card page needs no edit of mkdocs.yml
            list_card_pages(config.nav, cards, self.config.overview,
                            {card_src_uri(path, self.templates_dir): _collection_of(path) for path in templates})
        return config

    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files:
        report = self.report = self._verify()
        if not report.ok and not self.serving:
            raise PluginError("resfam: the model cards do not match the code; the site is not built.\n"
                              + format_report(report).rstrip())
        if not report.ok:
            log.warning("resfam: problems shown at the top of their card pages:\n%s", format_report(report).rstrip())
        else:
            for finding in report.warnings:  # a MkDocs warning: `mkdocs build --strict` fails on every one
                log.warning("resfam: %s", finding.format())

        if files.get_file_from_path(MEASUREMENT_PAGE) is None:  # a project that explains none: the engine's
            self._add(files, config, MEASUREMENT_PAGE, default_measurement_page())
        settings = SiteSettings(self.templates_dir, overview=self.config.overview, source_url=self.config.source_url,
                                family_order=self.family_order, site_url=config.site_url,
                                directory_urls=config.use_directory_urls,
                                benchmark=self._benchmark(config))
        for generated in site_files(report, settings, show_findings=self.serving):
            file = self._add(files, config, generated.src_uri, generated.content)
            if generated.template is not None:
                # edit links are edit_uri + the path from docs/: for a card, "../templates/models/<family>.md"
                file.edit_uri = os.path.relpath(os.path.abspath(generated.template),
                                                config.docs_dir).replace(os.sep, "/")
        return files

    def on_env(self, env: Environment, *, config: MkDocsConfig, files: Files) -> Environment:
        # Every build compiles the theme's templates anew: about a sixth of a warm build. Jinja's own
        # bytecode cache keeps them compiled; it checks each template's source, so it cannot go stale.
        if self.config.cache and env.bytecode_cache is None:
            folder = cache_subfolder(self.cache_dir or default_cache_dir(self.templates_dir), "jinja")
            if folder is not None:
                env.bytecode_cache = FileSystemBytecodeCache(str(folder))
        return env

    def on_page_markdown(self, markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
        if page.file.src_uri == MEASUREMENT_PAGE and self.report is not None:
            return measurement_page(markdown, self.report.tolerances, self.report.architecture_tags)
        return markdown

    def on_pre_page(self, page: Page, *, config: MkDocsConfig, files: Files) -> Page:
        # MkDocs joins edit_uri and "../templates/..." without resolving the "..": do it here
        if page.edit_url:
            parts = urlsplit(page.edit_url)
            page.edit_url = urlunsplit(parts._replace(path=posixpath.normpath(parts.path)))
        return page

    def on_serve(self, server: LiveReloadServer, *, config: MkDocsConfig, builder: Any) -> LiveReloadServer:
        server.watch(self.templates_dir)
        server.watch(str(zoo_folder(self.config.zoo, self.project_dir)))
        return server

    # -----------------------------------------------------------------------------------------

    def _verify(self) -> Report:
        try:
            report = verify(templates_dir=self.templates_dir, tolerances=self.config.tolerances or None,
                            cache_dir=self.cache_dir, use_cache=self.config.cache,
                            progress=_log_progress, max_workers=self.config.workers, limits=self.limits,
                            without_card=self.config.without_card, zoo=self.config.zoo,
                            code_url=self.config.code_url, coverage=self.config.coverage or None,
                            vocabulary=self.vocabulary)
        except CardError as error:  # bad input that is no single card's (e.g. a tolerance setting)
            raise PluginError(f"resfam: cannot verify the cards:\n{error}") from None
        for line in fallback_lines(report):  # slower, same figures: said, not a warning
            log.info("resfam: %s", line)
        return report

    def _limits(self, config: MkDocsConfig) -> Limits:
        """The time and memory limits of measuring; a PluginError naming each bad setting, its line in
        mkdocs.yml and what it takes."""
        problems = []  # (setting, what is wrong, how to fix it)
        limits = None
        try:
            limits = Limits.parse(self.config.time_limit, self.config.memory_limit)
        except LimitsError as error:
            settings = {"seconds": ("time_limit", TIME_LIMIT_HINT), "memory": ("memory_limit", MEMORY_LIMIT_HINT)}
            problems += [(settings[name][0], problem, settings[name][1]) for name, problem in error.problems.items()]
        if self.config.workers is not None and self.config.workers < 1:
            problems.append(("workers", f"at least one measuring process is needed, got {self.config.workers}",
                             "leave workers out for the default"))
        if problems:
            path = config.config_file_path or "mkdocs.yml"
            raise PluginError("resfam: bad settings of the resfam plugin:\n" + "\n".join(
                f"{path}:{_line_of(path, name) or '?'}: {name}: {problem}\n    hint: {hint}"
                for name, problem, hint in problems))
        return limits

    def _add(self, files: Files, config: MkDocsConfig, src_uri: str, content: str) -> File:
        clash = files.get_file_from_path(src_uri)
        if clash is not None and clash.abs_src_path and is_generated(clash.abs_src_path, config.docs_dir):
            files.remove(clash)  # written by `resfam-cards pages` for another builder: this build makes its own
        elif clash is not None:
            raise PluginError(f"resfam: {clash.src_uri} in {config.docs_dir} has the path of a file the resfam "
                              "plugin generates; rename or remove it")
        file = File.generated(config, src_uri, content=content)
        files.append(file)
        return file

    def _benchmark(self, config: MkDocsConfig) -> Benchmark | None:
        """The benchmark file of the `benchmark` setting, read (never made) by the build; a PluginError
        saying what is wrong with it."""
        if not self.config.benchmark:
            return None
        try:
            return read_benchmark(self._project_path(config, self.config.benchmark))
        except CardError as error:
            raise PluginError("resfam: the 'benchmark' setting of mkdocs.yml names a file that cannot be shown:\n"
                              + "\n".join(finding.format() for finding in error.findings)) from None

    @staticmethod
    def _project_path(config: MkDocsConfig, path: str) -> str:
        """`path` relative to the folder of mkdocs.yml, made absolute."""
        root = os.path.dirname(os.path.abspath(config.config_file_path or "mkdocs.yml"))
        return os.path.normpath(os.path.join(root, path))


def list_card_pages(nav: list, card_uris: Sequence[str], overview: str,
                    titles: Mapping[str, str | None] | None = None) -> None:
    """Append to an explicit `nav` the card pages it leaves out, in the section that lists the other
    cards or the overview, titled with their collection's name (`titles`), as the overview names the
    family. A nav that lists neither stays as written (its author left the cards out)."""
    listed = set(nav_paths(nav))
    missing = [uri for uri in card_uris if uri not in listed]
    section = _nav_section_of(nav, {*card_uris, overview})
    if missing and section is not None:
        section.extend({titles[uri]: uri} if titles and titles.get(uri) else uri for uri in missing)


def _collection_of(path: str | os.PathLike[str]) -> str | None:
    """The collection name of a card template, None when it cannot be read (verify reports why)."""
    try:
        return parse_card(path).collection
    except CardError:
        return None


def _nav_section_of(nav: list, paths: set[str]) -> list | None:
    return next((section for value, section in nav_entries(nav) if isinstance(value, str) and value in paths),
                None)


def _line_of(config_file: str, setting: str) -> int | None:
    """The line of mkdocs.yml where `setting:` is written (the first one), for error messages."""
    try:
        with open(config_file, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.lstrip().startswith(f"{setting}:"):
                    return number
    except (OSError, UnicodeDecodeError):
        pass
    return None


def _log_progress(progress: Progress) -> None:
    log.info("resfam: %s", progress)

