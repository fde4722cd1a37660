"""What resfam's modules import: the card engine and the MkDocs plugin do not import torch or the zoo;
the zoo's API still sees every model, and needs nothing of the card engine's packages; no module imports
one that imports it back. Each run-time check runs in a fresh interpreter, since this test process has
long imported all of them."""
import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import resfam

PACKAGE = Path(resfam.__file__).parent
# distribution names; numpy and Pillow: the code blocks of the cards run in the build (a sample photo)
CARDS_EXTRA = {"fvcore", "jinja2", "pyyaml", "mkdocs", "mkdocs-material", "numpy", "pillow"}
CARDS_EXTRA_MODULES = {"fvcore", "jinja2", "yaml", "mkdocs", "material"}  # what they install


def zoo_size() -> int:
    """How many models the zoo registers, counted on the card templates (the build holds every registered
    model to a card), not through the registry these tests check."""
    from resfam.cards import parse_card

    cards = (PACKAGE.parent / "templates" / "models").glob("*.md")
    return len({model.model_id for path in cards for model in parse_card(path).models})


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_engine_the_cli_and_the_plugin_import_neither_torch_nor_the_zoo():
    out = run_python("""
        import sys
        import resfam, resfam.cards, resfam.cards.cli, resfam.cards.plugin, resfam.cards.verify
        import resfam.config, resfam.registry
        print(sorted(name for name in sys.modules if name == "torch" or name.startswith("resfam.models")))
    """)
    assert out.strip() == "[]"


def test_the_zoo_loads_on_first_use_through_every_door():
    out = run_python("""
        import resfam
        from resfam.registry import create_model, is_model, list_models
        print(len(list_models()), is_model("resnet50"), create_model("resnet18").model_name)
        print(resfam.list_models() == list_models(), resfam.PretrainedLoadError.__module__)
    """)
    assert out.split() == [str(zoo_size()), "True", "resnet18", "True", "resfam.hub"]


def test_a_name_the_zoo_registers_stays_taken():
    out = run_python("""
        from resfam.registry import ModelConfig, register_model
        try:
            register_model("resnet50", "resnet", ModelConfig(url=""))(lambda **kw: None)
        except ValueError as error:
            print(error)
    """)
    assert "registered twice" in out


def test_a_plain_install_brings_torch_and_not_the_card_engine():
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements):
        return {req.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for req in requirements}

    assert names(project["dependencies"]) == {"torch"}
    assert names(project["optional-dependencies"]["cards"]) == CARDS_EXTRA
    assert "resfam[cards]" in project["optional-dependencies"]["test"]  # scripts/test.sh installs both


def test_the_zoo_works_without_the_card_engine_packages():
    """As after `pip install resfam` without the cards extra: its packages cannot be imported (a None in
    sys.modules is how Python marks a module as not importable)."""
    out = run_python(f"""
        import sys
        sys.modules.update(dict.fromkeys({sorted(CARDS_EXTRA_MODULES)!r}))
        import torch
        import resfam, resfam.hub
        model = resfam.create_model("resnet18", num_classes=10).eval()
        with torch.no_grad():
            print(len(resfam.list_models()), tuple(model(torch.zeros(1, 3, 64, 64)).shape),
                  resfam.hub.hash_prefix(model.default_config.url))
        try:
            import resfam.cards.cli
        except ImportError as error:
            print(error)
    """)
    zoo, cards = out.splitlines()
    assert zoo.split() == [str(zoo_size()), "(1,", "10)", "5c106cde"]
    assert cards == ("resfam's card engine needs the cards extra, which is not installed (missing: pyyaml, jinja2, "
                     "fvcore, mkdocs, mkdocs-material): pip install 'resfam[cards]', or in a checkout: "
                     "bash scripts/install.sh cards")


def imported_resfam_modules(path: Path) -> set[str]:
    """The resfam modules a source file imports (at any depth: a function's import counts too),
    except under `if TYPE_CHECKING:`, which never runs."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}".rstrip(".")
            # `from package import name` imports the submodule `name` when there is one
            found |= {f"{base}.{alias.name}" if module_file(f"{base}.{alias.name}") else base for alias in node.names}
    return {name for name in found if name == "resfam" or name.startswith("resfam.")} - {module}


def module_name(path: Path) -> str:
    return ".".join(("resfam", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def module_file(name: str) -> Path | None:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def test_no_import_cycle_inside_resfam():
    graph = {module_name(path): imported_resfam_modules(path) for path in sorted(PACKAGE.rglob("*.py"))}
    assert {"resfam.config"} <= graph["resfam.hub"] and "resfam.registry" not in graph["resfam.hub"]
    assert len(graph) > 20 and graph["resfam.cards.verify"]  # the walk saw the package

    def cycle_from(start, path):
        for target in sorted(graph.get(path[-1], ())):
            if target == start:
                return [*path, start]
            if target not in path and target > start:  # each cycle once, from its smallest module
                found = cycle_from(start, [*path, target])
                if found:
                    return found
        return None

    cycles = [cycle for cycle in map(lambda m: cycle_from(m, [m]), sorted(graph)) if cycle]
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)
