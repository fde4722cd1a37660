"""Speed, measured honestly: `resfam-cards bench ID... --output FILE` times CPU inference of the models
named and writes a benchmark file; the overview page shows its figures as measured on that machine, on
that date (`pages.speed_section`). The build never runs it: timings depend on the machine and on what
else it is doing, so a build that timed models would not be deterministic, and its figures would not be
verified anyway.

The file says what the figures depend on: the machine (CPU, cores, its load average while the models
ran), the versions, the date, the threads and batch sizes, and a hash of the zoo's code
(`zoo_code_hash`), so that a file made from older code is shown as stale.

Each model is built as `resfam.create_model(ID)` (random weights: the speed does not depend on their
values), in evaluation mode under `torch.inference_mode()`, fed zeros at its registered image size:
one run to warm up, then `runs` timed runs per batch size; the figure is the batch size divided by the
median time, in images per second.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import SourceTree, installed_versions
from .findings import CardError, Finding
from .sync import write_atomic

BENCH_FORMAT = 1
DEFAULT_BATCH = 8
DEFAULT_THREADS = 1
DEFAULT_RUNS = 5


def zoo_code_hash(tree: SourceTree | None = None) -> str:
    """One hash of every source file of the zoo (the package outside the card engine): a benchmark made
    from other code than this is stale."""
    combined = hashlib.sha256()
    for relative, digest in sorted((tree or SourceTree()).model_sources().items()):
        combined.update(f"{relative}\0{digest}\0".encode())
    return combined.hexdigest()


def machine() -> dict[str, Any]:
    """What the figures depend on besides the code: the CPU, its cores and how busy it was."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def bench(model_ids: Sequence[str], *, batch: int = DEFAULT_BATCH, threads: int = DEFAULT_THREADS,
          runs: int = DEFAULT_RUNS, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The benchmark of `model_ids` as the file holds it (see the module docstring)."""
    import torch

    import resfam

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    started = datetime.datetime.now(datetime.UTC)
    loads = [_load_average()]
    models = {}
    for model_id in model_ids:
        model = resfam.create_model(model_id).eval()
        size = model.default_config.image_size
        speeds = {}
        for batch_size in sorted({1, batch}):
            images = torch.zeros(batch_size, 3, size, size)
            times = []
            with torch.inference_mode():
                model(images)  # warm-up
                for _ in range(runs):
                    start = time.perf_counter()
                    model(images)
                    times.append(time.perf_counter() - start)
            speeds[str(batch_size)] = round(batch_size / statistics.median(times), 2)
        models[model_id] = {"image_size": size, "images_per_second": speeds}
        loads.append(_load_average())
        if progress is not None:
            progress(f"{model_id} ({size} px): " + ", ".join(f"batch {b}: {s:g} images/s" for b, s in speeds.items()))
    measured_loads = [load for load in loads if load is not None]
    return {
        "format": BENCH_FORMAT,
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {**machine(), "load_average": max(measured_loads) if measured_loads else None},
        "versions": installed_versions(),
        "code": zoo_code_hash(),
        "threads": threads,
        "batch": batch,
        "runs": runs,
        "models": models,
    }


def write_benchmark(data: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the benchmark file at once (nothing half-written); a folder that does not exist, or a path
    that is a folder, is refused before anything is measured (`check_output`)."""
    write_atomic(path, json.dumps(data, indent=1) + "\n")


def check_output(path: str | os.PathLike[str]) -> None:
    """CardError when `path` cannot be the benchmark file: a folder, in a folder that does not exist, in
    the project's source folders (outputs.py), or a file there already that is not a benchmark file
    (an earlier benchmark file is replaced; anything else is left as it is)."""
    from .outputs import inside_project
    from .verify import shown_path

    target = Path(path)
    folder = inside_project(target, "templates")
    problem = ("is a folder" if target.is_dir()
               else f"is in a folder that does not exist ({target.parent})" if not target.parent.is_dir()
               else "is not a .json file" if target.suffix != ".json"
               else f"is in the project's source folder {shown_path(folder)}/" if folder is not None
               else None)
    if problem is None and os.path.lexists(target):
        try:
            read_benchmark(target)
        except CardError:
            problem = "is a file that resfam-cards bench did not write; it was left as it is"
    if problem:
        raise CardError([Finding("error", str(path), None, f"the benchmark file {problem}",
                                 hint="give the path of a new .json file (or an earlier benchmark file) in an "
                                      "existing folder outside templates/, docs/ and resfam/, e.g. "
                                      "--output benchmark.json")])


@dataclass(frozen=True)
class Benchmark:
    """A benchmark file as the overview shows it."""

    path: str
    data: dict[str, Any]
    stale: bool  # made from other code than the zoo's now

    @property
    def batch_sizes(self) -> list[str]:
        return sorted({size for model in self.data["models"].values() for size in model["images_per_second"]},
                      key=int)


def read_benchmark(path: str | os.PathLike[str], tree: SourceTree | None = None) -> Benchmark:
    """The benchmark file at `path`, and whether it is stale; CardError naming the file and what is wrong
    when it cannot be read or is not a benchmark file."""
    shown = os.fspath(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CardError([Finding("error", shown, getattr(error, "lineno", None),
                                 f"cannot read the benchmark file: {error}",
                                 hint="make it with: resfam-cards bench ID... --output " + shown)]) from None
    expected = {"format": int, "date": str, "machine": dict, "versions": dict, "code": str, "threads": int,
                "batch": int, "models": dict}
    wrong = [key for key, kind in expected.items() if not isinstance(data.get(key) if isinstance(data, dict)
                                                                          else None, kind)]
    if not wrong and data["format"] != BENCH_FORMAT:
        wrong = ["format"]
    if not wrong:
        wrong = [f"models.{name}" for name, model in data["models"].items()
                 if not isinstance(model, dict) or not isinstance(model.get("image_size"), int)
                 or not isinstance(model.get("images_per_second"), dict)
                 or not all(isinstance(speed, (int, float)) for speed in model["images_per_second"].values())]
    if wrong:
        raise CardError([Finding("error", shown, None, f"not a resfam benchmark file (format {BENCH_FORMAT}): "
                                                       f"{', '.join(wrong)} missing or wrong",
                                 hint="make it again with: resfam-cards bench ID... --output " + shown)])
    return Benchmark(shown, data, stale=data["code"] != zoo_code_hash(tree))
