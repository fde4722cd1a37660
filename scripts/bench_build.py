"""How long building the site takes, against what a simple CI script would spend and against MkDocs
building the same pages without the plugin.

    .venv/bin/python scripts/bench_build.py                                # resfam's site
    .venv-timm/bin/python scripts/bench_build.py --project examples/timm   # another docs project and its zoo

One run, on a temporary copy of templates/, docs/ and mkdocs.yml (of another `--project`: of its whole
folder) with a fresh cache folder (the project's own cache and templates are never touched), with the
zoo and the settings of its mkdocs.yml (the resfam plugin's zoo, code_url, vocabulary), prints:

1. naive baseline: every model of every card, in sequence, created by the zoo with default
   initialisation and counted by fvcore at the card's image size (`measure.naive_flops`);
2. cold verification: `verify()` of every card with an empty cache, with the default settings (as
   many measuring workers as the cores and the memory allow); how many models the shape-only trace
   could not take, so that their FLOPs were counted on the CPU;
3. a first `mkdocs build --strict` of the whole site: the measurements come from the cache, the
   theme's compiled templates go into it (shown, not compared);
4. warm builds, every cache filled (three builds, the median counts), alternating with
5. plain MkDocs builds of the same site without the plugin: its generated pages (the cards and the
   overview, as the plugin makes them) written out as ordinary pages, `plugins: [search]` (three
   builds, the median counts); the plugin's overhead is the ratio of the two medians;
6. the same build after rounding one figure of one card (a Parameters count to 4 significant
   figures, which stays within its tolerance, so the build still passes): three edits of three
   figures, each followed by its build, the median counts.

The warm, plain and edited builds take turns, so that a change in the machine's load hits all three.

Each phase runs in its own Python process (`--phase`), timed from the outside, interpreter start and
imports included, as a user waits for them. Peak memory is the most the phase's process tree held at
once: the proportional set sizes (Pss: a page shared by a forked child and its parent counts once) of
the process and its children (measuring workers and their children, template renderer), added up every
0.5 s from /proc by a thread of the lowest priority (reading a torch process's Pss costs the kernel
milliseconds: sampled more often, it slows what it samples), and never less than what `getrusage`
reports for the process plus its largest child. The ratios are from this one run, so they hold on a
shared, noisy machine where absolute times do not, as long as the other jobs stay as they were: each
phase's row says how busy the rest of the machine was meanwhile (from /proc/stat). Progress goes to
stderr, the results to stdout; exit code 1 if a target fails.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WARM_BUILDS = 3  # also the plain builds and the edits: the median of three counts
GIB = 1024 ** 3

# Targets: cold verification against the naive baseline, the plugin's overhead on a warm build
# against plain MkDocs (a faster cold run never fails a target), a rebuild after an edit against a warm one.
COLD_VS_NAIVE = 0.35
WARM_VS_PLAIN = 1.3
EDIT_VS_WARM = 1.5
PEAK_BYTES = 4 * GIB
SAMPLE_SECONDS = 0.5  # how often peak memory is sampled (PeakMemory)


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Phases: each runs in a fresh process and prints one JSON line on stdout


def plugin_settings(project: Path) -> dict[str, Any]:
    """The resfam plugin's settings in the project's mkdocs.yml (tags such as !ENV read as null)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    config = yaml.load((project / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)
    for plugin in config.get("plugins") or []:
        if isinstance(plugin, dict) and "resfam" in plugin:
            return plugin["resfam"] or {}
    return {}


def verify_settings(project: Path) -> dict[str, Any]:
    """verify()'s arguments for the zoo and its settings in mkdocs.yml."""
    settings = plugin_settings(project)
    vocabulary = settings.get("vocabulary")
    return {"zoo": settings.get("zoo", "resfam"), "code_url": settings.get("code_url"),
            "vocabulary": project / vocabulary if vocabulary else None}


def phase_naive(project: Path) -> dict[str, Any]:
    from resfam.cards.measure import naive_flops
    from resfam.cards.model_index import parse_card
    from resfam.cards.verify import claimed_image_size
    from resfam.cards.zoos import load_zoo

    sys.path.insert(0, str(project))  # a zoo of the project's own, as the measuring workers find it
    zoo = load_zoo(verify_settings(project)["zoo"])
    counted = 0
    for path in sorted((project / "templates" / "models").glob("*.md")):
        for model in parse_card(path).models:
            started = time.perf_counter()
            naive_flops(model.model_id, claimed_image_size(model), zoo.create_model)
            counted += 1
            say(f"  naive {counted}: {model.model_id} {time.perf_counter() - started:.1f} s")
    return {"measured": counted, "workers": 0, "ok": True}


def phase_cold(project: Path) -> dict[str, Any]:
    from resfam.cards.measure import ON_CPU
    from resfam.cards.verify import verify

    report = verify(templates_dir=project / "templates", cache_dir=project / "cache",
                    progress=lambda progress: say(f"  {progress}"), **verify_settings(project))
    on_cpu = sorted({model_id for card in report.cards for model_id, measured in card.models.items()
                     if any(size.get("flops_method") == ON_CPU for size in measured.by_size.values())})
    code = report.stats.code  # runner.CodeRuns: what running the pages' code took, inside the phase
    return dict(_outcome(report), on_cpu=on_cpu, code_seconds=code.seconds if code else 0.0,
                code_blocks=code.count("ran", "cached") if code else 0)


def phase_build(project: Path) -> dict[str, Any]:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    # mkdocs.yml takes the cache folder from RESFAM_CACHE_DIR: the copy's, set by the parent
    config = load_config(str(project / "mkdocs.yml"), site_dir=str(project / "site"), strict=True)
    build(config)
    return _outcome(config.plugins["resfam"].report)


def phase_export(project: Path) -> dict[str, Any]:
    """Write the pages the plugin generates (the cards, the overview) into the plain copy's docs/."""
    from mkdocs.config import load_config
    from mkdocs.structure.files import get_files

    from resfam.cards.site import table_files

    config = load_config(str(project / "mkdocs.yml"), site_dir=str(project / "site"), strict=True)
    config.plugins.on_startup(command="build", dirty=False)
    config = config.plugins.on_config(config)
    files = config.plugins.on_files(get_files(config), config=config)
    report = config.plugins["resfam"].report
    # the generated pages, and the measurement page's tables, which the plugin fills in where the page
    # includes their files (pymdownx.snippets): plain MkDocs reads those files, as `resfam-cards pages` writes them
    generated = [(file.src_uri, file.content_string) for file in files if file.generated_by is not None]
    generated += [(table.src_uri, table.content) for table in table_files(report)]
    for src_uri, content in generated:
        target = project / "plain" / "docs" / src_uri
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    written = len(generated)
    say(f"  {written} generated pages and tables written out as plain files")
    return dict(_outcome(report), pages=written)


def phase_plain(project: Path) -> dict[str, Any]:
    """MkDocs alone: the same site, its generated pages as plain pages, no resfam plugin."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    plain = project / "plain"
    os.chdir(plain)  # pymdownx.snippets reads its base_path (docs) from here: the measurement tables' files
    build(load_config(str(project / "mkdocs.yml"), docs_dir=str(plain / "docs"), site_dir=str(plain / "site"),
                      plugins=["search"], strict=True))
    return {"measured": 0, "cached": 0, "workers": 0, "ok": True, "summary": "plain MkDocs"}


def _outcome(report) -> dict[str, Any]:
    return {"measured": report.stats.measured_models, "cached": report.stats.cached_sizes,
            "workers": report.stats.workers_started, "ok": report.ok,
            "summary": f"{len(report.cards)} cards, {len(report.findings)} findings, "
                       f"{len(report.drifts)} drifts, {len(report.errors)} errors"}


PHASES = {"naive": phase_naive, "cold": phase_cold, "build": phase_build, "export": phase_export,
          "plain": phase_plain}


def run_phase_here(name: str, project: Path) -> None:
    result = PHASES[name](project)
    own, waited = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime
    # ru_maxrss is in KiB on Linux; for the children, it is the largest child's
    print(json.dumps(dict(result, cpu=cpu, peak_self=own.ru_maxrss * 1024, peak_children=waited.ru_maxrss * 1024)))


# ---------------------------------------------------------------------------------------------
# The parent: copies the project, runs the phases, compares


def run_phase(name: str, project: Path, label: str) -> dict[str, Any]:
    say(f"{label} ...")
    busy_before = busy_cpu_seconds()
    environment = dict(os.environ, RESFAM_CACHE_DIR=str(project / "cache"), NO_MKDOCS_2_WARNING="1")
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen([sys.executable, __file__, "--phase", name, "--work", str(project)],
                                   cwd=project, env=environment, stdout=output, text=True)
        peak = PeakMemory(process.pid)
        process.wait()
        seconds = time.perf_counter() - started
        sampled = peak.stop()
        output.seek(0)
        lines = output.read().strip().splitlines()
    if process.returncode != 0 or not lines:
        sys.exit(f"bench_build: the {label} phase failed (exit code {process.returncode})")
    result = json.loads(lines[-1])
    # the CPUs the rest of the machine kept busy meanwhile, on average: other jobs on a shared machine
    others = max(0.0, (busy_cpu_seconds() - busy_before - result["cpu"]) / seconds) if busy_before is not None else None
    result.update(label=label, seconds=seconds, others=others,
                  peak=max(sampled, result["peak_self"] + result["peak_children"]))
    say(f"{label}: {seconds:.1f} s, {result['measured']} models measured")
    return result


def median(runs: list[dict[str, Any]], label: str) -> dict[str, Any]:
    """The run of median time, labelled, with the highest peak memory of them all."""
    middle = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
    return middle | {"label": label, "peak": max(run["peak"] for run in runs)}


def busy_cpu_seconds() -> float | None:
    """CPU time the whole machine has spent busy since boot (Linux /proc/stat), None elsewhere."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    # user, nice, system, idle, iowait, irq, softirq, steal (time the host gave to other machines)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class PeakMemory:
    """The most a process tree held at once (`tree_rss`), sampled every SAMPLE_SECONDS by a thread of the
    lowest priority (Linux gives each thread its own nice value). Reading the Pss of a torch process
    costs the kernel 8 to 17 ms (and holds that process's memory map meanwhile): sampled every 0.1 s,
    the sampling took 4.9 CPU s during a 17 s cold verification, 0.3 of the two cores the verification
    itself needs (docs/performance.md)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # no per-thread priority: sample as it is
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self.done.wait(SAMPLE_SECONDS)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


def tree_rss(pid: int) -> int:
    """Bytes resident in process `pid` and all its descendants now (0 where /proc is missing): each
    process's proportional share (Pss), so that the pages a forked child shares with its parent (a
    measuring worker's children, worker.py) count once, not once per process; its resident set where
    the kernel gives no Pss."""
    return sum(_resident(current) for current in process_tree(pid, processes()))


def processes() -> dict[int, tuple[int, str, float]]:
    """{pid: (parent pid, name, CPU seconds of its own)} of every process now, from /proc ({} without it)."""
    found = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # after the name, which may hold spaces
            found[int(entry)] = (int(fields[1]), stat[stat.index("(") + 1:stat.rindex(")")],
                                 (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        except (OSError, IndexError, ValueError):
            continue
    return found


def process_tree(root: int, every: dict[int, tuple[int, str, float]]) -> list[int]:
    """`root` and its descendants among `every` (`processes()`), parents before their children."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in every.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], [root]
    while todo:
        current = todo.pop()
        if current in every:
            found.append(current)
            todo += children.get(current, [])
    return found


def _resident(pid: int) -> int:
    """Bytes of process `pid` in memory: its Pss (/proc/PID/smaps_rollup), else its resident set, else 0."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def copy_project(source: Path, target: Path) -> Path:
    project = target / "project"
    if source == REPO:
        project.mkdir()
        for folder in ("templates", "docs"):
            shutil.copytree(REPO / folder, project / folder)
        shutil.copy2(REPO / "mkdocs.yml", project / "mkdocs.yml")
    else:  # another docs project: all of it (its zoo's package, its vocabulary file)
        shutil.copytree(source, project, ignore=shutil.ignore_patterns(".resfam-cache", "site", "__pycache__"))
    shutil.copytree(project / "docs", project / "plain" / "docs")  # the generated pages join it (export phase)
    return project


def round_one_figure(project: Path) -> str:
    """Round the first Parameters count that has more than 4 significant figures; returns what changed."""
    from resfam.cards.model_index import parse_card

    for path in sorted((project / "templates" / "models").glob("*.md")):
        card = parse_card(path)
        for model in card.models:
            claim = model.fields.get("Parameters")
            if claim is None or not isinstance(claim.value, int):
                continue
            rounded = int(float(f"{claim.value:.4g}"))
            if rounded != claim.value:
                start, end = claim.span
                path.write_text(card.text[:start] + str(rounded) + card.text[end:], encoding="utf-8")
                return f"{path.name}:{claim.line} {model.name} Parameters {claim.value} -> {rounded}"
    sys.exit("bench_build: no Parameters figure to round in the cards")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    versions = ", ".join(f"{name} {_version(name)}" for name in ("torch", "fvcore", "mkdocs", "mkdocs-material"))
    return (f"{os.cpu_count()} CPUs ({cpu}), CPU only, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, {versions}")


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=REPO,
                        help="the docs project (the folder of its mkdocs.yml; default: resfam's own site)")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)  # a phase's copy of the project
    args = parser.parse_args()
    if args.phase:
        run_phase_here(args.phase, args.work)
        return 0
    source = args.project.resolve()
    if not (source / "mkdocs.yml").is_file():
        sys.exit(f"bench_build: {args.project} has no mkdocs.yml: give the folder of a docs project")

    with tempfile.TemporaryDirectory(prefix="resfam-bench-") as folder:
        project = copy_project(source, Path(folder))
        naive = run_phase("naive", project, "naive baseline (create + fvcore)")
        cold = run_phase("cold", project, "cold verification (empty cache)")
        first = run_phase("build", project, "first build (fills the template cache)")
        run_phase("export", project, "card pages written out as plain pages")
        run_phase("plain", project, "first plain MkDocs build (not counted)")
        warm_runs, plain_runs, rebuilds, edits = [], [], [], []
        for i in range(WARM_BUILDS):  # taking turns, so that a change in the machine's load hits all three
            warm_runs.append(run_phase("build", project, f"warm mkdocs build {i + 1}/{WARM_BUILDS}"))
            plain_runs.append(run_phase("plain", project, f"plain MkDocs build {i + 1}/{WARM_BUILDS}"))
            edits.append(round_one_figure(project))
            say(f"edited {edits[-1]}")
            rebuilds.append(run_phase("build", project, f"rebuild after editing one figure {i + 1}/{WARM_BUILDS}"))

    warm = median(warm_runs, f"warm mkdocs build (median of {WARM_BUILDS})")
    plain = median(plain_runs, f"plain MkDocs, same pages (median of {WARM_BUILDS})")
    rebuild = median(rebuilds, f"rebuild after one edit (median of {WARM_BUILDS})")
    warm_seconds = warm["seconds"]
    overhead = warm_seconds / plain["seconds"]
    rows = [
        (naive, "", f"{naive['measured']} (every card entry)"),
        (cold, f"{cold['seconds'] / naive['seconds']:.3f}x naive", f"{cold['measured']} ({cold['workers']} workers)"),
        (first, "", first["measured"]),
        (warm, f"{overhead:.2f}x plain", "/".join(str(r["measured"]) for r in warm_runs)),
        (plain, "", "-"),
        (rebuild, f"{rebuild['seconds'] / warm_seconds:.2f}x warm",
         "/".join(str(r["measured"]) for r in rebuilds)),
    ]

    print(f"resfam build benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {source.name}, "
          f"zoo {verify_settings(source)['zoo']}")
    print(f"machine: {machine()}")
    for name, runs in (("warm builds", warm_runs), ("plain MkDocs builds", plain_runs), ("rebuilds", rebuilds)):
        print(f"{name}: {', '.join('{:.2f}'.format(run['seconds']) for run in runs)} s")
    print(f"edits: {'; '.join(edits)}")
    print(f"plugin overhead (warm build / plain MkDocs): {overhead:.2f}x")
    print(f"FLOPs counted on the CPU (the shape-only trace could not take them): {len(cold['on_cpu'])} of "
          f"{cold['measured']} models{': ' + ', '.join(cold['on_cpu']) if cold['on_cpu'] else ''}")
    print(f"running the pages' code: {cold['code_blocks']} code blocks ran; the workers spent "
          f"{cold['code_seconds']:.1f} s on them, alongside measuring, in the cold run's {cold['seconds']:.1f} s")
    print()
    print(f"{'phase':40} {'seconds':>8}  {'ratio':<14} {'CPU s':>6} {'others':>6} {'peak memory':>11}  models measured")
    for result, ratio, measured in rows:
        others = "n/a" if result["others"] is None else f"{result['others']:.2f}"
        print(f"{result['label']:40} {result['seconds']:8.2f}  {ratio:<14} {result['cpu']:6.1f} {others:>6} "
              f"{result['peak'] / GIB:7.2f} GiB  {measured}")
    print("CPU s: user + system time of the phase's processes. others: CPUs the rest of the machine kept busy")
    print("meanwhile, on average (other jobs; also the template renderer, which a phase cannot count). Where it")
    print("differs much between phases, other jobs came or went and the ratios are off: run again.")
    print()

    ours = [cold, first, *warm_runs, *rebuilds]
    checks = [
        (cold["seconds"] <= COLD_VS_NAIVE * naive["seconds"],
         f"cold verification <= {COLD_VS_NAIVE}x naive baseline ({cold['seconds'] / naive['seconds']:.3f}x)"),
        (overhead <= WARM_VS_PLAIN and all(r["measured"] == 0 for r in warm_runs),
         f"warm strict build <= {WARM_VS_PLAIN}x plain MkDocs, nothing measured ({overhead:.2f}x)"),
        (all(r["measured"] == 0 for r in rebuilds),
         f"editing one figure re-measures no model ({'/'.join(str(r['measured']) for r in rebuilds)} measured)"),
        (rebuild["seconds"] <= EDIT_VS_WARM * warm_seconds,
         f"rebuild after the edit <= {EDIT_VS_WARM}x warm build ({rebuild['seconds'] / warm_seconds:.2f}x)"),
        (max(r["peak"] for r in ours) < PEAK_BYTES,
         f"peak memory < {PEAK_BYTES // GIB} GiB ({max(r['peak'] for r in ours) / GIB:.2f} GiB)"),
        (all(r["ok"] for r in ours), "every verification and build passed: " + rebuild["summary"]),
    ]
    for passed, text in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {text}")
    return 0 if all(passed for passed, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
