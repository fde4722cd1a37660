"""What counting activations adds to a cold verification (issue 11: at most 15 %).

    .venv/bin/python scripts/bench_activations.py [--base REV] [--new REV] [--rounds N]

Two trees are verified cold (`verify(use_cache=False)`, every card, every model measured), each taken
from git into a temporary folder: the base (default f6ea8ba, the last commit before activations were
counted) and the new one (default HEAD). Each run is its own Python process with that tree first on the
import path, timed from the outside, interpreter start included; the runs alternate (base, new, base,
new, ...) so that both see the same load. Each run reports its wall time and its CPU time (user + system,
the process and every process it started: workers, renderer); on a shared, busy machine the wall times
follow the other jobs, the CPU times much less, so the verdict is on the CPU times' medians. Exit code 1
if the new tree's median is more than 15 % above the base's.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 1.15

VERIFY = ("import sys; sys.path.insert(0, {root!r}); from resfam.cards.verify import verify; "
          "report = verify(templates_dir={templates!r}, use_cache=False); "
          "assert report.stats.measured_models == 34, report.stats; print(report.exit_code)")


def extract(revision: str, folder: Path) -> Path:
    """`resfam/` and `templates/` of `revision` in `folder`."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", revision, "resfam", "templates"],
                             check=True, capture_output=True).stdout
    folder.mkdir()
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def cold_verify(root: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one cold verification of the tree at `root`."""
    code = VERIFY.format(root=str(root), templates=str(root / "templates"))
    environment = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-P", "-c", code], check=True, cwd=root, env=environment,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the run and every process it waited for
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="f6ea8ba", help="the revision to compare with (default: f6ea8ba)")
    parser.add_argument("--new", default="HEAD", help="the revision measured (default: HEAD)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree (default: 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="resfam-bench-") as folder:
        trees = {"base": extract(args.base, Path(folder) / "base"), "new": extract(args.new, Path(folder) / "new")}
        times: dict[str, list[tuple[float, float]]] = {"base": [], "new": []}
        for round_ in range(1, args.rounds + 1):
            for name, root in trees.items():
                wall, cpu = cold_verify(root)
                times[name].append((wall, cpu))
                print(f"round {round_}: {name:4} cold verify {wall:6.1f} s wall, {cpu:6.1f} s CPU "
                      f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)", flush=True)
    ratios = {}
    for index, kind in enumerate(("wall", "CPU")):
        base = statistics.median(run[index] for run in times["base"])
        new = statistics.median(run[index] for run in times["new"])
        ratios[kind] = new / base
        print(f"median {kind}: base ({args.base}) {base:.1f} s, new ({args.new}) {new:.1f} s: {new / base - 1:+.1%}")
    ratio = ratios["CPU"]
    print(f"verdict on CPU time: {ratio - 1:+.1%} (limit {LIMIT - 1:+.0%})")
    return 0 if ratio <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
