"""Rendering card templates: the context contract, strictness, error locations and the sandbox."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from card_entries import RESNET50_MEASURED

from resfam.cards import CardError, card_context, parse_card, render, render_template

CARDS = Path(__file__).parent / "cards"
CONTEXT = {"model_name": "resnet50", "model_ids": ["resnet50", "resnet101"], "family": "resnet",
           "collection": "ResNet"}


def render_errors(path, root, context=CONTEXT) -> list[str]:
    with pytest.raises(CardError) as raised:
        render_template(path, root, context)
    return [finding.format() for finding in raised.value.findings]


@pytest.fixture
def templates(tmp_path, monkeypatch):
    """An empty templates folder, the working directory at its parent so paths read as in the project."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "templates" / "models").mkdir(parents=True)
    return Path("templates")


def write(templates: Path, name: str, text: str) -> str:
    (templates / name).write_text(text)
    return os.path.join("templates", *name.split("/"))


# ---------------------------------------------------------------------------------------------
# The contract


def test_card_context_of_the_fixture_card():
    card = parse_card(str(CARDS / "models" / "resnet.md"))
    assert card_context(card) == {"model_name": "resnet18", "model_ids": ["resnet18", "resnet50"],
                                  "family": "resnet", "collection": "ResNet", "models": {}}


def test_card_context_falls_back_to_names_without_ids():
    card = parse_card("templates/models/resnet-d.md", "<!--\nModels:\n- Name: resnet50d\n- Name: resnet101d\n-->\n")
    assert card_context(card) == {"model_name": "resnet50d", "model_ids": ["resnet50d", "resnet101d"],
                                  "family": "resnet-d", "collection": "resnet-d", "models": {}}


def test_the_snippets_use_the_smallest_measured_model_the_first_among_equals():
    card = parse_card("templates/models/resnet.md", "<!--\nModels:\n- Name: resnet50\n- Name: resnet152\n"
                      "- Name: resnet18\n- Name: resnet34\n- Name: tv_resnet34\n-->\n")
    measured = {"resnet50": {"parameters": 25557032}, "resnet152": {}, "resnet34": {"parameters": 21797672},
                "tv_resnet34": {"parameters": 21797672}}
    assert card_context(card, measured)["model_name"] == "resnet34"  # resnet18 not measured: after the others
    assert card_context(card, {**measured, "resnet18": {"parameters": 11689512}})["model_name"] == "resnet18"
    assert card_context(card, {})["model_name"] == "resnet50"


def test_the_snippets_use_the_fewest_measured_flops_then_parameters_then_card_order():
    card = parse_card("templates/models/res2net.md", "<!--\nModels:\n- Name: a\n- Name: b\n- Name: c\n"
                      "- Name: d\n-->\n")
    measured = {"a": {"flops": 4_000, "parameters": 100}, "b": {"flops": 3_000, "parameters": 300},
                "c": {"flops": 3_000, "parameters": 200}, "d": {"flops": None, "parameters": 50}}
    assert card_context(card, measured)["model_name"] == "c"  # b's FLOPs tie, with more parameters
    assert card_context(card, {**measured, "b": {"flops": 3_000, "parameters": 200}})["model_name"] == "b"
    without_flops = {name: {"flops": None, "parameters": values["parameters"]} for name, values in measured.items()}
    assert card_context(card, without_flops)["model_name"] == "d"  # no FLOPs counted: the fewest parameters


def test_renders_the_fixture_card_with_its_include():
    path = CARDS / "models" / "resnet.md"
    card = parse_card(str(path))
    page = render_template(path, CARDS, card_context(card))
    assert page.startswith(
        "# ResNet\n\nA small card used by the tests: two models of the resnet family.\n\n"
        "```python\nimport resfam\nmodel = resfam.create_model('resnet18', pretrained=True)\n```\n\n\n"
        "## Citation\n")
    assert page.endswith("      Top 5 Accuracy: 94.39%\n-->\n")  # block kept, trailing newline kept


def test_markdown_is_not_escaped(templates):
    path = write(templates, "models/a.md", "<b>{{ collection }} & {{ '<i>' }}</b>\n")
    assert render_template(path, templates, CONTEXT) == "<b>ResNet & <i></b>\n"


def test_measured_facts_and_number_filters(templates):
    facts = {"parameters": RESNET50_MEASURED.parameters, "flops": RESNET50_MEASURED.flops,
             "file_size": RESNET50_MEASURED.file_size, "blocks": [3, 4, 6, 3]}
    path = write(templates, "models/a.md",
                 "{% set m = models.resnet50 %}{{ m.parameters | millions }} million, {{ m.flops | gflops }} "
                 "GFLOPs, {{ m.file_size | mb }} MB, {{ m.parameters | grouped }}, "
                 "{{ m.parameters | millions(2) }}, {{ m.blocks | join(' + ') }} = {{ m.blocks | sum }}\n")
    assert render_template(path, templates, {**CONTEXT, "models": {"resnet50": facts}}) == (
        "25.6 million, 4.11 GFLOPs, 102.5 MB, 25,557,032, 25.56, 3 + 4 + 6 + 3 = 16\n")


def test_cited_models_are_read_from_the_syntax_tree():
    source = ("{% set r = models.resnet50 %}\n{{ models['tv_resnet101'].layers }} {{ models[name].layers }}\n"
              "{# models.in_a_comment #} models.in_prose {{ other.models.x }}\n{{ models.resnet50.flops }}\n")
    assert render.cited_models(source) == {"resnet50": 1, "tv_resnet101": 2}
    assert render.cited_models("{{ models.resnet50 ") == {}  # not a template: rendering says why


def test_loops_over_model_ids(templates):
    path = write(templates, "models/a.md", "{% for name in model_ids %}- {{ name }}\n{% endfor %}")
    assert render_template(path, templates, CONTEXT) == "- resnet50\n- resnet101\n"


# ---------------------------------------------------------------------------------------------
# Errors: where they are, exactly


def test_undefined_variable(templates):
    path = write(templates, "models/a.md", "# T\n\n{{ modle_name }}\n")
    assert render_errors(path, templates) == [
        "templates/models/a.md:3: error: undefined variable: 'modle_name' is undefined\n"
        "    hint: card templates may use: model_name, model_ids, family, collection, models "
        "(see resfam/cards/render.py)"]


def test_undefined_attribute(templates):
    path = write(templates, "models/a.md", "{% for m in model_ids %}\n{{ m.size }}\n{% endfor %}\n")
    assert render_errors(path, templates) == [
        "templates/models/a.md:2: error: undefined attribute: 'str object' has no attribute 'size'\n"
        "    hint: check the name after the '.'"]


def test_syntax_error(templates):
    path = write(templates, "models/a.md", "# T\n{% if model_name %}\nno end\n")
    assert render_errors(path, templates) == [
        "templates/models/a.md:2: error: Jinja syntax error: Unexpected end of template. Jinja was "
        "looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to "
        "be closed is 'if'.\n"
        "    hint: add '{% endif %}' where the 'if' block ends"]


def test_an_unclosed_block_is_reported_where_it_opens(templates):
    # Jinja notices at the last tag of the file; the fix goes at the block that has no end tag
    text = "# T\n{% for m in model_ids %}\n- {{ m }}\n{% if m %}x{% endif %}\n{# {% for %} #}\ntext\n"
    path = write(templates, "models/a.md", text)
    assert render_errors(path, templates) == [
        "templates/models/a.md:2: error: Jinja syntax error: Unexpected end of template. Jinja was looking for "
        "the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'.\n"
        "    hint: add '{% endfor %}' where the 'for' block ends"]


@pytest.mark.parametrize("text, line, opener, stopped", [
    ("# T\n\n{% include 'code_snippets.md' %\n\n## Citation\n", 3, "{%", "5: unexpected char '#'"),
    # delimiters inside a raw block or a comment are text
    ("# T\n{% raw %}{{{% endraw %}{# {{ #}\n{{ model_name\n\nmore\n", 3, "{{",
     "5: expected token 'end of print statement', got 'more'"),
])
def test_an_unclosed_tag_is_reported_where_it_opens(templates, text, line, opener, stopped):
    closer = {"{{": "}}", "{%": "%}", "{#": "#}"}[opener]
    path = write(templates, "models/a.md", text)
    assert render_errors(path, templates) == [
        f"templates/models/a.md:{line}: error: Jinja syntax error: the tag '{opener}' opened on this line is "
        f"never closed with '{closer}' (Jinja stopped at line {stopped})\n    hint: end the tag with '{closer}'"]


def test_an_unclosed_comment_is_reported_in_its_own_file(templates):
    # Jinja's lexer gives this error the absolute file name where other errors carry the template name
    write(templates, "code_snippets.md", "# T\n{% raw %}{{{% endraw %}\n{# a note\n\n{{ x }}\n")
    path = write(templates, "models/a.md", "{% include 'code_snippets.md' %}\n")
    assert render_errors(path, templates) == [
        "templates/code_snippets.md:3: error: Jinja syntax error: Missing end of comment tag\n"
        "    hint: check the '{% ... %}' and '{{ ... }}' tags on this line; each block tag needs its matching "
        "end tag"]


def test_syntax_error_inside_an_include_names_the_included_file(templates):
    write(templates, "code_snippets.md", "one\ntwo {{ model_name }\n")
    path = write(templates, "models/a.md", "# T\n{% include 'code_snippets.md' %}\n")
    assert render_errors(path, templates)[0].startswith(
        "templates/code_snippets.md:2: error: Jinja syntax error: unexpected '}'")


def test_undefined_variable_inside_an_include_names_the_included_file(templates):
    write(templates, "code_snippets.md", "one\n\n{{ checkpoint }}\n")
    path = write(templates, "models/a.md", "# T\n{% include 'code_snippets.md' %}\n")
    assert render_errors(path, templates)[0].startswith(
        "templates/code_snippets.md:3: error: undefined variable: 'checkpoint' is undefined")


def test_include_of_a_missing_file(templates):
    path = write(templates, "models/a.md", "# T\n\n{% include 'code_snippet.md' %}\n")
    assert render_errors(path, templates) == [
        "templates/models/a.md:3: error: included template 'code_snippet.md' not found in templates/\n"
        "    hint: check the name; includes are looked up relative to templates/"]


def test_template_that_includes_itself(templates):
    path = write(templates, "models/a.md", "x\n{% include 'models/a.md' %}\n")
    assert render_errors(path, templates)[0].startswith(
        "templates/models/a.md:2: error: the template includes itself without end")


def test_runtime_error_in_an_expression(templates):
    path = write(templates, "models/a.md", "x\n{{ 1 // 0 }}\n")
    assert render_errors(path, templates) == [
        "templates/models/a.md:2: error: error while rendering: ZeroDivisionError: integer division or "
        "modulo by zero\n    hint: check the expression on this line"]


def test_non_utf8_include(templates):
    (templates / "bad.md").write_bytes(b"caf\xe9\n")
    path = write(templates, "models/a.md", "{% include 'bad.md' %}\n")
    assert render_errors(path, templates)[0].startswith("templates/models/a.md:1: error: a template is not valid UTF-8")


def test_template_outside_the_templates_folder(templates, tmp_path):
    (tmp_path / "elsewhere.md").write_text("x\n")
    assert render_errors(tmp_path / "elsewhere.md", templates) == [
        f"{tmp_path / 'elsewhere.md'}: error: the template is not inside the templates folder "
        f"{str(templates)!r}\n    hint: card templates live in templates/models/"]


def test_missing_template(templates):
    assert render_errors("templates/models/none.md", templates) == [
        "templates/models/none.md: error: cannot read the card template: no such file\n    hint: check the path"]


# ---------------------------------------------------------------------------------------------
# The sandbox

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ model_name.format.__globals__ }}",
    "{{ model_ids|attr('__class__') }}",
    "{{ (model_ids|attr('__class__')).__base__ }}",
    "{{ range.__self__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ config }}",
    "{{ request.application }}",
    "{{ '{0.__class__}'.format(model_name) }}",
    "{{ model_ids.pop() }}",
    "{{ model_ids.append(1) }}",
    "{{ dict.__class__ }}",
    "{{ 'x' * 1000000000 }}",
    "{{ [0] * 1000000000 }}",
    "{{ 2 ** 100000000 }}",
    "{% include '../../etc/passwd' %}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_sandbox_escapes_fail_cleanly(templates, escape):
    path = write(templates, "models/a.md", "# T\n" + escape + "\n")
    findings = render_errors(path, templates, dict(CONTEXT))
    assert len(findings) == 1 and findings[0].startswith("templates/models/a.md:2: error: ")


def test_sandbox_message_names_the_refused_attribute(templates):
    path = write(templates, "models/a.md", "{{ ''.__class__.__mro__ }}\n")
    assert render_errors(path, templates) == [
        "templates/models/a.md:1: error: unsafe template: access to attribute '__class__' of 'str' object "
        "is unsafe.\n    hint: templates run in a sandbox: no attributes starting with '_', no file or "
        "network access"]


def test_includes_cannot_follow_a_symlink_out_of_the_templates_folder(templates, tmp_path):
    (tmp_path / "secret.txt").write_text("token\n")
    (templates / "leak.md").symlink_to(tmp_path / "secret.txt")
    path = write(templates, "models/a.md", "{% include 'leak.md' %}\n")
    assert render_errors(path, templates) == [
        "templates/models/a.md:1: error: included template 'leak.md' not found in templates/\n"
        "    hint: check the name; includes are looked up relative to templates/"]


def test_the_context_passed_in_is_not_changed_by_a_template(templates):
    context = dict(CONTEXT, model_ids=["a"])
    path = write(templates, "models/a.md", "{% set model_name = 'x' %}{{ model_name }}\n")
    assert render_template(path, templates, context) == "x\n"
    assert context["model_name"] == "resnet50"
    path = write(templates, "models/b.md", "{{ model_ids.clear() }}\n")
    assert render_errors(path, templates, context)[0].startswith(
        "templates/models/b.md:1: error: unsafe template: access to attribute 'clear' of 'list' object is unsafe.")
    assert context["model_ids"] == ["a"]


# ---------------------------------------------------------------------------------------------
# Time and memory: a runaway template is stopped, at the line it had reached

RUNAWAY_HINT = ("    hint: a card renders in milliseconds and is a page of text: look for a loop or a text that "
                "grows without end")


def test_a_template_that_runs_too_long_is_stopped_where_it_is(templates, monkeypatch):
    monkeypatch.setattr(render, "RENDER_SECONDS", 0.5)
    # 10^10 iterations, each within every per-operation limit of the sandbox
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}"
    path = write(templates, "models/a.md", "# T\n\n" + loops + "\n")
    started = time.monotonic()
    assert render_errors(path, templates) == [
        "templates/models/a.md:3: error: the template ran for more than 0.5 s and was stopped here\n"
        + RUNAWAY_HINT]
    assert time.monotonic() - started < 5
    path = write(templates, "models/b.md", "{{ family }}\n")
    assert render_template(path, templates, CONTEXT) == "resnet\n"  # the next card renders as usual


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory limit is enforced on Linux")
def test_text_doubled_without_end_runs_out_of_memory_not_the_machine(templates):
    doubling = "{% set ns = namespace(s='x') %}\n{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}\n"
    path = write(templates, "models/a.md", "# T\n" + doubling + "{{ ns.s|length }}\n")
    assert render_errors(path, templates) == [
        "templates/models/a.md:3: error: the template ran out of memory here (the renderer may use 1 GB)\n"
        + RUNAWAY_HINT]


def test_a_page_too_long_is_refused(templates):
    path = write(templates, "models/a.md", "{% for i in range(11) %}{{ 'x' * 1000000 }}{% endfor %}\n")
    assert render_errors(path, templates) == [
        "templates/models/a.md: error: the rendered page has 11,000,001 characters; a card page may have at "
        "most 10,000,000\n" + RUNAWAY_HINT]


def test_a_renderer_stuck_in_one_operation_is_killed_and_replaced(templates, monkeypatch):
    # the renderer's own timer cannot interrupt one long C operation: the parent's deadline still holds
    path = write(templates, "models/a.md", "{{ family }}\n")
    assert render_template(path, templates, CONTEXT) == "resnet\n"
    stuck = render._RENDERER._process
    os.kill(stuck.pid, signal.SIGSTOP)
    monkeypatch.setattr(render, "RENDER_SECONDS", 0.3)
    monkeypatch.setattr(render, "_KILL_GRACE", 0.3)
    assert render_errors(path, templates) == [
        "templates/models/a.md: error: the template ran for more than 0.6 s and was stopped\n" + RUNAWAY_HINT]
    assert stuck.poll() == -signal.SIGKILL
    assert render_template(path, templates, CONTEXT) == "resnet\n"
    assert render._RENDERER._process.pid != stuck.pid


def test_a_renderer_that_died_between_cards_is_replaced(templates):
    path = write(templates, "models/a.md", "{{ family }}\n")
    assert render_template(path, templates, CONTEXT) == "resnet\n"
    gone = render._RENDERER._process
    gone.kill()
    gone.wait()
    assert render_template(path, templates, CONTEXT) == "resnet\n"
    assert render._RENDERER._process.pid != gone.pid


def test_compiled_templates_are_kept_and_never_stale(templates, tmp_path):
    # a warm build reads each template's compiled code from the cache; an edit is compiled anew, and an
    # error in code read back from the cache is still placed at its template line
    compiled = tmp_path / "compiled"
    compiled.mkdir()
    write(templates, "snippet.md", "uses {{ model_name }}\n")
    card = write(templates, "models/card.md", "# {{ collection }}\n{% include 'snippet.md' %}\n")
    assert render_template(card, templates, CONTEXT, compiled) == "# ResNet\nuses resnet50\n\n"
    kept = sorted(path.name for path in compiled.iterdir())
    assert len(kept) == 2  # the card and its include
    assert render_template(card, templates, CONTEXT, compiled) == "# ResNet\nuses resnet50\n\n"
    assert sorted(path.name for path in compiled.iterdir()) == kept
    write(templates, "snippet.md", "now {{ family }}\n\n{{ 1 // 0 }}\n")
    for _ in range(2):
        with pytest.raises(CardError) as raised:
            render_template(card, templates, CONTEXT, compiled)
        assert [(finding.path, finding.line) for finding in raised.value.findings] == [
            (os.path.join("templates", "snippet.md"), 3)]
