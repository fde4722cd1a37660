"""The measurement cache: keyed by everything that can change a measurement, never stale, never fatal.

The first tests use a small fake package tree; the last ones run the real worker on an edited copy of
the resfam package."""
import hashlib
import json
import os
import py_compile
import shutil
import textwrap
from pathlib import Path

import pytest
from card_entries import RESNEST14D_MEASURED, RESNET18_MEASURED, RESNET26_MEASURED

import resfam
from resfam.cards import dependencies
from resfam.cards.cache import MeasurementCache, SourceTree, installed_versions
from resfam.cards.verify import verify
from resfam.cards.worker import _ImportGraph, _recording_imports
from resfam.cards.zoos import referenced_modules

MEASUREMENT = {"model_id": "m", "image_size": 224, "parameters": 1, "flops": 2, "file_size": 3, "layers": 4}


@pytest.fixture
def package(tmp_path):
    """A fake resfam package: two model files, a registry, and the measurement code."""
    root = tmp_path / "resfam"
    files = {
        "__init__.py": "", "registry.py": "REGISTRY = {}\n", "models/__init__.py": "",
        "models/resnet.py": "DEPTH = 18\n", "models/resnest.py": "RADIX = 2\n",
        "cards/__init__.py": "", "cards/measure.py": "# measure\n", "cards/worker.py": "# worker\n",
        "cards/pool.py": "# the worker pool\n", "cards/limits.py": "# limits\n", "cards/pages.py": "# pages\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def open_cache(package, directory, versions=None):
    """A cache as a new run sees it: the files are hashed afresh."""
    return MeasurementCache(directory, SourceTree(package), versions)


def store(cache, sources, model_id="m", size=224):
    recorded = {name: cache.sources.digest(name) for name in sources}
    cache.put_measurement(model_id, {}, size, dict(MEASUREMENT, model_id=model_id, image_size=size), recorded)


def test_an_entry_is_found_until_a_file_it_depends_on_changes(package, tmp_path):
    store(open_cache(package, tmp_path / "c"), ["models/resnet.py", "registry.py"])
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224)["flops"] == 2

    (package / "models/resnest.py").write_text("RADIX = 4\n")  # not one of its files
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is not None

    (package / "models/resnet.py").write_text("DEPTH = 19\n")
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is None


def test_a_removed_or_renamed_source_file_is_a_miss(package, tmp_path):
    store(open_cache(package, tmp_path / "c"), ["models/resnet.py"])
    (package / "models/resnet.py").rename(package / "models/resnet_v2.py")
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is None


def test_model_arguments_image_size_versions_and_measurement_code_are_in_the_key(package, tmp_path):
    store(open_cache(package, tmp_path / "c"), ["models/resnet.py"])
    cache = open_cache(package, tmp_path / "c")
    assert cache.get_measurement("m", {}, 224) is not None
    assert cache.get_measurement("m", {}, 256) is None
    assert cache.get_measurement("m", {"num_classes": 10}, 224) is None
    assert cache.get_measurement("other", {}, 224) is None
    newer_torch = dict(installed_versions(), torch="99.0")
    assert open_cache(package, tmp_path / "c", newer_torch).get_measurement("m", {}, 224) is None

    (package / "cards/measure.py").write_text("# measure, counted differently\n")
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is None


def test_the_worker_process_code_is_in_the_key_and_the_parents_side_is_not(package, tmp_path):
    """The pool and the limits bound the work; they change no figure, so editing them keeps the cache."""
    store(open_cache(package, tmp_path / "c"), ["models/resnet.py"])
    (package / "cards/pool.py").write_text("# the worker pool, rewritten\n")
    (package / "cards/limits.py").write_text("# limits, rewritten\n")
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is not None
    (package / "cards/worker.py").write_text("# worker, rewritten\n")
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is None


def test_corrupt_entries_are_misses_not_errors(package, tmp_path):
    cache = open_cache(package, tmp_path / "c")
    store(cache, ["models/resnet.py"])
    [entry] = (tmp_path / "c").rglob("*.json")
    good = entry.read_text()
    for broken in [good[: len(good) // 2], "", "\x00\xff garbage", "[1, 2, 3]", json.dumps({"key": "other"}),
                   good.replace('"sources":{', '"sources":[],"x":{')]:
        entry.write_text(broken, encoding="utf-8", errors="surrogateescape")
        assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is None
    entry.write_bytes(b"\xff\xfe not utf-8")
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is None
    store(open_cache(package, tmp_path / "c"), ["models/resnet.py"])  # re-measured: rewritten whole
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is not None


def test_an_entry_with_no_recorded_sources_is_never_trusted(package, tmp_path):
    store(open_cache(package, tmp_path / "c"), [])
    assert open_cache(package, tmp_path / "c").get_measurement("m", {}, 224) is None


def test_registry_facts_depend_on_every_model_source_and_on_the_list_of_files(package, tmp_path):
    def put_facts():
        cache = open_cache(package, tmp_path / "c")
        cache.put_registry({"m": {"family": "resnet"}}, cache.sources.model_sources())

    put_facts()
    assert open_cache(package, tmp_path / "c").get_registry() == {"m": {"family": "resnet"}}
    (package / "cards/pages.py").write_text("# the site's code, not the zoo's\n")
    assert open_cache(package, tmp_path / "c").get_registry() is not None

    (package / "models/res2net.py").write_text("SCALE = 4\n")  # a new model file
    assert open_cache(package, tmp_path / "c").get_registry() is None
    put_facts()
    (package / "models/res2net.py").unlink()
    assert open_cache(package, tmp_path / "c").get_registry() is None
    put_facts()
    (package / "registry.py").write_text("REGISTRY = {'x': 1}\n")
    assert open_cache(package, tmp_path / "c").get_registry() is None


def test_a_cache_that_is_off_reads_and_writes_nothing(package, tmp_path):
    cache = open_cache(package, None)
    store(cache, ["models/resnet.py"])
    cache.put_registry({}, cache.sources.model_sources())
    assert cache.get_measurement("m", {}, 224) is None and cache.get_registry() is None
    assert not cache.enabled and list(tmp_path.rglob("*.json")) == []


def test_entries_are_written_whole_and_the_folder_ignores_itself_in_git(package, tmp_path):
    cache = open_cache(package, tmp_path / "c")
    for size in (160, 224, 256):
        store(cache, ["models/resnet.py"], size=size)
    assert cache.writes == 3
    assert not list((tmp_path / "c").rglob("*.tmp")) and not list((tmp_path / "c").rglob(".entry-*"))
    assert (tmp_path / "c" / ".gitignore").read_text().strip().endswith("*")
    for entry in (tmp_path / "c").rglob("*.json"):
        assert json.loads(entry.read_text())["value"]["flops"] == 2


def test_a_cache_with_no_measurement_yet_says_so(package, tmp_path):
    """(Then every model will be measured, and the verifier starts every worker at once.)"""
    cache = open_cache(package, tmp_path / "c")
    assert cache.holds_no_measurement() and open_cache(package, None).holds_no_measurement()
    cache.put_registry({}, cache.sources.model_sources())
    assert cache.holds_no_measurement()
    store(cache, ["models/resnet.py"])
    assert not open_cache(package, tmp_path / "c").holds_no_measurement()


def test_an_unwritable_cache_only_costs_time(package, tmp_path):
    blocker = tmp_path / "c"
    blocker.write_text("a file where the cache folder should be")
    cache = open_cache(package, blocker)
    store(cache, ["models/resnet.py"])
    assert cache.writes == 0 and cache.get_measurement("m", {}, 224) is None


def test_the_files_defining_a_model_follow_its_builder_and_imports():
    """A ResNeSt is built by resnet.py's builder with resnest.py's blocks: both define it. A ResNet
    depends on neither resnest.py nor res2net.py, nor on hub.py, which registry.py imports only inside
    the function that loads pretrained weights."""
    graph = _ImportGraph(Path(resfam.__file__).parent)
    assert {"resfam.models.resnet", "resfam.models.resnest"} <= referenced_modules(
        resfam.get_model_entry("resnest14d").builder)
    assert graph.closure(["models/resnest.py"]) == {"models/resnest.py", "models/resnet.py", "models/layers.py",
                                                    "registry.py", "config.py"}
    assert graph.closure(["models/resnet.py"]) == {"models/resnet.py", "models/layers.py", "registry.py", "config.py"}


def test_imports_made_while_a_model_is_built_are_recorded():
    found = set()
    with _recording_imports(found):
        from resfam import hub  # noqa: F401  (already loaded: seen by the import statement)
        exec("from . import layers", {"__package__": "resfam.models", "__name__": "resfam.models.x"})
    assert {"resfam.hub", "resfam.models.layers"} <= found


# ---------------------------------------------------------------------------------------------
# With the real worker, on an edited copy of the package

# Only the figures a changed block count moves: a File Size claim would drift too
CARD = f"""\
# ResNet

<!--
Type: model-index
Models:
- Name: resnet18
  Metadata:
    ID: resnet18
    Layers: 18
    Parameters: {RESNET18_MEASURED.parameters}
    FLOPs: {RESNET18_MEASURED.flops}
- Name: resnest14d
  Metadata:
    ID: resnest14d
    Layers: 14
    Parameters: {RESNEST14D_MEASURED.parameters}
-->
"""


def test_editing_a_model_file_re_measures_exactly_the_models_it_defines(tmp_path, package_copy, shared_cache):
    templates = tmp_path / "templates"
    (templates / "models").mkdir(parents=True)
    card = templates / "models" / "resnet.md"
    card.write_text(CARD.replace("resnest14d", "resnet26").replace("Layers: 14", "Layers: 26")
                    .replace(str(RESNEST14D_MEASURED.parameters), str(RESNET26_MEASURED.parameters)))
    # resnest14d is not a ResNet: its own card
    (templates / "models" / "resnest.md").write_text(textwrap.dedent(f"""\
        <!--
        Models:
        - Name: resnest14d
          Metadata: {{ID: resnest14d, Layers: 14, Parameters: {RESNEST14D_MEASURED.parameters}}}
        -->
        """))
    # The copy is still identical to the package: its measurements are valid for the whole session.
    first = verify(templates_dir=templates, cache_dir=shared_cache, package_dir=package_copy)
    assert first.ok, first.findings
    cache = tmp_path / "cache"
    shutil.copytree(shared_cache, cache)

    def run():
        return verify(templates_dir=templates, cache_dir=cache, package_dir=package_copy)

    warm = run()
    assert warm.ok and warm.stats.workers_started == 0 and warm.stats.measured_models == 0
    assert warm.stats.registry_from_cache

    # The parent's side of the worker pool changes no figure: everything stays cached.
    pool = package_copy / "cards" / "pool.py"
    pool.write_text(pool.read_text() + "\n# a comment\n")
    after_pool_edit = run()
    assert after_pool_edit.ok and after_pool_edit.stats.workers_started == 0
    assert after_pool_edit.stats.registry_from_cache

    # A comment in resnest.py changes no code: nothing is measured again (the registry is read again).
    resnest = package_copy / "models" / "resnest.py"
    resnest.write_text(resnest.read_text() + "\n# a comment\n")
    after_comment = run()
    assert after_comment.ok
    assert after_comment.stats.measured_models == 0 and not after_comment.stats.registry_from_cache

    # A block class edited: only the model built with it is measured again; the same for a helper it calls.
    text = resnest.read_text()
    resnest.write_text(text.replace("class SplitAttention(nn.Module):\n",
                                    "class SplitAttention(nn.Module):\n    described = 'split attention'\n", 1))
    assert run().stats.measured_models == 1  # resnest14d
    layers = package_copy / "models" / "layers.py"
    layers.write_text(layers.read_text().replace("    min_value = min_value or divisor\n",
                                                 "    min_value = min_value or int(divisor)\n", 1))
    assert run().stats.measured_models == 1  # resnest14d: SplitAttention calls make_divisible

    # A new registration line re-measures none of the models that were there.
    resnet = package_copy / "models" / "resnet.py"
    original = resnet.read_text()
    resnet.write_text(original + 'register_resnet("resnet10", "resnet", default_config(""), '
                                 'block=BasicBlock, layers=(1, 1, 1, 1))\n')
    after_new_model = run()
    assert after_new_model.stats.measured_models == 0 and not after_new_model.stats.registry_from_cache
    resnet.write_text(original)

    # resnet18 gets one more block, in an edit that keeps resnet.py's size and modification time:
    # a plain import would run its stale .pyc, the worker compiles the source as it is now.
    py_compile.compile(str(resnet), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    before = resnet.stat()
    text = resnet.read_text()
    line = next(line for line in text.splitlines() if 'register_resnet("resnet18"' in line)
    resnet.write_text(text.replace(line, line.replace("layers=(2, 2, 2, 2)", "layers=(2, 2, 2, 3)")))
    os.utime(resnet, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert resnet.stat().st_size == before.st_size and resnet.read_text() != text

    drifted = run()
    assert drifted.stats.measured_models == 1  # its registration changed, not the code of the other two
    drifts = {(f.model, f.field): f for f in drifted.drifts}
    assert set(drifts) == {("resnet18", "Layers"), ("resnet18", "Parameters"), ("resnet18", "FLOPs")}
    assert drifts["resnet18", "Layers"].measured == 20
    assert drifts["resnet18", "Layers"].line == CARD.splitlines().index("    Layers: 18") + 1


def test_a_model_file_that_does_not_import_fails_every_card_with_its_place(tmp_path, package_copy):
    res2net = package_copy / "models" / "res2net.py"
    res2net.write_text(res2net.read_text().replace("def forward(self, x):", "def forward(self, x)", 1))
    broken_line = next(i for i, line in enumerate(res2net.read_text().splitlines(), 1)
                       if "def forward(self, x)" in line)
    (tmp_path / "templates" / "models").mkdir(parents=True)
    (tmp_path / "templates" / "models" / "resnet.md").write_text(CARD.split("- Name: resnest14d")[0] + "-->\n")
    report = verify(templates_dir=tmp_path / "templates", cache_dir=tmp_path / "cache", package_dir=package_copy)
    [error] = report.errors
    assert "cannot load the resfam model zoo: SyntaxError" in error.message
    assert f"resfam/models/res2net.py:{broken_line}" in error.message
    assert report.exit_code == 2


def test_a_worker_that_dies_fails_its_model_only(tmp_path, package_copy):
    resnet = package_copy / "models" / "resnet.py"
    resnet.write_text(resnet.read_text() + textwrap.dedent("""
        def _crash(**kwargs):
            os._exit(3)


        import os
        register_model("crashnet", "resnet", default_config("https://example.com/crashnet.pth"))(_crash)
        """))
    (tmp_path / "templates" / "models").mkdir(parents=True)
    card = CARD.split("- Name: resnest14d")[0] + "- Name: crashnet\n  Metadata:\n    ID: crashnet\n    Layers: 1\n-->\n"
    (tmp_path / "templates" / "models" / "resnet.md").write_text(card)
    report = verify(templates_dir=tmp_path / "templates", cache_dir=tmp_path / "cache", package_dir=package_copy)
    [error] = report.errors
    assert error.model == "crashnet" and "could not be measured: the measuring worker stopped while building " \
                                         "(exit code 3)" in error.message
    ok = {(f.model, f.field) for f in report.findings if f.status == "ok"}
    assert ("crashnet", "ID") in ok and ("crashnet", "Layers") not in ok
    assert ("resnet18", "Layers") in ok and ("resnet18", "FLOPs") in ok  # measured by a new worker
    assert report.stats.workers_started == 2


def test_a_cached_measurement_needs_the_activations_and_the_stage_layout():
    """Prose and tables render from the cached measurement: an entry that lacks a part is measured again."""
    from resfam.cards.zoo import _valid_measurement

    layout = {"stem_widths": [32, 32, 64], "stages": [{"blocks": 3, "block": "Bottleneck", "width": 256,
                                                        "inner_width": 64}]}
    whole = dict(MEASUREMENT, activations=5, layout=layout, unexpected_uncounted_ops={}, architecture=[])
    assert _valid_measurement(whole, "m", 224) == whole
    broken = [
        {name: value for name, value in whole.items() if name != "activations"},
        {name: value for name, value in whole.items() if name != "layout"},
        dict(whole, activations=True),
        dict(whole, layout={"stages": layout["stages"]}),
        dict(whole, layout=dict(layout, stem_widths=[32, "64"])),
        dict(whole, layout=dict(layout, stages=[dict(layout["stages"][0], blocks="3")])),
        dict(whole, layout=dict(layout, stages=[{"blocks": 3}])),
        dict(whole, layout=dict(layout, stages="3, 4, 6, 3")),
    ]
    assert [_valid_measurement(entry, "m", 224) for entry in broken] == [None] * len(broken)


# ---------------------------------------------------------------------------------------------
# What a model depends on in a file (cards/dependencies.py), read from the source without running it

MODEL_FILE = '''\
"""Two models."""
from .layers import helper

WIDTH = 64


class Block:
    expansion = 1

    def forward(self, x):
        return helper(x)


class Other:
    pass


def register(name, **arch):
    pass


register("small", block=Block, layers=(1, 1))
register("large", block=Other, layers=(2, 2))
'''


def depends(text: str, names: set[str], model_line: int) -> dict:
    return dependencies.record(text, file_digest_of(text), names, {"register"}, model_line)


def file_digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def still(recorded: dict, text: str) -> bool:
    return dependencies.unchanged(recorded, text, file_digest_of(text))


def test_a_model_depends_on_its_definitions_its_registration_and_the_rest_of_its_file():
    small = depends(MODEL_FILE, {"Block", "register"}, MODEL_FILE.splitlines().index('register("small", block=Block, '
                                                                                     'layers=(1, 1))') + 1)
    assert set(small["defs"]) == {"Block", "register"} and "own" in small and "file" not in small
    assert still(small, MODEL_FILE)
    # neither a comment, nor another model's registration, nor a new one, nor a class it is not built with
    assert still(small, MODEL_FILE.replace("class Block:", "# the block\n\nclass Block:"))
    assert still(small, MODEL_FILE.replace("layers=(2, 2)", "layers=(3, 3)"))
    assert still(small, MODEL_FILE + 'register("huge", block=Other, layers=(4, 4))\n')
    assert still(small, MODEL_FILE.replace("    pass\n\n\ndef", "    depth = 3\n\n\ndef"))
    # its own registration, its block, a constant or an import of the file
    assert not still(small, MODEL_FILE.replace("layers=(1, 1)", "layers=(1, 2)"))
    assert not still(small, MODEL_FILE.replace("expansion = 1", "expansion = 2"))
    assert not still(small, MODEL_FILE.replace("WIDTH = 64", "WIDTH = 32"))
    assert not still(small, MODEL_FILE.replace("from .layers import helper", "from .layers import helper as h"))
    assert not still(small, "this is not Python (")


def test_code_that_no_top_level_definition_holds_depends_on_the_whole_file():
    recorded = depends(MODEL_FILE, {"<lambda>"}, 1)
    assert recorded["file"] == file_digest_of(MODEL_FILE)
    assert not still(recorded, MODEL_FILE.replace("class Block:", "# the block\nclass Block:"))


def test_the_helpers_a_definition_names_are_followed_into_other_modules(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.py").write_text(MODEL_FILE)
    (tmp_path / "models" / "layers.py").write_text("def helper(x):\n    return inner(x)\n\n\ndef inner(x):\n"
                                                    "    return x\n\n\ndef unused():\n    pass\n")

    def file_of(parts):
        path = "/".join(parts[1:]) + ".py"
        return path if parts[:1] == ["resfam"] and (tmp_path / path).is_file() else None

    found = dependencies.References(tmp_path, file_of).closure({"models/a.py": {"Block"}})
    assert found == {"models/a.py": {"Block"}, "models/layers.py": {"helper", "inner"}}
