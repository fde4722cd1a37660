"""The card engine and the MkDocs plugin do not import torch or the zoo; the zoo's API still sees every
model. Each check runs in a fresh interpreter, since this test process has long imported both."""
import subprocess
import sys
import textwrap


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_engine_the_cli_and_the_plugin_import_neither_torch_nor_the_zoo():
    out = run_python("""
        import sys
        import resfam, resfam.cards, resfam.cards.cli, resfam.cards.plugin, resfam.cards.verify
        from resfam.registry import FAMILIES
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
    assert out.split() == ["34", "True", "resnet18", "True", "resfam.hub"]


def test_a_name_the_zoo_registers_stays_taken():
    out = run_python("""
        from resfam.registry import ModelConfig, register_model
        try:
            register_model("resnet50", "resnet", ModelConfig(url=""))(lambda **kw: None)
        except ValueError as error:
            print(error)
    """)
    assert "registered twice" in out
