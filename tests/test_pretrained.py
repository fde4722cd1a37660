"""Pretrained weights, fully offline: the tests save checkpoints, serve them by file:// URLs through the
registry, and keep torch.hub's cache in a temporary TORCH_HOME."""
import argparse
import dataclasses
import hashlib
import io
import shutil
import threading
from collections import OrderedDict

import pytest
import torch

import resfam
from resfam import PretrainedLoadError, create_model, registry
from resfam.hub import hash_prefix

NAME = "resnet18"  # the smallest registered model; the loader does not depend on the architecture


def to_bytes(checkpoint) -> bytes:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def weights(deterministic_fill):
    """A stand-in for the published resnet18 checkpoint: its state_dict under the reference fill.
    Shared by the tests, so they build changed copies and never modify its tensors."""
    return deterministic_fill(create_model(NAME)).state_dict()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert torch.hub.get_dir() == str(home / "hub"), "torch.hub.set_dir() was called elsewhere"
    yield home
    shutil.rmtree(home, ignore_errors=True)  # pytest keeps recent tmp dirs; these hold 45 MB files


@pytest.fixture
def use_url(monkeypatch):
    """use_url(url): register `url` as NAME's weights for this test only."""

    def use_url(url):
        entry = registry.get_model_entry(NAME)
        patched = dataclasses.replace(entry, config=dataclasses.replace(entry.config, url=url))
        monkeypatch.setitem(registry._REGISTRY, NAME, patched)

    return use_url


@pytest.fixture
def serve(tmp_path, torch_home, use_url):
    """serve(checkpoint, name_hash="right") -> (url, cached file): save `checkpoint` (an object, or the
    bytes of a file) and register it by file:// URL. Its file name carries the file's true sha256
    prefix ("right"), a wrong one ("wrong"), or none (None)."""
    served = tmp_path / "served"
    served.mkdir()

    def serve(checkpoint, name_hash="right"):
        data = checkpoint if isinstance(checkpoint, bytes) else to_bytes(checkpoint)
        digest = sha256(data)[:8]
        suffix = {
            "right": f"-{digest}",
            "wrong": "-" + "".join("0" if c != "0" else "1" for c in digest),  # differs in every digit
            None: "",
        }[name_hash]
        path = served / f"{NAME}{suffix}.pth"
        path.write_bytes(data)
        url = path.as_uri()
        use_url(url)
        return url, torch_home / "hub" / "checkpoints" / path.name

    yield serve
    shutil.rmtree(served, ignore_errors=True)


def assert_same_weights(state, expected):
    assert list(state) == list(expected)
    for key in expected:
        assert torch.equal(state[key], expected[key]), key


def load_error(**kwargs) -> PretrainedLoadError:
    with pytest.raises(PretrainedLoadError) as info:
        create_model(NAME, pretrained=True, **kwargs)
    err = info.value
    # the message must stand alone: no chained traceback in front of it
    assert err.__cause__ is None and err.__suppress_context__
    assert f"'{NAME}'" in str(err)
    return err


# ---------------------------------------------------------------------------------------------------
# Loading


def test_pretrained_gives_the_checkpoint_weights_and_outputs(serve, weights):
    url, cached = serve(weights)
    model = create_model(NAME, pretrained=True).eval()
    assert_same_weights(model.state_dict(), weights)

    reference = create_model(NAME).eval()
    reference.load_state_dict(weights)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_download_is_cached_and_reused(serve, weights, tmp_path):
    url, cached = serve(weights)
    create_model(NAME, pretrained=True)
    assert cached.read_bytes() == to_bytes(weights)
    assert resfam.hub.cached_path(url) == str(cached)

    # the source gone, the cached copy is what loads
    (tmp_path / "served" / cached.name).unlink()
    assert_same_weights(create_model(NAME, pretrained=True).state_dict(), weights)


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_training_checkpoint_is_unwrapped(serve, weights, wrapper):
    serve({wrapper: weights, "epoch": 90, "optimizer": {"lr": 0.1}})
    assert_same_weights(create_model(NAME, pretrained=True).state_dict(), weights)


def test_file_name_without_hash_loads_unchecked(serve, weights):
    url, _ = serve(weights, name_hash=None)
    assert hash_prefix(url) is None
    assert_same_weights(create_model(NAME, pretrained=True).state_dict(), weights)


@pytest.mark.parametrize(
    "url, prefix",
    [
        ("https://example.org/v1/resnet50_ram-a26f946b.pth", "a26f946b"),
        ("file:///tmp/resnet18-5c106cde.pth", "5c106cde"),
        ("https://example.org/resnet18.pth", None),
        ("https://example.org/resnet18-final.pth", None),  # not hex
        ("https://example.org/a26f946b-dir/resnet18.pth", None),  # only the file name counts
    ],
)
def test_hash_prefix(url, prefix):
    assert hash_prefix(url) == prefix


@pytest.mark.parametrize("num_classes", [1000, 10])
def test_checkpoint_from_before_batchnorm_counted_batches(serve, weights, num_classes):
    # torchvision's original ResNet weights (2017) have no num_batches_tracked; BatchNorm fills it in
    old = {k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")}
    serve(old)
    state = create_model(NAME, pretrained=True, num_classes=num_classes).state_dict()
    backbone = [k for k in old if num_classes == 1000 or not k.startswith("fc.")]
    assert_same_weights({k: state[k] for k in backbone}, {k: old[k] for k in backbone})
    assert all(int(v) == 0 for k, v in state.items() if k.endswith("num_batches_tracked"))


def test_missing_batch_counter_of_a_current_checkpoint(serve, weights):
    # the module versions say the checkpoint is recent enough to have the counter: it is really missing
    current = OrderedDict((k, v) for k, v in weights.items() if k != "bn1.num_batches_tracked")
    current._metadata = weights._metadata
    serve(current)
    assert load_error().missing == ["bn1.num_batches_tracked"]


@pytest.mark.parametrize("num_classes", [1000, 0])
def test_a_pretrained_model_is_built_without_initialising_what_it_loads(serve, weights, monkeypatch, num_classes):
    serve(weights)
    initialised = []
    kaiming_normal = torch.nn.init.kaiming_normal_
    monkeypatch.setattr(torch.nn.init, "kaiming_normal_", lambda tensor, *args, **kwargs:
                        initialised.append(tensor) or kaiming_normal(tensor, *args, **kwargs))
    model = create_model(NAME, pretrained=True, num_classes=num_classes).eval()
    assert initialised == []

    # the same model as one initialised at random and then loaded
    reference = create_model(NAME, num_classes=num_classes).eval()
    assert initialised
    resfam.hub.load_pretrained(reference, resfam.get_model_config(NAME), NAME)
    assert_same_weights(model.state_dict(), reference.state_dict())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))


def test_the_new_head_of_a_pretrained_model_is_initialised_as_a_new_layer_is(serve, weights):
    serve(weights)
    torch.manual_seed(1)
    state = create_model(NAME, pretrained=True, num_classes=10).state_dict()
    torch.manual_seed(1)
    head = torch.nn.Linear(512, 10)  # and nothing before it drew from the generator
    assert torch.equal(state["fc.weight"], head.weight) and torch.equal(state["fc.bias"], head.bias)


def test_no_weight_init_leaves_other_threads_initialising():
    filled = {}

    def elsewhere():
        filled["other thread"] = torch.nn.init.ones_(torch.zeros(3))

    with resfam.hub.no_weight_init():
        filled["this thread"] = torch.nn.init.ones_(torch.zeros(3))
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert torch.equal(filled["this thread"], torch.zeros(3)) and torch.equal(filled["other thread"], torch.ones(3))


# ---------------------------------------------------------------------------------------------------
# A new head for fine-tuning


def test_num_classes_keeps_backbone_and_gives_a_new_head(serve, weights):
    serve(weights)
    model = create_model(NAME, pretrained=True, num_classes=10).eval()
    state = model.state_dict()
    assert_same_weights({k: v for k, v in state.items() if not k.startswith("fc.")},
                        {k: v for k, v in weights.items() if not k.startswith("fc.")})
    assert state["fc.weight"].shape == (10, 512) and state["fc.bias"].shape == (10,)
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)


def test_num_classes_zero_loads_the_backbone(serve, weights):
    serve(weights)
    model = create_model(NAME, pretrained=True, num_classes=0)
    assert_same_weights(model.state_dict(), {k: v for k, v in weights.items() if not k.startswith("fc.")})


def test_new_head_does_not_excuse_other_mismatches(serve, weights):
    bad = {k: v for k, v in weights.items() if k != "layer2.0.bn1.weight"}
    serve(bad)
    err = load_error(num_classes=10)
    assert err.missing == ["layer2.0.bn1.weight"]


# ---------------------------------------------------------------------------------------------------
# Failures: one error type, naming the model, the URL, the keys, and the fix


def test_hash_mismatch(serve, weights):
    url, cached = serve(weights, name_hash="wrong")
    err = load_error()
    assert url in str(err) and "sha256" in str(err) and hash_prefix(url) in str(err)
    assert not cached.exists()  # a file failing its hash is never cached


def test_truncated_download(serve, weights):
    data = to_bytes(weights)
    url, cached = serve(data[: len(data) // 2])  # its name carries its own hash: the read must fail
    err = load_error()
    assert url in str(err) and "corrupt" in str(err)
    assert f"delete the cached file {cached}" in str(err)


def test_corrupt_cached_file_and_the_fix(serve, weights):
    url, cached = serve(weights)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a checkpoint")  # as a damaged cache would hold it
    err = load_error()
    assert err.path == str(cached) and str(cached) in str(err)

    cached.unlink()  # what the message says to do
    assert_same_weights(create_model(NAME, pretrained=True).state_dict(), weights)


def test_download_failure(tmp_path, torch_home, use_url):
    url = (tmp_path / "nowhere" / "resnet18-01234567.pth").as_uri()
    use_url(url)
    err = load_error()
    assert url in str(err) and "download failed" in str(err)


def test_missing_key(serve, weights):
    url, _ = serve({k: v for k, v in weights.items() if k != "layer1.0.bn1.running_mean"})
    err = load_error()
    assert err.missing == ["layer1.0.bn1.running_mean"] and not err.unexpected and not err.mismatched
    assert "missing from the checkpoint (1): layer1.0.bn1.running_mean" in str(err)
    assert url in str(err)


def test_unexpected_key(serve, weights):
    serve({**weights, "head.extra.weight": torch.zeros(3)})
    err = load_error()
    assert err.unexpected == ["head.extra.weight"] and not err.missing and not err.mismatched
    assert "unexpected in the checkpoint (1): head.extra.weight" in str(err)


def test_wrong_shape(serve, weights):
    serve({**weights, "conv1.weight": torch.zeros(64, 3, 3, 3)})
    err = load_error()
    assert err.mismatched == [("conv1.weight", (64, 3, 3, 3), (64, 3, 7, 7))]
    assert "conv1.weight (checkpoint (64, 3, 3, 3), model (64, 3, 7, 7))" in str(err)


def test_many_mismatched_keys_are_summarised(serve, weights):
    serve({k: v for k, v in weights.items() if not k.startswith("layer4.")})
    err = load_error()
    assert len(err.missing) > 5
    assert err.missing[0] in str(err) and err.missing[-1] not in str(err)
    assert f"... and {len(err.missing) - 5} more" in str(err)


def test_checkpoint_with_the_wrong_model(serve):
    serve(create_model("resnet34").state_dict())  # same stem and head, deeper stages
    err = load_error()
    assert "layer1.2.conv1.weight" in err.unexpected
    assert "resnet18" in str(err) and "layer1.2.conv1.weight" in str(err)


def test_not_a_state_dict(serve):
    serve([1, 2, 3])
    assert "not a state_dict" in str(load_error())


def test_pickled_objects_are_refused(serve, weights):
    serve({"state_dict": weights, "args": argparse.Namespace(lr=0.1)})
    err = load_error()
    assert "besides tensors" in str(err) and "argparse.Namespace" in str(err)


def test_model_is_untouched_when_loading_fails(serve, weights):
    serve({**weights, "conv1.weight": torch.zeros(64, 3, 3, 3)})
    model = create_model(NAME)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PretrainedLoadError):
        resfam.hub.load_pretrained(model, resfam.get_model_config(NAME), NAME)
    assert_same_weights(model.state_dict(), before)


def test_error_type_is_exported():
    assert resfam.PretrainedLoadError is resfam.hub.PretrainedLoadError
    assert issubclass(PretrainedLoadError, RuntimeError)
