"""How long the whole test suite takes, against an earlier revision: the target is no slower than before.

Usage: .venv/bin/python scripts/bench_tests.py --base REV [--new REV] [--rounds N]

Each revision is checked out into a temporary git worktree and its CI command (`.ci/run`: set up a fresh
.venv, then the suite) is run there, as CI runs it on a clean checkout; the revisions take turns, round
after round, so a change in the machine's load hits both alike. Printed per run: tests passed, pytest's
own time (the suite) and the wall time (set-up included); then the median suite times and PASS or FAIL.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"(\d+) passed.* in ([\d.]+)s")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def run_suite(checkout: Path) -> tuple[int, float, float]:
    """(tests passed, pytest's seconds, wall seconds) of the checkout's `.ci/run`."""
    started = time.monotonic()
    done = subprocess.run(["bash", ".ci/run"], cwd=checkout, capture_output=True, text=True,
                          env=dict(os.environ, CI="true"))
    wall = time.monotonic() - started
    found = SUMMARY.findall(done.stdout)
    if done.returncode != 0 or not found:
        sys.exit(f"bench_tests: the suite failed in {checkout} (exit {done.returncode}):\n{done.stdout[-3000:]}"
                 f"{done.stderr[-2000:]}")
    passed, seconds = found[-1]
    return int(passed), float(seconds), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier revision (a commit, tag or branch)")
    parser.add_argument("--new", default="HEAD", help="the revision measured against it (default: HEAD)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each revision, taken in turns")
    options = parser.parse_args()
    revisions = {"base": git("rev-parse", "--short", options.base), "new": git("rev-parse", "--short", options.new)}
    suite: dict[str, list[float]] = {"base": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="resfam-bench-tests-") as scratch:
        checkouts = {}
        for role, revision in revisions.items():
            checkouts[role] = Path(scratch) / role
            git("worktree", "add", "--detach", str(checkouts[role]), revision)
        try:
            for round_number in range(1, options.rounds + 1):
                for role, revision in revisions.items():
                    passed, seconds, wall = run_suite(checkouts[role])
                    suite[role].append(seconds)
                    print(f"round {round_number}, {role} {revision}: {passed} passed, suite {seconds:.1f} s, "
                          f"wall {wall:.1f} s (set-up included)", flush=True)
        finally:
            for checkout in checkouts.values():
                git("worktree", "remove", "--force", str(checkout))
    base, new = statistics.median(suite["base"]), statistics.median(suite["new"])
    verdict = "PASS" if new <= base else "FAIL"
    print(f"suite, median: base {base:.1f} s, new {new:.1f} s = {new / base:.2f}x; "
          f"target no slower than the base: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
