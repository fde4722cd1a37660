"""`resfam-cards`: exit codes, the report, JSON, sync (diff, write, no-op), new, list, bad input."""
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from card_entries import RESNET18, RESNET18_MEASURED, RESNET26_MEASURED, with_results

import resfam
from resfam.cards import Finding
from resfam.cards.cli import main
from resfam.cards.report import github_command

# resnet26 with only its ID and Parameters: `sync --fill` has the other fields to add
RESNET26_TO_FILL = f"""\
- Name: resnet26
  Metadata:
    ID: resnet26
    Parameters: {RESNET26_MEASURED.parameters}
"""
CARD = ("# ResNet\n\nA test card.\n\n{% include 'code_snippets.md' %}\n\n<!--\nType: model-index\nModels:\n"
        + with_results(RESNET18, "resnet18") + with_results(RESNET26_TO_FILL, "resnet26") + "-->\n")
CARD_PATH = str(Path("templates/models/resnet.md"))


@pytest.fixture
def card_project(tmp_path, monkeypatch):
    """A project folder with templates/code_snippets.md and templates/models/resnet.md (CARD), as the cwd."""
    (tmp_path / "templates" / "models").mkdir(parents=True)
    (tmp_path / "templates" / "code_snippets.md").write_text("model = create_model('{{ model_name }}')\n")
    (tmp_path / "templates" / "models" / "resnet.md").write_text(CARD)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# The test card lists resnet18 and resnet26: a full run is told the other models are left out.
NOT_ON_THE_CARD = [f"--without-card={model}" for model in resfam.list_models() if model not in ("resnet18", "resnet26")]


@pytest.fixture
def card_cli(cli):
    """The shared `cli`, with the zoo's models that are not on the test card left out (--without-card)."""
    def run(*args):
        return cli(*args, *(NOT_ON_THE_CARD if args[0] in ("verify", "sync", "list") else []))

    return run


def card() -> str:
    return Path(CARD_PATH).read_text()


def edit_card(old: str, new: str) -> str:
    text = card().replace(old, new)
    Path(CARD_PATH).write_text(text)
    return text


def test_verify_exits_0_when_clean_1_on_drift_2_on_bad_input(card_project, card_cli):
    code, out, _ = card_cli("verify")
    assert code == 0 and out.startswith("ok: 1 card, 2 models: 11 figures ok, 0 drifts, 0 errors")

    text = edit_card(f"Parameters: {RESNET18_MEASURED.parameters}", "Parameters: 25000000")
    code, out, _ = card_cli("verify", "-q")
    line = text.splitlines().index("    Parameters: 25000000") + 1
    assert code == 1
    assert out.splitlines()[:2] == [
        f"{CARD_PATH}:{line}: drift: resnet18 Parameters: card says 25,000,000, code measures 11,689,512 "
        "(+113.87%, tolerance 0.1%)",
        f"    hint: run: resfam-cards sync --write {CARD_PATH}"]
    assert out.splitlines()[-1].startswith("FAILED: 1 card, 2 models: 10 figures ok, 1 drift, 0 errors")

    edit_card("ID: resnet26", "ID: resnet27")
    code, out, _ = card_cli("verify", "-q")
    assert code == 2 and "unknown model ID 'resnet27'" in out and "did you mean resnet26" in out


def test_verify_format_github_prints_workflow_commands_on_drifted_and_broken_cards(card_project, card_cli):
    text = edit_card(f"Parameters: {RESNET18_MEASURED.parameters}", "Parameters: 25000000")
    line = text.splitlines().index("    Parameters: 25000000") + 1
    code, out, _ = card_cli("verify", "-q", "--format", "github")
    assert code == 1
    assert out.splitlines()[:-1] == [
        f"::error file=templates/models/resnet.md,line={line},title=resnet18 Parameters::drift: resnet18 Parameters: "
        "card says 25,000,000, code measures 11,689,512 (+113.87%25, tolerance 0.1%25)"
        "%0Ahint: run: resfam-cards sync --write templates/models/resnet.md"]
    assert out.splitlines()[-1].startswith("FAILED: 1 card, 2 models: 10 figures ok, 1 drift, 0 errors")
    code, out, _ = card_cli("verify", "-q", "--format", "github", "--verbose")  # the ok figures as plain lines
    assert code == 1 and sum(line.startswith("::") for line in out.splitlines()) == 1
    assert f"{CARD_PATH}:{line + 1}: ok: resnet18 File Size: 46,835,595 (code measures 46,835,595)" in out

    # an unknown ID (an error) and an unknown key (a warning) on the same card
    text = edit_card("ID: resnet26", "ID: resnet27\n    Colour: blue")
    id_line = text.splitlines().index("    ID: resnet27") + 1
    code, out, _ = card_cli("verify", "-q", "--format", "github")
    assert code == 2
    assert out.splitlines()[1:3] == [
        f"::error file=templates/models/resnet.md,line={id_line},title=resnet26 ID::error: resnet26: unknown model ID "
        "'resnet27'%0Ahint: did you mean resnet26, resnet26d, resnet200d? the registered models are listed by: "
        "python -m resfam",
        f"::warning file=templates/models/resnet.md,line={id_line + 1},title=resnet26 Colour::warning: unknown key "
        "'Colour' in the Metadata of resnet26%0Ahint: it is kept as written and not checked"]

    # a card that cannot be parsed: the annotation names the file and line, the title the tool
    Path(CARD_PATH).write_text(CARD.replace("  Metadata:\n    ID: resnet26", "  Metadata: [\n    ID: resnet26"))
    code, out, _ = card_cli("verify", "-q", "--format", "github")
    [annotation] = out.splitlines()[:-1]
    assert code == 2
    assert re.fullmatch(r"::error file=templates/models/resnet\.md,line=\d+,title=resfam-cards error::error: "
                        r"malformed YAML[^\r\n]*", annotation), annotation


def test_github_commands_escape_messages_and_properties():
    finding = Finding("drift", "cards/a,b:c.md", 7, "100% off\r\nsecond line", hint="fix: it, now",
                      model="m,1", field="FLOPs")
    assert github_command(finding) == ("::error file=cards/a%2Cb%3Ac.md,line=7,title=m%2C1 FLOPs::drift: 100%25 off"
                                       "%0D%0Asecond line%0Ahint: fix: it, now")
    whole_file = Finding("warning", "t.md", None, "kept")
    assert github_command(whole_file) == "::warning file=t.md,title=resfam-cards warning::warning: kept"


def test_verify_writes_a_json_report(card_project, card_cli):
    edit_card("Layers: 18", "Layers: 19")
    code, _, _ = card_cli("verify", "-q", "--json", "report.json")
    report = json.loads(Path("report.json").read_text())
    assert code == 1 and report["exit_code"] == 1 and not report["ok"]
    assert report["summary"]["drift"] == 1 and report["tolerances_pct"]["Parameters"] == 0.1
    [drift] = [f for f in report["cards"][0]["findings"] if f["status"] == "drift"]
    assert (drift["model"], drift["field"], drift["claimed"], drift["measured"]) == ("resnet18", "Layers", 19, 18)
    assert drift["path"] == CARD_PATH and drift["line"] == card().splitlines().index("    Layers: 19") + 1
    assert drift["drift_pct"] == pytest.approx(100 / 18)
    assert report["cards"][0]["measured"]["resnet26"]["Layers"] == 26


def test_bad_arguments_are_reported_together_one_line_each(card_project, card_cli):
    before = card()
    code, out, err = card_cli("sync", "--write", "--tolerance", "FLOPz=1", "--tolerance", "Parameters=x",
                         "--tolerance", "nothing", "--tolerance", "Layers=-1")
    problems = [line for line in err.splitlines() if not line.startswith("    hint:")]
    assert code == 2 and out == "" and card() == before
    assert problems == [
        "--tolerance: error: 'Parameters=x': 'x' is not a number of percent",
        "--tolerance: error: 'nothing': expected FIELD=PERCENT, e.g. FLOPs=0.5",
        "--tolerance: error: unknown field 'FLOPz' (did you mean 'FLOPs'?)",
        "--tolerance: error: the tolerance of Layers must not be negative, got -1.0",
    ]
    assert "Traceback" not in err


def test_a_tolerance_can_be_widened_on_the_command_line(card_project, card_cli):
    edit_card(f"Parameters: {RESNET18_MEASURED.parameters}", "Parameters: 11750000")  # +0.52%
    assert card_cli("verify", "-q")[0] == 1
    assert card_cli("verify", "-q", "--tolerance", "Parameters=1")[0] == 0


def test_sync_shows_a_diff_writes_only_the_drifted_figures_and_then_changes_nothing(card_project, card_cli):
    drifted = edit_card(f"Parameters: {RESNET26_MEASURED.parameters}", "Parameters: 16100000")
    code, out, err = card_cli("sync", "-q")
    assert code == 1 and card() == drifted
    assert out.splitlines()[:2] == [f"--- a/{CARD_PATH}", f"+++ b/{CARD_PATH}"]
    assert f"-    Parameters: 16100000\n+    Parameters: {RESNET26_MEASURED.parameters}\n" in out
    assert "run again with --write" in err

    code, _, err = card_cli("sync", "-q", "--write")
    assert code == 0 and card() == CARD  # exactly the original bytes back
    assert f"wrote 1 figure(s) to {CARD_PATH}" in err
    assert card_cli("verify", "-q")[0] == 0

    mtime = Path(CARD_PATH).stat().st_mtime_ns
    code, out, err = card_cli("sync", "-q", "--write")
    assert (code, out) == (0, "") and "nothing to change" in err
    assert card() == CARD and Path(CARD_PATH).stat().st_mtime_ns == mtime


def test_sync_fill_adds_the_missing_fields(card_project, card_cli):
    assert card_cli("sync", "-q", "--fill", "--write")[0] == 0
    code, out, _ = card_cli("verify", "-q", "--verbose")
    assert code == 0
    resnet26 = [line for line in out.splitlines() if ": ok: resnet26 " in line]
    assert len(resnet26) == 12  # ID, five measured figures, four config fields, Architecture and Code
    assert "Weights: https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/" \
           "resnet26-9aa10e23.pth" in card()
    assert card_cli("sync", "-q", "--fill")[0] == 0


def test_sync_writes_nothing_while_a_card_has_errors(card_project, card_cli):
    edit_card(f"Parameters: {RESNET18_MEASURED.parameters}", "Parameters: 1")
    edit_card("ID: resnet26", "ID: resnet27")
    before = card()
    code, out, err = card_cli("sync", "-q", "--write")
    assert code == 2 and out == "" and card() == before
    assert "unknown model ID 'resnet27'" in err and "nothing written: 1 problem(s) to fix first" in err


def test_malformed_cards_are_bad_input_without_a_traceback(card_project, card_cli):
    Path(CARD_PATH).write_text(CARD.replace("  Metadata:\n    ID: resnet26", "  Metadata: [\n    ID: resnet26"))
    code, out, err = card_cli("verify", "-q")
    assert code == 2 and "malformed YAML" in out and "Traceback" not in out + err


def test_new_scaffolds_a_card_that_verifies_and_never_overwrites(card_project, card_cli):
    code, out, _ = card_cli("new", "resnet", "--model", "resnet26", "--model", "resnet18", "-q")
    assert code == 0 and "{% include 'code_snippets.md' %}" in out
    assert f"    Parameters: {RESNET26_MEASURED.parameters}" in out

    Path(CARD_PATH).unlink()
    assert card_cli("new", "resnet", "--model", "resnet26", "--collection", "ResNet", "--write", "-q")[0] == 0
    written = card()
    assert written.startswith("# ResNet\n") and "ID: resnet26" in written
    code, out, _ = card_cli("verify", CARD_PATH, "-q", "--verbose")  # resnet18 is on no card now
    assert code == 0 and out.count(": ok: resnet26 ") == 12

    code, _, err = card_cli("new", "resnet", "--model", "resnet18", "--write", "-q")
    assert code == 2 and "already exists" in err and card() == written


def test_new_refuses_unknown_models_and_families_together(card_project, card_cli):
    code, out, err = card_cli("new", "resnet", "--model", "resnet19", "--model", "resnest14d", "-q")
    assert code == 2 and out == ""
    assert "--model: error: unknown model 'resnet19'" in err
    assert re.search(r"hint: did you mean resnet18\b.*\? the registered models are listed by: python -m resfam", err)
    assert "--model: error: resnest14d is registered in family 'resnest', not 'resnet'" in err
    code, _, err = card_cli("new", "vgg", "--model", "resnet18", "-q")
    assert code == 2 and "unknown family 'vgg'" in err


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"resfam-cards {metadata.version('resfam')}\n"
    for command in ("verify", "sync", "new", "list"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        # the options of measuring under one heading, after the others
        measuring = shown.index("\nmeasuring:\n")
        options = ("--workers", "--time-limit", "--memory-limit")
        assert all(shown.index(f"\n  {option}") > measuring for option in options)
        if command == "sync":
            assert ("exit codes: 0 the cards match the code, or --write wrote the changes; 1 changes shown, not "
                    "written (add --write); 2 bad input") in " ".join(shown.split())


def test_list_shows_each_model_and_its_status(card_project, card_cli):
    edit_card("Layers: 18", "Layers: 34")
    code, out, _ = card_cli("list", "-q")
    rows = [re.split(r"  +", line) for line in out.splitlines()[1:-1]]
    assert code == 0
    assert rows == [[CARD_PATH, "resnet18", "resnet18", "drift (1)", "Layers 34, Parameters 11.69 M, FLOPs 1.82 G, "
                                                                     "File Size 46.84 M, Top 1 Accuracy 69.74%, "
                                                                     "Top 5 Accuracy 89.09%"],
                    [CARD_PATH, "resnet26", "resnet26", "ok (2 figures)", "Parameters 16.00 M, Top 1 Accuracy 75.29%, "
                                                                          "Top 5 Accuracy 92.57%"]]


def test_progress_goes_to_stderr_while_measuring(card_project, capsys):
    Path(CARD_PATH).write_text(CARD.split("- Name: resnet26")[0] + "-->\n")
    code = main(["verify", CARD_PATH, "--no-cache"])
    out, err = capsys.readouterr()
    assert code == 0 and "measured 1/1: resnet18 (224 px) " in err and "measured" not in out.split("(")[0]
    assert not Path(".resfam-cache").exists()


def test_the_console_script_runs(card_project, shared_cache):
    script = Path(sys.executable).with_name("resfam-cards")
    if not script.exists():
        pytest.skip("resfam-cards is not installed next to this Python")
    edit_card("Layers: 18", "Layers: 17")
    run = subprocess.run([str(script), "verify", "-q", "--cache-dir", str(shared_cache)], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 1 and "resnet18 Layers: card says 17, code measures 18" in run.stdout
    assert "Traceback" not in run.stderr


def test_verify_strict_fails_on_a_literal_figure_in_the_prose(card_project, card_cli):
    edit_card("A test card.", "A test card: resnet18 has 11.7 million parameters.")
    code, out, _ = card_cli("verify", "-q")
    assert code == 0
    assert (f"{CARD_PATH}:3: warning: the prose writes '11.7 million parameters' as a literal figure, which the "
            "build does not check; the code measures resnet18 Parameters: 11,689,512 (11.7 million)") in out
    assert "hint: write {{ models.resnet18.parameters | millions }} instead" in out
    code, out, _ = card_cli("verify", "-q", "--strict")
    assert code == 1 and "1 warning" in out
    assert out.splitlines()[-1].startswith("FAILED: ")  # the summary says what the exit code says
    edit_card("resnet18 has 11.7 million parameters", "resnet18 has {{ models.resnet18.parameters | millions }} "
                                                      "million parameters")
    assert card_cli("verify", "-q", "--strict")[0] == 0
