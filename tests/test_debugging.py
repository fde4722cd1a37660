"""Measuring that a contributor can debug: `resfam-cards measure ID` measures one model in the running
process and prints every figure and tag with how it was found, an exception in the model's code keeps
its traceback (and stops in a debugger); a busy worker says which line of the model it is at; a count
that fell back from the shape-only trace to the CPU is counted in the report and named under -v."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from card_entries import RESNET18_MEASURED

from resfam import registry
from resfam.cards import measure, pool
from resfam.cards.cli import main
from resfam.cards.fields import BY_NAME
from resfam.cards.limits import Limits
from resfam.cards.pool import MeasureJob, StillWorking, WorkerPool

REPO = Path(__file__).resolve().parents[1]

ZOO = '''\
"""Models for tests/test_debugging.py."""
import torch.nn as nn

from ..registry import register_model
from .resnet import default_config


def _register(name):
    return register_model(name, "resnet", default_config(f"https://example.com/{name}.pth"))


def _fails_to_build():
    raise ValueError("this model cannot be built")  # RAISE


@_register("brokennet")
def brokennet(**kwargs):
    return _fails_to_build()


@_register("slownet")
def slownet(**kwargs):
    while True: pass  # SPIN


class ScalarGate(nn.Module):
    """Scales a convolution's output by a Python number read from it: the meta device has no values."""

    nominal_depth = 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        y = self.conv(x)
        return y * float(y.mean() * 0 + 1)


@_register("gatenet")
def gatenet(**kwargs):
    return ScalarGate()
'''


def line_of(marker: str) -> int:
    return next(number for number, line in enumerate(ZOO.splitlines(), 1) if marker in line)


@pytest.fixture
def debug_package(add_models):
    return add_models("debugging", ZOO)


# ---------------------------------------------------------------------------------------------
# resfam-cards measure


def test_measure_prints_every_verified_figure_and_tag_with_how_it_was_found():
    """The command as a contributor runs it: a process of its own, which loads the zoo itself."""
    done = subprocess.run([sys.executable, "-m", "resfam.cards.cli", "measure", "resnet18"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    source = (REPO / "resfam/models/resnet.py").read_text().splitlines()
    registered_at = next(number for number, line in enumerate(source, 1) if 'register_resnet("resnet18"' in line)
    trace = "traced on the meta device (shapes only)"
    expected = {
        "ID": ("resnet18", "the model ID it is registered under"),
        "Layers": ("18", BY_NAME["Layers"].how),
        "Parameters": (f"{RESNET18_MEASURED.parameters:,}", BY_NAME["Parameters"].how),
        "FLOPs": (f"{RESNET18_MEASURED.flops:,} at 224 px", f"{BY_NAME['FLOPs'].how}; {trace}"),
        "Activations": (f"{RESNET18_MEASURED.activations:,} at 224 px", f"{BY_NAME['Activations'].how}; {trace}"),
        "File Size": (f"{RESNET18_MEASURED.file_size:,}", BY_NAME["File Size"].how),
        "Image Size": ("224", BY_NAME["Image Size"].how),
        "Crop Pct": ("0.875", BY_NAME["Crop Pct"].how),
        "Interpolation": ("bilinear", BY_NAME["Interpolation"].how),
        "Weights": ("https://download.pytorch.org/models/resnet18-5c106cde.pth", BY_NAME["Weights"].how),
        "Architecture": ("1x1 Convolution, Batch Normalization, Convolution, Dense Connections, Global Average "
                         "Pooling, Max Pooling, ReLU, Residual Block, Residual Connection",
                         BY_NAME["Architecture"].how),
        "Code": ("resfam/models/resnet.py", f"{BY_NAME['Code'].how} (line {registered_at})"),
    }
    for name, (value, how) in expected.items():
        at = lines.index(f"{name}: {value}")
        assert lines[at + 1] == f"    {how}", name
    assert {"    Dense Connections: layer fc (Linear)", "    1x1 Convolution: layer layer2.0.downsample.0 (Conv2d)",
            "    Max Pooling: operator aten::max_pool2d in the traced graph",
            "    Residual Block: module layer1.0 (BasicBlock), declared by resfam.models.resnet.BasicBlock",
            } <= set(lines)
    assert "Stage 1: 2 x BasicBlock, 64 channels out, 64 in its first convolution" in lines
    assert lines[-1].startswith("Steps: building ")
    assert done.stderr.splitlines()[:2] == ["resnet18: building", "resnet18: counting"]  # each step as it starts


def test_measure_counts_at_the_image_size_asked_for_and_says_when_it_fell_back_to_the_cpu(monkeypatch, capsys):
    def refuse():
        raise RuntimeError("no meta kernel")

    monkeypatch.setattr(measure, "shape_only_tracing", refuse)
    assert main(["measure", "resnet18", "--image-size", "160", "-q"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    fallback = "traced on the CPU: the shape-only trace failed: RuntimeError: no meta kernel"
    assert lines[lines.index(f"FLOPs: {measure.naive_flops('resnet18', 160):,} at 160 px") + 1].endswith(fallback)
    assert f"Activations: {measure.naive_activations('resnet18', 160):,} at 160 px" in lines
    assert "Image Size: 224" in lines  # the registered config, whatever size was counted at
    assert err == ""


def test_measure_refuses_an_unknown_model_or_image_size(capsys):
    assert main(["measure", "resnet18", "--image-size", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == ["--image-size: error: 0 is not an image size",
                                                    "    hint: a number of pixels from 1 to 4096"]
    assert main(["measure", "resnet19", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ID: error: unknown model 'resnet19'. Did you mean: resnet18") and "python -m resfam" in err


def test_an_exception_in_the_model_reaches_the_caller_as_it_was_raised(monkeypatch):
    """Nothing catches it on the way: Python prints its whole traceback, a debugger stops where it was raised."""
    def fails_to_build(**kwargs):
        raise ValueError("this model cannot be built")

    registry.load_zoo()
    monkeypatch.setitem(registry._REGISTRY, "brokennet", registry.ModelEntry(
        "brokennet", "resnet", fails_to_build, registry.get_model_config("resnet18")))
    with pytest.raises(ValueError, match="this model cannot be built") as raised:
        main(["measure", "brokennet", "-q"])
    assert raised.traceback[-1].name == "fails_to_build"


def test_measure_under_a_debugger_stops_in_the_model_code(debug_package):
    commands = "continue\nup\np sorted(kwargs)\nquit\n"  # then pdb restarts the program, and stdin ends
    done = subprocess.run([sys.executable, "-m", "pdb", "-m", "resfam.cards.cli", "measure", "brokennet", "-q"],
                          input=commands, cwd=debug_package.parent, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(debug_package.parent)))
    output = done.stdout + done.stderr
    model_file = debug_package / "models" / "debugging.py"
    assert f'File "{model_file}", line {line_of("RAISE")}, in _fails_to_build' in output  # the whole traceback
    assert "ValueError: this model cannot be built" in output
    assert f"> {model_file}({line_of('RAISE')})_fails_to_build()" in output  # post-mortem, where it was raised
    assert "['num_classes']" in output  # and the frames above it


# ---------------------------------------------------------------------------------------------
# Workers say where they are; fall-backs to the CPU are counted


def test_a_busy_worker_says_which_line_of_the_model_it_is_at(debug_package, monkeypatch):
    monkeypatch.setattr(pool, "PROGRESS_SECONDS", 0.2)
    heard: list[StillWorking] = []

    def finished(job, reply):
        raise AssertionError(f"the endless loop finished: {reply}")

    def waiting(still: StillWorking) -> None:
        heard.append(still)
        if (still.step == "building" and still.where) or still.seconds > 60:
            raise KeyboardInterrupt  # enough: stop the worker

    with pytest.raises(KeyboardInterrupt), WorkerPool(debug_package, 1, Limits(60.0)) as workers:
        workers.measure([MeasureJob("slownet", [224])], finished, waiting)
    where = f"resfam/models/debugging.py:{line_of('SPIN')} in slownet"
    assert heard[-1].where == where, heard
    assert str(heard[-1]).startswith(f"still measuring slownet, building: at {where}: ")
    assert str(StillWorking("resnet50", "tracing at 224 px", 12.2, "resfam/models/resnet.py:120 in forward")) == \
        "still measuring resnet50, tracing at 224 px: at resfam/models/resnet.py:120 in forward: 12 s"


def test_a_count_that_fell_back_to_the_cpu_is_in_the_summary_and_named_under_verbose(
        tmp_path, debug_package, monkeypatch, capsys):
    monkeypatch.setattr("resfam.cards.zoo.PACKAGE_DIR", debug_package)
    monkeypatch.chdir(tmp_path)
    card = tmp_path / "templates" / "models" / "resnet.md"
    card.parent.mkdir(parents=True)
    card.write_text("# Gate\n\n<!--\nType: model-index\nModels:\n- Name: gatenet\n  Metadata:\n    ID: gatenet\n"
                    "    Layers: 1\n-->\n")
    cache = ["--cache-dir", str(tmp_path / "cache"), "--workers", "1", "-q"]
    counted = "1 figure set traced on the CPU: the shape-only trace failed, -v says why"
    named = ("gatenet at 224 px: FLOPs and activations traced on the CPU, the shape-only trace failed: "
             "RuntimeError: Tensor.item() cannot be called on meta tensors")

    assert main(["verify", str(card), "-v", "--json", str(tmp_path / "report.json"), *cache]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [named, out[-1]] and counted in out[-1], out
    assert json.loads((tmp_path / "report.json").read_text())["summary"]["cpu_fallbacks"] == 1

    assert main(["verify", str(card), *cache]) == 0  # from the cache: counted all the same, named only with -v
    out = capsys.readouterr().out.splitlines()
    assert named not in out and counted in out[-1] and "1 figure set from the cache" in out[-1], out
