"""verify(): every claim of every card becomes a finding (ok, drift or error) with its file and line."""
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from card_entries import (
    RESNEST14D,
    RESNET18,
    RESNET18_MEASURED,
    RESNET26,
    RESNET26_MEASURED,
    card_text,
    make_templates,
    with_results,
)

import resfam
import resfam.cards.pool as pool_module
import resfam.cards.verify as verify_module
import resfam.cards.worker as worker_module
import resfam.cards.zoo as zoo_module
from resfam.cards.findings import CardError
from resfam.cards.pool import StillWorking
from resfam.cards.sync import sync_values
from resfam.cards.verify import DEFAULT_TOLERANCES, resolve_tolerances, verify
from resfam.cards.zoo import Progress

CLAIMED_FIELDS = {"FLOPs", "Parameters", "File Size", "ID", "Layers", "Crop Pct", "Image Size", "Interpolation",
                  "Weights"}


def line_of(text: str, needle: str, after: str = "") -> int:
    """1-based line of the first line containing `needle` (after the first line containing `after`)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line)
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


@pytest.fixture
def check(tmp_path, shared_cache):
    """verify(**cards) for a fresh templates folder, with the session's cache."""
    def run(tolerances=None, **cards):
        templates = make_templates(tmp_path / "templates", **cards)
        return verify(templates_dir=templates, cache_dir=shared_cache, tolerances=tolerances)

    return run


def test_a_card_that_matches_the_code_verifies_clean(check):
    report = check(resnet=card_text(with_results(RESNET18, "resnet18"), with_results(RESNET26, "resnet26")))
    assert report.ok and report.exit_code == 0
    [result] = report.cards
    for model in ("resnet18", "resnet26"):
        fields = [f.field for f in result.findings if f.model == model]
        assert sorted(fields) == sorted(CLAIMED_FIELDS) and all(f.status == "ok" for f in result.findings)
    assert "model = resfam.create_model('resnet18')" in result.markdown
    assert result.measurements["resnet26"] == {
        "ID": "resnet26", "Layers": 26, "Parameters": RESNET26_MEASURED.parameters,
        "File Size": RESNET26_MEASURED.file_size, "FLOPs": RESNET26_MEASURED.flops,
        "Activations": RESNET26_MEASURED.activations, "Image Size": 224, "Crop Pct": 0.875, "Interpolation": "bicubic",
        "Weights": "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
                   "resnet26-9aa10e23.pth",
        "Architecture": ["1x1 Convolution", "Batch Normalization", "Bottleneck Residual Block", "Convolution",
                         "Dense Connections", "Global Average Pooling", "Max Pooling", "ReLU", "Residual Connection"],
        "Code": "resfam/models/resnet.py",
        # shown from the code, never on a card: the features per stage and the licence of the weights
        "Feature Channels": [256, 512, 1024, 2048], "Feature Reduction": [4, 8, 16, 32],
        "License": "apache-2.0", "License Source": resfam.get_model_config("resnet26").license_url,
        "License Note": resfam.get_model_config("resnet26").license_note}


def test_a_drifted_figure_says_where_what_by_how_much_and_how_to_fix_it(check):
    text = card_text(RESNET18.replace(f"Parameters: {RESNET18_MEASURED.parameters}", "Parameters: 11000000"), RESNET26)
    report = check(resnet=text)
    [drift] = report.drifts
    path = str(Path("templates/models/resnet.md"))
    assert drift.path.endswith(path) and drift.line == line_of(text, "Parameters: 11000000")
    assert (drift.model, drift.field, drift.claimed, drift.measured) == ("resnet18", "Parameters", 11000000,
                                                                         RESNET18_MEASURED.parameters)
    assert drift.drift_pct == pytest.approx((11000000 - RESNET18_MEASURED.parameters) / RESNET18_MEASURED.parameters
                                            * 100)
    assert drift.message == ("resnet18 Parameters: card says 11,000,000, code measures 11,689,512 (-5.90%, "
                             "tolerance 0.1%)")
    assert drift.hint == f"run: resfam-cards sync --write {drift.path}"
    assert report.exit_code == 1 and not report.errors


def test_rounded_figures_pass_within_their_tolerance_and_tolerances_can_be_set(check):
    rounded = (RESNET18.replace(str(RESNET18_MEASURED.parameters), "11690000")
               .replace(str(RESNET18_MEASURED.flops), "1820000000")
               .replace(str(RESNET18_MEASURED.file_size), "47000000"))
    report = check(resnet=card_text(rounded))
    assert report.ok
    parameters = next(f for f in report.findings if f.field == "Parameters")
    assert parameters.drift_pct == pytest.approx(0.00417, abs=1e-5)
    assert "tolerance 0.1%" in parameters.message

    strict = check(resnet=card_text(rounded), tolerances={"File Size": 0.1})
    assert [(f.field, f.status) for f in strict.drifts] == [("File Size", "drift")]
    assert "(+0.35%, tolerance 0.1%)" in strict.drifts[0].message


def test_layers_and_the_config_fields_are_compared_exactly(check):
    text = card_text(RESNET18.replace("Layers: 18", "Layers: 19").replace("'0.875'", "'0.8750'")
                     .replace("Image Size: '224'", "Image Size: 224").replace("bilinear", "bicubic")
                     .replace("resnet18-5c106cde", "resnet18-f37072fd"))
    report = check(resnet=text)
    statuses = {f.field: f.status for f in report.findings}
    assert statuses["Crop Pct"] == "ok" and statuses["Image Size"] == "ok"  # the same numbers, written otherwise
    assert {f.field for f in report.drifts} == {"Layers", "Interpolation", "Weights"}
    interpolation = next(f for f in report.drifts if f.field == "Interpolation")
    assert interpolation.message == ("resnet18 Interpolation: card says bicubic, the registered default config "
                                     "says bilinear")
    assert interpolation.line == line_of(text, "Interpolation:") and interpolation.drift_pct is None


def test_flops_are_counted_at_the_cards_image_size(check):
    at_256 = 2376175616  # fvcore, resnet18, 256 x 256 (checked against the literal count in test_measure)
    text = card_text(RESNET18.replace("Image Size: '224'", "Image Size: '256'").replace(str(RESNET18_MEASURED.flops),
                                                                                           str(at_256)))
    report = check(resnet=text)
    statuses = {f.field: f.status for f in report.findings}
    assert statuses["FLOPs"] == "ok" and statuses["Image Size"] == "drift"
    assert "at 256 px" in next(f.message for f in report.findings if f.field == "FLOPs")
    # sync writes the registered size, and the FLOPs that go with it
    assert sync_values(report.cards[0]) == {"resnet18": {"Image Size": 224,
                                                                 "FLOPs": RESNET18_MEASURED.flops}}


def test_sync_values_are_the_drifts_and_with_fill_the_missing_fields(check):
    text = card_text("- Name: resnet26\n  Metadata:\n    ID: resnet26\n    Parameters: 16000000\n"
                     "    Layers: 25\n")
    report = check(resnet=text)
    assert sync_values(report.cards[0]) == {"resnet26": {"Layers": 26}}  # 16,000,000 is within 0.1%
    filled = sync_values(report.cards[0], fill_missing=True)["resnet26"]
    assert filled == {"Layers": 26, "File Size": RESNET26_MEASURED.file_size, "FLOPs": RESNET26_MEASURED.flops,
                      "Activations": RESNET26_MEASURED.activations, "Image Size": 224,
                      "Crop Pct": 0.875, "Interpolation": "bicubic",
                      "Weights": "https://github.com/rwightman/pytorch-image-models/releases/download/"
                                 "v0.1-weights/resnet26-9aa10e23.pth",
                      "Architecture": ["1x1 Convolution", "Batch Normalization", "Bottleneck Residual Block",
                                       "Convolution", "Dense Connections", "Global Average Pooling", "Max Pooling",
                                       "ReLU", "Residual Connection"],
                      "Code": "resfam/models/resnet.py"}


def test_an_unknown_id_and_a_model_of_another_family_are_errors(check):
    text = card_text(RESNET18.replace("ID: resnet18", "ID: resnet19"), RESNEST14D)
    report = check(resnet=text)
    assert report.exit_code == 2
    unknown, family = report.errors
    assert unknown.line == line_of(text, "ID: resnet19") and "unknown model ID 'resnet19'" in unknown.message
    assert unknown.hint.startswith("did you mean resnet18")
    assert family.line == line_of(text, "ID: resnest14d")
    assert "registered in family 'resnest', not in 'resnet'" in family.message
    assert family.hint == "move the model to templates/models/resnest.md"


def test_every_problem_of_every_card_is_reported_together(check):
    report = check(resnet=card_text(RESNET18),
                   resnest=card_text(with_results(RESNEST14D, "resnest14d")).replace("{% include 'code_snippets.md' %}",
                                                                                     "{{ no_such_name }}"),
                   res2net="# Res2Net\n<!--\nType: model-index\nModels:\n- Name: x\n  Metadata: [unclosed\n-->\n")
    by_card = {Path(result.path).stem: result for result in report.cards}
    assert by_card["resnet"].ok and by_card["resnet"].findings
    [undefined] = by_card["resnest"].errors
    assert "undefined variable" in undefined.message and undefined.line == 5
    assert all(f.status == "ok" for f in by_card["resnest"].findings if f.model)  # still measured and checked
    assert by_card["res2net"].card is None and "malformed YAML" in by_card["res2net"].errors[0].message
    assert report.exit_code == 2


def test_cards_are_checked_against_each_other(tmp_path, shared_cache):
    shared_url = "https://download.pytorch.org/models/resnet18-5c106cde.pth"
    first = make_templates(tmp_path / "a", resnet=card_text(RESNET18))
    second_text = card_text(RESNET18.replace(str(RESNET18_MEASURED.parameters), "11690000"),
                            RESNET26.replace(RESNET26.splitlines()[-1].split(": ", 1)[1], shared_url))
    second = make_templates(tmp_path / "b", resnet=second_text)
    report = verify([first / "models" / "resnet.md", second / "models" / "resnet.md"], cache_dir=shared_cache)
    errors = {(Path(f.path).parent.parent.name, f.model, f.field): f for f in report.errors}
    assert set(errors) == {("a", "resnet18", "Weights"), ("b", "resnet18", "Weights"), ("b", "resnet26", "Weights"),
                           ("a", "resnet18", "Parameters"), ("b", "resnet18", "Parameters")}
    assert "also claimed by resnet26" in errors["a", "resnet18", "Weights"].message
    parameters = errors["a", "resnet18", "Parameters"]
    assert f"this entry says {RESNET18_MEASURED.parameters}, but" in parameters.message
    assert "says 11690000" in parameters.message
    assert parameters.message.count(":") >= 2  # names the other card's file:line


def test_each_model_is_measured_once_per_run_with_progress(tmp_path):
    first = make_templates(tmp_path / "a", resnet=card_text(RESNET18, RESNET26))
    second = make_templates(tmp_path / "b", resnet=card_text(RESNET26, RESNET18))
    received = []
    report = verify([first / "models" / "resnet.md", second / "models" / "resnet.md"], use_cache=False,
                    progress=received.append, max_workers=2)
    assert report.ok
    assert report.stats.measured_models == 2 and report.stats.cached_sizes == 0
    assert report.stats.workers_started == 2  # one model each, handed out as they finish
    # Besides one line per model measured, a busy machine gets "still ..." lines every 10 s, the first
    # ones for a worker still starting, which measures no model yet (model_id None)
    events = [event for event in received if isinstance(event, Progress)]
    assert all(isinstance(event, StillWorking) for event in received if event not in events)
    assert sorted(event.model_id for event in events) == ["resnet18", "resnet26"]
    assert [(event.done, event.total) for event in events] == [(1, 2), (2, 2)]
    assert all(isinstance(event, Progress) and event.seconds > 0 for event in events)
    assert str(events[0]).startswith(f"measured 1/2: {events[0].model_id} (224 px) ")
    assert not list(tmp_path.rglob(".resfam-cache"))  # use_cache=False writes nothing


def test_a_warm_verify_starts_no_worker(check, monkeypatch):
    check(resnet=card_text(RESNET18, RESNET26))  # fills the cache if this test runs first

    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started although everything is cached")

    monkeypatch.setattr(pool_module, "_WorkerProcess", no_worker)
    report = check(resnet=card_text(RESNET26, RESNET18))
    assert report.ok and report.stats.workers_started == 0 and report.stats.registry_from_cache


def test_tolerances_are_validated_all_at_once():
    assert resolve_tolerances({"FLOPs": 0.5})["FLOPs"] == 0.5
    assert resolve_tolerances(None) == DEFAULT_TOLERANCES
    with pytest.raises(CardError) as raised:
        resolve_tolerances({"FLOPz": 1, "Parameters": -1, "File Size": math.nan, "Crop Pct": 1, "Layers": True})
    messages = [finding.message for finding in raised.value.findings]
    assert messages == [
        "unknown field 'FLOPz' (did you mean 'FLOPs'?)",
        "the tolerance of Parameters must not be negative, got -1",
        "the tolerance of File Size must be a number of percent, got nan",
        "Crop Pct is compared exactly with the registered config; it takes no tolerance",
        "the tolerance of Layers must be a number of percent, got True",
    ]


def test_no_card_templates_is_bad_input(tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(CardError, match="no card templates found"):
        verify(templates_dir=tmp_path)


def test_the_committed_templates_verify_clean():
    """The project's own cards, with the project's own cache (as warm as `resfam-cards verify` left it)."""
    root = Path(__file__).resolve().parent.parent
    if not list((root / "templates" / "models").glob("*.md")):
        pytest.skip("no card templates committed yet")
    report = verify(templates_dir=root / "templates")
    assert report.ok, "\n".join(f.format() for f in report.errors + report.drifts)
    assert len(report.cards) == len(list((root / "templates" / "models").glob("*.md")))


def test_a_cold_verify_starts_its_worker_before_it_reads_the_cards(tmp_path, monkeypatch):
    """The worker's start-up (torch, the zoo: ~2 s) overlaps reading and rendering the cards."""
    events = []
    real_worker, real_read = pool_module._WorkerProcess, verify_module._read_card

    def worker(*args, **kwargs):
        events.append("worker started")
        return real_worker(*args, **kwargs)

    def read_card(path, templates_dir):
        events.append(f"read {path.name}")
        return real_read(path, templates_dir)

    monkeypatch.setattr(pool_module, "_WorkerProcess", worker)
    monkeypatch.setattr(verify_module, "_read_card", read_card)
    templates = make_templates(tmp_path / "templates", resnet=card_text(RESNET18))
    report = verify(templates_dir=templates, cache_dir=tmp_path / "cache")
    assert report.ok and report.stats.measured_models == 1
    # nothing cached at all: every worker starts early (an unused one is killed at the end)
    assert events == ["worker started"] * report.stats.workers_started + ["read resnet.md"]
    assert report.stats.workers_started == pool_module.WorkerPool(zoo_module.PACKAGE_DIR).max_workers


def test_a_worker_started_early_and_never_used_is_killed_at_close():
    pool = pool_module.WorkerPool(zoo_module.PACKAGE_DIR)
    pool.start_early()
    process = pool._workers[0].process
    pool.close()
    assert process.returncode == -signal.SIGKILL  # not left to finish importing torch


def run_worker_server(then: str, before: str = "") -> str:
    """Start a worker's server in a fresh interpreter (as `python worker.py` does), run `before` ahead
    of its start and `then` after it; what they print."""
    worker_script = Path(worker_module.__file__)
    package_dir = worker_script.parent.parent
    script = (f"import gc, io, runpy, sys\n"
              f"from pathlib import Path\n"
              f"sys.path.insert(0, {str(package_dir.parent)!r})\n"
              f"worker = runpy.run_path({str(worker_script)!r}, run_name='resfam_worker')\n"
              f"server = worker['_Server'](Path({str(package_dir)!r}), io.StringIO(), 1)\n"
              f"{before}\n"
              f"server.start()\n"
              f"{then}\n")
    done = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_worker_keeps_the_shape_only_kernels_registered_for_its_whole_life():
    """Registered once per worker, not once per model (0.04 s each): a tracing block the worker does
    not keep a reference to is closed by the garbage collector at once."""
    printed = run_worker_server("gc.collect()\nprint(sys.modules['resfam.cards.meta_kernels']._tracing_depth)")
    assert printed.strip() == "1"


def test_a_worker_whose_torch_refuses_the_shape_only_kernels_counts_on_the_cpu():
    refuse = ("import torch\n"
              "def refuse(*args, **kwargs):\n"
              "    raise RuntimeError('no operator registration here')\n"
              "torch.library.Library = refuse")
    printed = run_worker_server(
        "reply = server.measure('resnet18', {}, [64])\nprint(reply['measurements'][0]['flops_method'])", refuse)
    assert printed.strip() == "cpu forward"


def test_prose_cites_the_measurement_of_its_models_and_of_those_it_names(check):
    text = card_text(with_results(RESNEST14D, "resnest14d")).replace(
        "Written for the tests.",
        "`resnest14d` has {{ models.resnest14d.parameters | grouped }} parameters in\n"
        "{{ models.resnest14d.blocks | join(', ') }} {{ models.resnest14d.block }}s,\n"
        "{{ (models.resnet26.parameters - models.resnest14d.parameters) | grouped }} fewer than `resnet26`.")
    report = check(resnest=text)
    assert report.ok and not report.warnings
    assert ("`resnest14d` has 10,611,688 parameters in\n1, 1, 1, 1 SplitAttentionBottlenecks,\n"
            "5,383,488 fewer than `resnet26`.") in report.cards[0].markdown
    assert report.cards[0].cited == {"resnest14d": 3, "resnet26": 5}
    assert list(report.cards[0].models) == ["resnest14d"]  # resnet26 is measured for the prose, not checked


def test_a_literal_figure_is_a_warning_that_fails_only_the_strict_exit_code(check):
    finished = with_results(RESNET18, "resnet18")
    report = check(resnet=card_text(finished).replace("Written for the tests.", "resnet18 has 11.0 million "
                                                                                "parameters."))
    [warning] = report.warnings
    assert (warning.line, warning.model, warning.field, warning.measured) == (3, "resnet18", "Parameters",
                                                                                  RESNET18_MEASURED.parameters)
    assert warning.strict and report.ok and report.exit_code == 0 and report.strict_exit_code == 1
    unknown_key = check(resnet=card_text(finished.replace("    Layers: 18\n", "    Layers: 18\n    Colour: blue\n")))
    [other] = unknown_key.warnings
    # --strict means strict (issue 20): every warning fails it, as MkDocs's own --strict does
    assert not other.strict and unknown_key.exit_code == 0 and unknown_key.strict_exit_code == 1


def test_a_template_naming_an_unknown_model_says_where_and_why(check):
    report = check(resnet=card_text(RESNET18).replace("Written for the tests.", "{{ models.resnet19.layers }}"))
    [error] = report.errors
    assert error.line == 3 and "'resnet19'" in error.message and "python -m resfam lists them" in error.hint


def test_activations_are_verified_at_the_cards_image_size_and_filled_in_by_sync(check):
    activations_line = f"    Activations: {RESNET18_MEASURED.activations}\n"
    right = card_text(RESNET18.replace("    Layers: 18\n", "    Layers: 18\n" + activations_line))
    report = check(resnet=right)
    [activations] = [f for f in report.findings if f.field == "Activations"]
    assert activations.status == "ok" and activations.measured == RESNET18_MEASURED.activations
    assert "at 224 px" in activations.message
    wrong = check(resnet=right.replace(f"Activations: {RESNET18_MEASURED.activations}", "Activations: 2500000"))
    [drift] = wrong.drifts
    assert drift.message == ("resnet18 Activations: card says 2,500,000, code measures 2,484,712 at 224 px "
                             "(+0.62%, tolerance 0.1%)")
    assert sync_values(wrong.cards[0]) == {"resnet18": {"Activations": RESNET18_MEASURED.activations}}
    assert sync_values(check(resnet=card_text(RESNET18)).cards[0], fill_missing=True)["resnet18"]["Activations"] \
        == RESNET18_MEASURED.activations


def test_a_model_on_two_cards_is_measured_once_at_every_image_size_they_claim(tmp_path):
    """Measuring goes card by card (verify._check_against_code): the image size of a later card that names
    a model an earlier card named joins the same measuring job."""
    at_160 = RESNET18.replace("Image Size: '224'", "Image Size: '160'")
    assert at_160 != RESNET18
    first = make_templates(tmp_path / "a", resnet=card_text(RESNET18))
    second = make_templates(tmp_path / "b", resnet=card_text(at_160, RESNET26))
    report = verify([first / "models" / "resnet.md", second / "models" / "resnet.md"], use_cache=False)
    assert report.stats.measured_models == 2 and report.stats.measured_sizes == 3
    flops = {(Path(f.path).parent.parent.name, f.model): f for f in report.findings if f.field == "FLOPs"}
    assert flops["a", "resnet18"].status == "ok"
    assert "at 160 px" in flops["b", "resnet18"].message
    assert not any("could not be measured" in f.message for f in report.errors)
