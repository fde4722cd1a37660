"""Where a command's CPU time goes, process by process: run it, sample its process tree from /proc
every 50 ms, and print each process it started (the measuring workers, their measuring and page
children, the template renderer) with when it lived and the CPU time it used, then how many CPUs the
tree kept busy in each half second.

    .venv/bin/python scripts/cpu_by_process.py .venv/bin/resfam-cards verify -q --no-cache

Linux only. A process that lives less than 50 ms may be missed; the CPU time of each process is its
own (user + system), read from /proc/PID/stat, not its children's. The command's own output passes
through; the table goes to stderr when the command ends.
"""
from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench_build import process_tree, processes  # this folder is first on the module path

SAMPLE_SECONDS = 0.05


def main() -> int:
    if len(sys.argv) < 2:
        sys.exit(__doc__.rstrip())
    if not Path("/proc/self/stat").exists():
        sys.exit("cpu_by_process: needs Linux's /proc")
    started = time.perf_counter()
    try:
        command = subprocess.Popen(sys.argv[1:])
    except OSError as error:
        sys.exit(f"cpu_by_process: cannot run {sys.argv[1]!r}: {error.strerror}")
    seen: dict[int, dict] = {}  # pid -> parent, name, first and last seen, CPU seconds
    busy = Counter()  # half second -> CPU seconds used in it
    while command.poll() is None:
        now = time.perf_counter() - started
        every = processes()
        for pid in process_tree(command.pid, every):
            parent, name, cpu = every[pid]
            record = seen.setdefault(pid, {"parent": parent, "name": name, "first": now, "cpu": 0.0})
            busy[int(now * 2) / 2] += cpu - record["cpu"]
            record.update(last=now, cpu=cpu)
        time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    print(f"\n{' '.join(sys.argv[1:])}: {wall:.2f} s, exit code {command.returncode}, "
          f"{sum(r['cpu'] for r in seen.values()):.2f} CPU s in {len(seen)} processes", file=sys.stderr)
    print(f"{'pid':>8} {'parent':>8}  {'name':16} {'lived (s)':>15} {'CPU s':>7}", file=sys.stderr)
    for pid, record in sorted(seen.items(), key=lambda item: item[1]["first"]):
        print(f"{pid:>8} {record['parent']:>8}  {record['name'][:16]:16} "
              f"{record['first']:6.2f} - {record['last']:6.2f} {record['cpu']:7.2f}", file=sys.stderr)
    print("CPUs busy per half second: " + " ".join(f"{at:.1f}:{used / 0.5:.1f}" for at, used in sorted(busy.items())),
          file=sys.stderr)
    return command.returncode


if __name__ == "__main__":
    sys.exit(main())
