"""Measuring never hangs and never runs away: models with a contributor's bug (added to a copy of the
package) that loop, allocate without end, abort or raise each fail alone, within their limit, with an
error naming the model, the limit or what happened, and the step; the other models are measured, no
worker is left running, nothing is cached for them. A run says what it is doing at least every few
seconds, and Ctrl-C ends it at once."""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from resfam.cards import pool
from resfam.cards.cli import main
from resfam.cards.limits import GIB, WAKE_SECONDS, Limits, LimitsError, parse_size, wait_for
from resfam.cards.pool import StillWorking, WorkerPool
from resfam.cards.verify import verify
from resfam.cards.zoo import Progress

pytestmark = [pytest.mark.slow,  # models that hang, grow and crash, up to their limits
              # the longest took 57 s on a busy 2-core machine: a broken limit fails here instead of hanging
              pytest.mark.timeout(300),
              pytest.mark.skipif(not sys.platform.startswith("linux"),
                                 reason="the memory limit and the process checks are Linux's")]

FAULTY = '''\
"""Models with a contributor's bug each (tests/test_bounded.py)."""
import os
import signal

import torch
import torch.nn as nn

from ..registry import register_model
from .resnet import default_config


def _register(name):
    return register_model(name, "resnet", default_config(f"https://example.com/{name}.pth"))


class Raising(nn.Module):
    nominal_depth = 1

    def forward(self, x):
        raise ValueError("this block forgot its input")


@_register("loopnet")
def loopnet(**kwargs):
    while True: pass  # LOOP


@_register("hognet")
def hognet(**kwargs):
    hog = []
    while True:
        hog.append(torch.ones(1 << 27))  # HOG: 512 MiB a time


@_register("abortnet")
def abortnet(**kwargs):
    os.abort()


@_register("raisenet")
def raisenet(**kwargs):
    return Raising()


@_register("stucknet")
def stucknet(**kwargs):
    # the worker's own timer cannot reach this loop: only the parent's deadline stops it
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    while True: pass
'''
FAULTY_MODELS = ("loopnet", "hognet", "abortnet", "raisenet", "stucknet")
GOOD = {"resnet18": 18, "resnet26": 26}
SECONDS = 6.0  # the time limit per step in these tests
MEMORY = 3 * GIB // 2  # the memory limit: ~1 GiB of address space is torch's and the zoo's
FEW_SECONDS = 6.0  # what a failure may take past its limit on a busy machine


def line_of(marker: str) -> int:
    return next(number for number, line in enumerate(FAULTY.splitlines(), 1) if marker in line)


@pytest.fixture
def faulty_package(add_models):
    return add_models("faulty", FAULTY)


def write_card(templates: Path, models: list[str]) -> Path:
    (templates / "models").mkdir(parents=True, exist_ok=True)
    entries = "".join(f"- Name: {name}\n  Metadata:\n    ID: {name}\n    Layers: {GOOD.get(name, 1)}\n"
                      for name in models)
    card = templates / "models" / "resnet.md"
    card.write_text(f"# ResNet\n\n<!--\nType: model-index\nModels:\n{entries}-->\n")
    return card


def running_workers(package: Path) -> list[int]:
    """Processes running this package's worker script."""
    script = str(package / "cards" / "worker.py").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if script in (entry / "cmdline").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cached_models(cache: Path) -> set[str]:
    found = set()
    for entry in cache.rglob("*.json"):
        value = json.loads(entry.read_text())["value"]
        if isinstance(value, dict) and "model_id" in value:
            found.add(value["model_id"])
    return found


def test_faulty_models_fail_alone_within_their_limits(tmp_path, faulty_package, monkeypatch):
    monkeypatch.setattr(pool, "KILL_GRACE", 1.0)
    templates = tmp_path / "templates"
    card = write_card(templates, [*GOOD, *FAULTY_MODELS])
    events = []
    report = verify(templates_dir=templates, cache_dir=tmp_path / "cache", package_dir=faulty_package,
                    limits=Limits(SECONDS, MEMORY), progress=events.append)

    assert report.exit_code == 2
    errors = {finding.model: finding for finding in report.errors}
    assert set(errors) == set(FAULTY_MODELS)
    faulty = "resfam/models/faulty.py"
    expected = {
        "loopnet": f"building took more than 6 s, the time limit per step (stopped at {faulty}:{line_of('LOOP')}",
        "hognet": "building went over the memory limit of 1.5 GiB per worker: ",
        "abortnet": "the measuring worker stopped while building (killed by SIGABRT)",
        "raisenet": f"ValueError: this block forgot its input ({faulty}:{line_of('forgot')}), while tracing at 224 px",
        "stucknet": "building took more than 6 s, the time limit per step (the worker was stopped",
    }
    for model, text in expected.items():
        assert errors[model].message.startswith(f"{model}: could not be measured: {text}"), errors[model].message
        assert errors[model].path == str(card)
    assert f"({faulty}:{line_of('HOG')})" in errors["hognet"].message

    ok = {(finding.model, finding.field) for finding in report.findings if finding.status == "ok"}
    assert {(model, field) for model in GOOD for field in ("ID", "Layers")} <= ok  # measured all the same

    took = {event.model_id: event.seconds for event in events if isinstance(event, Progress)}
    assert took["loopnet"] < SECONDS + FEW_SECONDS
    assert took["stucknet"] < SECONDS + pool.KILL_GRACE + FEW_SECONDS
    assert all(took[model] < FEW_SECONDS for model in ("hognet", "abortnet", "raisenet"))
    assert cached_models(tmp_path / "cache") == set(GOOD)
    assert running_workers(faulty_package) == []


def test_a_busy_worker_says_so_every_few_seconds(tmp_path, faulty_package, monkeypatch, capsys):
    """The CLI's progress lines, on stderr: one at least every PROGRESS_SECONDS while a model is measured."""
    monkeypatch.setattr(pool, "PROGRESS_SECONDS", 0.5)
    monkeypatch.setattr("resfam.cards.zoo.PACKAGE_DIR", faulty_package)
    monkeypatch.chdir(tmp_path)
    write_card(tmp_path / "templates", ["loopnet"])
    code = main(["verify", "--time-limit", "2", "--cache-dir", str(tmp_path / "cache")])
    stderr = capsys.readouterr().err.splitlines()
    assert code == 2
    still = [line for line in stderr if line.startswith("still measuring loopnet, building: ")]
    assert len(still) >= 3, stderr
    seconds = [float(line.rsplit(": ", 1)[1].rstrip(" s")) for line in still]
    assert seconds == sorted(seconds) and seconds[-1] <= 2 + pool.KILL_GRACE
    assert stderr[-1].startswith("measured 1/1: loopnet (224 px) failed: building took more than 2 s")
    assert running_workers(faulty_package) == []


def test_still_working_lines_name_the_model_and_step():
    assert str(StillWorking("resnet200d", "tracing at 256 px", 20.2)) == \
        "still measuring resnet200d, tracing at 256 px: 20 s"
    assert str(StillWorking(None, "importing torch", 11)) == "still starting a measuring worker, importing torch: 11 s"


def test_a_zoo_whose_import_hangs_fails_every_card_once(tmp_path, package_copy):
    """Every worker would hang the same way: one time-out is reported, not one per model."""
    init = package_copy / "models" / "__init__.py"
    init.write_text(init.read_text() + "while True: pass  # noqa\n")
    write_card(tmp_path / "templates", list(GOOD))
    started = time.monotonic()
    report = verify(templates_dir=tmp_path / "templates", cache_dir=tmp_path / "cache", package_dir=package_copy,
                    limits=Limits(2.0), max_workers=1)
    [error] = report.errors
    assert error.message.startswith("cannot load the resfam model zoo: importing the model zoo took more than 2 s, "
                                    "the time limit per step (stopped at resfam/models/__init__.py:3")
    assert report.stats.workers_started == 1
    assert time.monotonic() - started < 2 + FEW_SECONDS + 10  # + the worker's start-up
    assert running_workers(package_copy) == []


def test_ctrl_c_ends_a_run_at_once_leaving_no_worker_and_no_partial_cache_entry(tmp_path, faulty_package):
    """SIGINT to a real `resfam-cards verify` while its workers are busy (one loops, one measures)."""
    write_card(tmp_path / "templates", ["resnet18", "loopnet", "resnet26"])
    # Ctrl-C handled as in a terminal, whatever this run inherited: a shell that starts the suite in the
    # background (`cmd &`, no job control) hands every process SIGINT ignored
    code = (f"import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            f"sys.path.insert(0, {str(faulty_package.parent)!r}); "
            "from resfam.cards.cli import main; sys.exit(main())")
    process = subprocess.Popen([sys.executable, "-c", code, "verify", "--cache-dir", str(tmp_path / "cache"),
                                "--workers", "2"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in process.stderr:  # wait until a model is measured: the workers are at work
        lines.append(line)
        if line.startswith("measured 1/"):
            break
    workers = running_workers(faulty_package)
    assert workers, lines
    process.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    code = process.wait(timeout=30)
    took = time.monotonic() - interrupted
    assert code == 130 and took < 2, (code, took, process.stderr.read())
    assert "interrupted" in process.stderr.read()
    assert running_workers(faulty_package) == []
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.startswith(".entry-") or p.suffix == ".tmp"]


def test_a_ctrl_c_taken_by_a_reader_thread_still_ends_the_wait_at_once():
    """The kernel may hand SIGINT to any thread that does not block it, a reader thread too; Python then
    only sets a flag, and a main thread blocked on a queue would not see it until the wait ended."""
    def interrupt_from_this_thread():
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # even if this run ignores it
    try:
        threading.Thread(target=interrupt_from_this_thread, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            wait_for(queue.Queue(), timeout=60)
        assert time.monotonic() - started < 0.2 + WAKE_SECONDS + 1
    finally:
        signal.signal(signal.SIGINT, previous)


def test_closing_an_interrupted_pool_kills_its_busy_workers_at_once(faulty_package, monkeypatch):
    monkeypatch.setattr(pool, "PROGRESS_SECONDS", 0.2)

    def finished(job, reply):
        raise AssertionError(f"the endless loop finished: {reply}")

    def interrupt(still):
        if still.model_id == "loopnet":  # started, and looping
            raise KeyboardInterrupt  # as Ctrl-C would

    with pytest.raises(KeyboardInterrupt), WorkerPool(faulty_package, 1, Limits(60.0)) as workers:
        workers.measure([pool.MeasureJob("loopnet", [224])], finished, interrupt)
    assert running_workers(faulty_package) == []


# ---------------------------------------------------------------------------------------------
# Settings


def test_limits_are_read_as_people_write_them_and_refused_when_wrong():
    assert Limits.parse() == Limits()
    assert Limits.parse("90", "2 GiB") == Limits(90.0, 2 * GIB)
    assert Limits.parse(1.5, 512 * 2**20).memory == parse_size("512M") == parse_size("512 MiB")
    assert parse_size("1.5GB") == 1_500_000_000
    with pytest.raises(LimitsError) as raised:
        Limits.parse("soon", "lots")
    assert raised.value.problems == {
        "seconds": "the time limit must be a number of seconds above zero, got 'soon'",
        "memory": "the memory limit: 'lots' is not a memory size"}
    for seconds in (0, -1, float("inf"), True):
        with pytest.raises(LimitsError):
            Limits.parse(seconds)
    with pytest.raises(ValueError):
        Limits(0.0)


def test_bad_limits_on_the_command_line_are_bad_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_card(tmp_path / "templates", ["resnet18"])
    code = main(["verify", "--time-limit", "-3", "--memory-limit", "4 parsecs", "--workers", "0"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "--time-limit: error: the time limit must be a number of seconds above zero, got '-3'",
        "    hint: seconds each step of measuring one model may take (building it, tracing it at one image size)",
        "--memory-limit: error: the memory limit: '4 parsecs' is not a memory size",
        "    hint: the memory each measuring worker may use: a number of bytes, or with a unit: 2 GiB, 512M",
        "--workers: error: at least one measuring process is needed, got 0",
        "    hint: leave --workers out for the default"]


def test_the_default_workers_are_as_many_as_cores_and_memory_allow(monkeypatch):
    monkeypatch.setattr(pool, "available_memory", lambda: 10 * GIB)
    assert pool.default_workers(Limits(memory=4 * GIB), cores=8) == 2
    assert pool.default_workers(Limits(memory=1 * GIB), cores=8) == 8
    assert pool.default_workers(Limits(memory=1 * GIB), cores=3) == 3
    assert pool.default_workers(Limits(memory=16 * GIB), cores=8) == 1
    monkeypatch.setattr(pool, "available_memory", lambda: None)
    assert pool.default_workers(Limits(), cores=4) == 4
    assert pool.usable_cores() == len(os.sched_getaffinity(0))
    assert WorkerPool(".", limits=Limits(memory=GIB), cpus=4).max_workers == 4
    assert WorkerPool(".", 8, cpus=2).max_workers == 2  # --workers N: at most N, and no more than the cores


def site(root: Path, plugin_settings: str) -> Path:
    """A small MkDocs project with the resfam plugin and the given settings; returns its mkdocs.yml."""
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "index.md").write_text("# Home\n")
    config = root / "mkdocs.yml"
    config.write_text("site_name: test\nplugins:\n  - resfam:\n      templates_dir: templates\n"
                      + "".join(f"      {line}\n" for line in plugin_settings.splitlines()))
    return config


def failed_build(config: Path, caplog) -> list[str]:
    """Build the site, which must fail; what was logged, each message as lines."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    caplog.set_level("INFO")
    loaded = load_config(str(config), site_dir=str(config.parent / "site"))
    # as `mkdocs build` does: MkDocs keeps a plugin with on_startup across builds in one process, so
    # a serve build of another test (test_site.py) would otherwise leave it in serve mode
    loaded.plugins.on_startup(command="build", dirty=False)
    with pytest.raises(Abort):
        build(loaded)
    return [record.getMessage() for record in caplog.records]


def test_the_plugin_takes_its_limits_from_mkdocs_yml_and_logs_progress(tmp_path, faulty_package, monkeypatch,
                                                                       caplog):
    monkeypatch.setattr(pool, "PROGRESS_SECONDS", 0.5)
    monkeypatch.setattr("resfam.cards.zoo.PACKAGE_DIR", faulty_package)
    config = site(tmp_path, "time_limit: 2\nmemory_limit: 2 GiB\nworkers: 1\ncache_dir: cache")
    write_card(tmp_path / "templates", ["loopnet"])
    logged = failed_build(config, caplog)
    assert any("loopnet: could not be measured: building took more than 2 s, the time limit per step (stopped at "
               f"resfam/models/faulty.py:{line_of('LOOP')}" in message for message in logged)
    assert sum(message.startswith("resfam: still measuring loopnet, building: ") for message in logged) >= 2
    assert running_workers(faulty_package) == []


def test_bad_limits_in_mkdocs_yml_name_the_file_line_and_setting(tmp_path, caplog):
    config = site(tmp_path, "time_limit: forever\nmemory_limit: -2 GiB\nworkers: 0")
    (tmp_path / "templates" / "models").mkdir(parents=True)
    logged = failed_build(config, caplog)
    assert logged[-1].splitlines() == [
        "resfam: bad settings of the resfam plugin:",
        f"{config}:5: time_limit: the time limit must be a number of seconds above zero, got 'forever'",
        "    hint: seconds each step of measuring one model may take (building it, tracing it at one image size)",
        f"{config}:6: memory_limit: the memory limit: '-2 GiB' is not a memory size",
        "    hint: the memory each measuring worker may use: a number of bytes, or with a unit: 2 GiB, 512M",
        f"{config}:7: workers: at least one measuring process is needed, got 0",
        "    hint: leave workers out for the default"]
