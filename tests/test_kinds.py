"""The table of fields carries the behaviour: its rows hold objects (a place, a kind of value, a comparison)
that the engine asks, and no engine module outside the table and the kinds names a field.

The behaviour of each kind (checking, comparing, writing back, showing) is tested end to end by the
bad-card corpus, the sync and property tests and the site tests; this file checks what keeps it in one place.
"""
import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from resfam.cards.fields import BY_NAME, FIELDS, Place, synced_fields
from resfam.cards.kinds import Comparison, Kind

ENGINE = Path(__file__).resolve().parent.parent / "resfam" / "cards"
THE_TABLE = ("fields.py", "kinds.py")

# Strings that are spelled like a field but are something else: (module, text) -> what it is.
NOT_FIELDS = {
    ("architecture.py", "Dropout"): "torch.nn.Dropout, a layer class the architecture tag looks for",
    ("cli.py", "ID"): "the metavar of an option that takes a model ID or a Hub licence id",
    ("measure_one.py", "ID"): "the command-line argument ID, named where a finding names its file",
    ("model_index.py", "Code"): "a key of a paperswithcode collection (a link to its code), not of a model entry",
    ("prose.py", "ID"): "the placeholder model ID of a suggested expression when a card lists no model",
}


def field_names_in(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant of a module, docstrings aside, that is the name of a field."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in BY_NAME and id(node) not in docstrings]


def test_no_engine_module_but_the_table_names_a_field():
    named = [f"{path.name}:{line}: {text!r}" for path in sorted(ENGINE.glob("*.py")) if path.name not in THE_TABLE
             for line, text in field_names_in(path) if (path.name, text) not in NOT_FIELDS]
    assert named == [], "ask the table of fields (resfam/cards/fields.py) instead of naming a field"


def test_the_exceptions_are_still_there():
    """Each string of NOT_FIELDS is still in its module: a stale exception would hide a field's name."""
    for module, text in NOT_FIELDS:
        assert any(found == text for _, found in field_names_in(ENGINE / module)), (module, text)


def test_a_row_holds_objects_not_strings():
    for field in FIELDS:
        assert isinstance(field.place, Place) and isinstance(field.kind, Kind) \
            and isinstance(field.compare, Comparison), field.name
        assert field.verified == field.compare.verified
        if field.measured is not None:
            origin, key = field.measured_from
            assert key and origin in ("measurement", "config", "registry")


def test_the_table_and_its_kinds_import_only_the_standard_library():
    """The template renderer reads the table: it must not pull in YAML, Jinja, MkDocs or torch."""
    done = subprocess.run([sys.executable, "-c", "import sys, resfam.cards.fields; print(sorted({name.split('.')[0] "
                           "for name in sys.modules} & {'yaml', 'jinja2', 'mkdocs', 'torch', 'fvcore', 'numpy'}))"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_sync_writes_what_it_reads_back_for_every_synced_kind():
    """A value sync writes is one the card's kind accepts, compares as the same, and is not rewritten."""
    registered = SimpleNamespace(code="resfam/models/resnet.py", defined_at=210, code_url=None)
    written = {"Count": 25557032, "ImageSize": 224, "CropPct": 0.875, "Interpolation": "bicubic",
               "Url": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
               "Tags": ["Residual Block", "Batch Normalization"], "Source": "resfam/models/resnet.py"}
    for field in synced_fields():
        value = written[type(field.kind).__name__]
        kind = field.kind
        assert kind.for_card(value) == value, field.name
        assert kind.already_says(value, value), field.name
        assert kind.in_card_style(value, value, registered) == value, field.name
        scalar = SimpleNamespace(value=str(value), style=None)
        assert kind.check(value, scalar) is None, field.name


def test_kinds_say_the_card_style():
    tags, source = BY_NAME["Architecture"].kind, BY_NAME["Code"].kind
    registered = SimpleNamespace(code="resfam/models/resnet.py", defined_at=210, code_url=None)
    # the card's own order first, then what it left out
    assert tags.in_card_style(["B", "A"], ["A", "B", "C"], registered) == ["B", "A", "C"]
    # a card that anchors a line keeps anchoring it, at the registration's line
    assert source.in_card_style("resfam/models/resnet.py#L3", "resfam/models/resnet.py", registered) \
        == "resfam/models/resnet.py#L210"
    assert source.in_card_style("resfam/models/resnet.py", "resfam/models/resnet.py", registered) \
        == "resfam/models/resnet.py"
    # '224' on a card is the registered 224; sync leaves a card's '224' as written
    assert BY_NAME["Image Size"].kind.normalised("224") == 224
    assert BY_NAME["Image Size"].kind.already_says("224", 224)
    assert BY_NAME["Crop Pct"].kind.already_says("0.875", 0.875)
