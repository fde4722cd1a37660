"""The zoo: every model ID matches the timm reference exactly, and behaves as a zoo model should.

The reference (tests/fixtures/timm-reference.json, made with timm 1.0.31) gives for each ID the
parameter count, the state_dict layout and the logits for the weight fill of
tests/fixtures/reference_fill.py on a seeded 224x224 input; logits are compared within 1e-4 of their
norm, since deep models amplify float rounding. Everything else runs on small inputs to keep the file fast.
"""
import gc
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

import resfam
from resfam import UnknownModelError, create_model, list_models
from resfam.cards.measure import no_weight_init

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "timm-reference.json").read_text())
MODELS = REFERENCE["models"]
NAMES = sorted(MODELS)

# One cheap model per architecture variant: plain, bottleneck + deep stem / avg-down, blur, grouped,
# split attention (radix 2, radix 4 with avd_first, radix 1), Res2Net (2 and 8 scales).
VARIANTS = ["resnet18", "resnet26d", "resnetblur50", "resnext50d_32x4d", "resnest14d",
            "resnest50d_4s2x40d", "resnest50d_1s4x24d", "res2net50_48w_2s", "res2net50_14w_8s"]


def seeded_input(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def assert_close_to_scale(actual, expected, rel=1e-4):
    """Equal within `rel` of the expected tensor's norm: deep networks amplify float rounding, so an
    element-wise relative tolerance would fail on logits near zero."""
    tol = rel * float(expected.norm())
    diff = float((actual - expected).abs().max())
    assert diff <= tol, f"max abs difference {diff:.3g} exceeds {tol:.3g}"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run this file's many short forward passes on one thread. With two, OpenMP's spin-waiting made
    them about 3x slower whenever another process shared the two cores (docs/performance.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=NAMES)
def filled(request, deterministic_fill):
    """(name, model): each ID built once, with the reference fill, in eval mode. pytest groups the
    tests by this module-scoped parameter, so one model at a time is alive (resnest269e is 110M params).

    The model is built with torch.nn.init's initialisers turned off, as the card engine builds it for
    counting: the fill sets every floating tensor of the state_dict afterwards, so they would only cost
    time (most of this file's set-up; docs/performance.md). A tensor the fill missed would hold
    uninitialised memory, which the reference outputs below would catch."""
    with no_weight_init():
        model = create_model(request.param).eval()
    deterministic_fill(model, REFERENCE["seed"])
    yield request.param, model
    del model
    gc.collect()


# ---------------------------------------------------------------------------------------------------
# Exact compatibility with the reference, per ID


def test_parameter_count(filled):
    name, model = filled
    assert sum(p.numel() for p in model.parameters()) == MODELS[name]["params"]


def test_state_dict_layout(filled):
    name, model = filled
    layout = [[key, list(t.shape), str(t.dtype).removeprefix("torch.")] for key, t in model.state_dict().items()]
    assert [row[0] for row in layout] == [row[0] for row in MODELS[name]["state_dict"]], "keys or their order differ"
    assert layout == MODELS[name]["state_dict"]


def test_reference_output(filled):
    name, model = filled
    ref = MODELS[name]
    x = seeded_input(*REFERENCE["input"], seed=REFERENCE["seed"] + 1)
    with torch.no_grad():
        logits = model(x)[0].double()
    tol = 1e-4 * ref["logits_norm"]
    first16 = logits[:16].tolist()
    assert max(abs(a - b) for a, b in zip(first16, ref["logits_first16"], strict=False)) <= tol, first16
    assert abs(float(logits.sum()) - ref["logits_sum"]) <= tol
    assert abs(float(logits.norm()) - ref["logits_norm"]) <= tol
    # the reference's top class is ours too, unless a rival is within rounding of it
    (top,) = ref["argmax"]
    assert int(logits.argmax()) == top or float(logits.max() - logits[top]) <= tol


# ---------------------------------------------------------------------------------------------------
# Zoo behaviour, per ID, on small inputs


def test_eval_inference_raises_no_warnings(filled):
    _, model = filled
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            model(seeded_input(1, 3, 64, 64))


def test_forward_features_and_head(filled):
    _, model = filled
    # odd, non-square size: every downsampling step must round up (ceil_mode pooling, padded convs)
    x = seeded_input(1, 3, 97, 130)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
        assert features.shape == (1, model.num_features, math.ceil(97 / 32), math.ceil(130 / 32))
        assert model.forward_head(features, pre_logits=True).shape == (1, model.num_features)
        assert torch.equal(model.forward_head(features), logits)
    assert logits.shape == (1, 1000)


def test_batch_independence(filled):
    _, model = filled
    x = seeded_input(2, 3, 64, 64)
    with torch.no_grad():
        batch = model(x)
        for i in range(len(x)):
            assert_close_to_scale(batch[i], model(x[i : i + 1])[0])


def test_config_names_the_input_convolution_and_the_classifier(filled):
    name, model = filled
    config = resfam.get_model_config(name)
    first_conv = next(module for module in model.modules() if isinstance(module, torch.nn.Conv2d))
    assert model.get_submodule(config.first_conv) is first_conv and first_conv.in_channels == 3
    assert model.get_submodule(config.classifier) is model.get_classifier()


def test_nominal_depth_is_the_number_in_the_name(filled):
    name, model = filled
    depth = int(re.match(r"(?:tv_)?res(?:netblur|net|next|nest|2net)(\d+)", name).group(1))
    assert model.nominal_depth == depth


@pytest.mark.parametrize("name", VARIANTS)
def test_other_input_sizes(name):
    model = create_model(name, num_classes=7).eval()
    for size in (160, 193, 256):  # 193: odd at every stage
        with torch.no_grad():
            features = model.forward_features(seeded_input(1, 3, size, size))
            logits = model.forward_head(features)
        assert features.shape == (1, model.num_features, math.ceil(size / 32), math.ceil(size / 32)), size
        assert logits.shape == (1, 7)
        assert torch.isfinite(logits).all()


# ---------------------------------------------------------------------------------------------------
# Registry


def test_registered_ids_are_the_reference_ids():
    """The test docs/adding-a-model.md names: a new ID fails it until its reference is recorded."""
    new, gone = sorted(set(list_models()) - set(NAMES)), sorted(set(NAMES) - set(list_models()))
    assert list_models() == NAMES, (
        f"registered but not in tests/fixtures/timm-reference.json: {new}; in it but not registered: {gone}. "
        f"Record the reference with timm: python scripts/make_timm_reference.py {' '.join(new or gone)} "
        "(docs/adding-a-model.md, 'The reference test'), or say in your change that a maintainer should")


@pytest.mark.parametrize("family", sorted({m["family"] for m in MODELS.values()}))
def test_families(family):
    assert list_models(family=family) == sorted(n for n, m in MODELS.items() if m["family"] == family)


@pytest.mark.parametrize(
    "pattern, expected",
    [
        ("tv_*", ["tv_resnet101", "tv_resnet152", "tv_resnet34", "tv_resnet50", "tv_resnext50_32x4d"]),
        ("*blur*", ["resnetblur50"]),
        ("resnest50d*", ["resnest50d", "resnest50d_1s4x24d", "resnest50d_4s2x40d"]),
        ("res2net50_26w_?s", ["res2net50_26w_4s", "res2net50_26w_6s", "res2net50_26w_8s"]),
        ("resnet50", ["resnet50"]),
        ("vgg*", []),
    ],
)
def test_list_models_patterns(pattern, expected):
    assert list_models(pattern) == expected


def test_list_models_pattern_and_family():
    assert list_models("*101*", family="resnet-d") == ["resnet101d"]


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownModelError) as info:
        create_model("resnet5")
    assert "resnet50" in info.value.suggestions
    assert "'resnet5'" in str(info.value) and "resnet50" in str(info.value)
    assert isinstance(info.value, KeyError)  # dict-like lookups may catch it as a KeyError


def test_unknown_name_without_close_names():
    with pytest.raises(UnknownModelError, match="list_models") as info:
        resfam.get_model_config("vgg16_bn_definitely_not")
    assert info.value.suggestions == []


def test_default_config_is_attached():
    model = create_model("resnet101d")
    assert model.default_config == resfam.get_model_config("resnet101d")
    assert model.default_config.input_size == (3, 256, 256)
    assert model.model_name == "resnet101d"


# ---------------------------------------------------------------------------------------------------
# Classifier head


@pytest.mark.parametrize("name", ["resnet18", "resnest14d", "res2net50_48w_2s"])
def test_num_classes_gives_a_new_head(name):
    model = create_model(name, num_classes=10).eval()
    assert model.get_classifier().out_features == 10
    assert model.num_classes == 10
    with torch.no_grad():
        assert model(seeded_input(2, 3, 64, 64)).shape == (2, 10)


def test_reset_classifier():
    model = create_model("resnet18").eval()
    x = seeded_input(2, 3, 64, 64)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)

        model.reset_classifier(5)
        assert model.num_classes == 5 and model.get_classifier().out_features == 5
        assert model(x).shape == (2, 5)

        model.reset_classifier(0)  # no head: the model returns the pooled features
        assert model.num_classes == 0
        assert not any(p.numel() for p in model.get_classifier().parameters())
        assert torch.equal(model(x), pooled)


def test_num_classes_zero_returns_features():
    model = create_model("resnet18", num_classes=0).eval()
    assert not any(k.startswith("fc.") for k in model.state_dict())
    with torch.no_grad():
        assert model(seeded_input(1, 3, 64, 64)).shape == (1, model.num_features)


# ---------------------------------------------------------------------------------------------------
# The script that regenerates the reference (scripts/make_timm_reference.py)

MAKE_REFERENCE = Path(__file__).parents[1] / "scripts" / "make_timm_reference.py"


def run_make_reference(*args, python_path=None, block_timm=False):
    """The script in a fresh interpreter; with `block_timm`, as where timm is not installed."""
    code = textwrap.dedent(f"""
        import runpy, sys
        class NoTimm:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "timm":
                    raise ModuleNotFoundError("No module named 'timm'", name="timm")
        if {block_timm!r}:
            sys.meta_path.insert(0, NoTimm())
        sys.argv = ["make_timm_reference.py", *{list(map(str, args))!r}]
        runpy.run_path({str(MAKE_REFERENCE)!r}, run_name="__main__")
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [python_path, os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


def test_the_reference_script_without_timm_says_so_and_writes_nothing(tmp_path):
    output = tmp_path / "reference.json"
    done = run_make_reference("--output", output, block_timm=True)
    assert done.returncode == 2
    assert "timm is not installed" in done.stderr and "bash scripts/install.sh timm" in done.stderr
    assert "Traceback" not in done.stderr
    assert not output.exists()


def test_the_reference_script_writes_the_format_of_the_reference(tmp_path):
    """timm is not installed here: a stand-in `timm` builds resfam's own models, whose layout is timm's
    (the tests above check it). Updating an ID of a copy of the reference must give its entry back,
    within the logits' tolerance, and leave every other entry as it was."""
    stand_in = tmp_path / "timm"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text(textwrap.dedent(f"""
        __version__ = {REFERENCE["timm"]!r}

        def create_model(name, pretrained=False):
            import resfam
            return resfam.create_model(name)
    """))
    output = tmp_path / "reference.json"
    original = (Path(__file__).parent / "fixtures" / "timm-reference.json").read_text()
    output.write_text(original)
    updated = ["resnest14d"]
    done = run_make_reference(*updated, "--output", output, python_path=str(tmp_path))
    assert done.returncode == 0, done.stderr
    made = json.loads(output.read_text())
    assert original == json.dumps(REFERENCE, indent=1)  # the script writes the file as it was written
    keys = ("timm", "seed", "input")
    assert {key: made[key] for key in keys} == {key: REFERENCE[key] for key in keys}
    assert list(made["models"]) == NAMES
    assert {n: m for n, m in made["models"].items() if n not in updated} == \
        {n: m for n, m in MODELS.items() if n not in updated}
    for name in updated:
        new, ref = made["models"][name], MODELS[name]
        assert list(new) == list(ref)  # the same fields, in the same order
        assert {k: new[k] for k in ("family", "params", "state_dict", "argmax")} == \
            {k: ref[k] for k in ("family", "params", "state_dict", "argmax")}
        tol = 1e-4 * ref["logits_norm"]
        assert max(abs(a - b) for a, b in zip(new["logits_first16"], ref["logits_first16"], strict=False)) <= tol
        assert abs(new["logits_sum"] - ref["logits_sum"]) <= tol and abs(new["logits_norm"] - ref["logits_norm"]) <= tol
