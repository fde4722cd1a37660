"""How many models a verification measures again after an edit of the zoo: what the cache's dependencies
(resfam/cards/dependencies.py) save.

    .venv/bin/python scripts/bench_dependencies.py

On a temporary copy of the resfam package and of templates/ (the project's own files and cache are never
touched), one cold verification fills a fresh cache; then each edit below is made in the copy, on top
of the previous ones, and followed by one verification, which prints how many models it measured, which
ones, and how long it took:

1. a new registration line at the end of resnet.py, `wide_resnet50_2` as docs/adding-a-model.md
   registers it, with a card listing it (the new model must be measured);
2. a change of `BasicBlock.forward` in resnet.py (the same computation, written in two statements);
3. a new method of ResNeSt's `SplitAttention` in resnest.py;
4. a new method of Res2Net's block, `Res2NetBottleneck`, in res2net.py;
5. a change of `make_divisible` in layers.py, a helper `SplitAttention` calls (the same result).

Exit code 1 if a verification does not pass or an edit re-measures other models than those built with
what it changed.
"""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resfam.cards.cli import card_template  # noqa: E402
from resfam.cards.verify import verify  # noqa: E402
from resfam.cards.zoo import Progress  # noqa: E402


def registration_line() -> str:
    """The registration of step 1 of docs/adding-a-model.md, as it is written there."""
    guide = (REPO / "docs" / "adding-a-model.md").read_text(encoding="utf-8")
    return guide.split("```python\n", 1)[1].split("```", 1)[0]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise SystemExit(f"bench_dependencies: {path.name} no longer holds {old!r}: update this script")
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def new_method(path: Path, class_name: str) -> None:
    """A method added to `class_name`, before its forward."""
    text = path.read_text(encoding="utf-8")
    start = text.index(f"class {class_name}(")
    forward = text.index("    def forward", start)
    path.write_text(text[:forward] + "    def described(self):\n        return type(self).__name__\n\n"
                    + text[forward:], encoding="utf-8")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="resfam-bench-dependencies-"))
    try:
        package = work / "resfam"
        shutil.copytree(REPO / "resfam", package, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(REPO / "templates", work / "templates")
        models = package / "models"
        measured_ids: list[str] = []

        def run(title: str, expected: set[str] | None) -> bool:
            measured_ids.clear()
            started = time.perf_counter()
            report = verify(templates_dir=work / "templates", cache_dir=work / "cache", package_dir=package,
                            progress=lambda event: measured_ids.append(event.model_id)
                            if isinstance(event, Progress) else None)
            seconds = time.perf_counter() - started
            names = sorted(measured_ids)
            shown = ", ".join(names) if len(names) <= 10 else f"{', '.join(names[:10])}, ..."
            print(f"{title:<48} {report.stats.measured_models:>3} model(s) measured in {seconds:5.1f} s"
                  f"{': ' + shown if names else ''}", flush=True)
            good = report.exit_code == 0 and (expected is None or set(names) == expected)
            if not good:
                print(f"    unexpected: exit code {report.exit_code}, expected {sorted(expected or [])}", flush=True)
            return good

        basic = {"resnet18", "resnet34", "tv_resnet34", "resnet18d", "resnet34d"}
        resnest = {name for name in _registered(models / "resnest.py")}
        res2net = {name for name in _registered(models / "res2net.py")}
        results = [run("cold verification (empty cache)", None)]
        with open(models / "resnet.py", "a", encoding="utf-8") as handle:
            handle.write(registration_line())
        # the card `resfam-cards new` writes, with only the ID: verify measures the model
        card = card_template("Wide ResNet", {"wide_resnet50_2": {}})
        (work / "templates" / "models" / "wide-resnet.md").write_text(card, encoding="utf-8")
        results.append(run("1. a registration line added to resnet.py", {"wide_resnet50_2"}))
        edit(models / "resnet.py", "        x = self.aa(self.act1(self.bn1(self.conv1(x))))\n",
             "        x = self.act1(self.bn1(self.conv1(x)))\n        x = self.aa(x)\n")
        results.append(run("2. BasicBlock.forward edited", basic))
        new_method(models / "resnest.py", "SplitAttention")
        results.append(run("3. a method added to SplitAttention", resnest))
        new_method(models / "res2net.py", "Res2NetBottleneck")
        results.append(run("4. a method added to Res2NetBottleneck", res2net))
        signature = "def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:\n"
        edit(models / "layers.py", signature, signature + "    value = float(value)\n")
        results.append(run("5. make_divisible (layers.py) edited", resnest))
        return 0 if all(results) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _registered(path: Path) -> list[str]:
    return re.findall(r'^register_resnet\("([^"]+)"', path.read_text(encoding="utf-8"), re.MULTILINE)


if __name__ == "__main__":
    sys.exit(main())
