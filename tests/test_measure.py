"""The measurement contract (DESIGN.md), computed the fast way, equals the contract computed literally."""
import io

import pytest
import torch
import torch.nn as nn

import resfam
from resfam.cards import measure

SMALL_MODELS = ["resnet18", "resnest14d", "resnet26"]


def literal_measurement(model_id: str, image_size: int) -> dict:
    """The contract as DESIGN.md writes it: default initialisation, a real forward pass, a real buffer."""
    model = resfam.create_model(model_id)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "flops": measure.naive_flops(model_id, image_size),
        "file_size": len(buffer.getvalue()),
        "layers": model.nominal_depth,
    }


@pytest.mark.parametrize("model_id", SMALL_MODELS)
def test_measurement_equals_the_contract_computed_literally(model_id):
    fast = measure.measure_model(model_id, [224])[0]
    assert fast.flops_method == measure.ON_SHAPES  # the cheap path was taken, not the fallback
    assert {"parameters": fast.parameters, "flops": fast.flops, "file_size": fast.file_size,
            "layers": fast.layers} == literal_measurement(model_id, 224)


def test_one_build_serves_every_image_size():
    at_160, at_256 = measure.measure_model("resnet18", [160, 256])
    assert (at_160.image_size, at_256.image_size) == (160, 256)
    assert at_160.flops == measure.naive_flops("resnet18", 160)
    assert at_256.flops == measure.naive_flops("resnet18", 256)
    assert at_160.parameters == at_256.parameters and at_160.file_size == at_256.file_size


@pytest.mark.parametrize("storage_bytes_skipped", [True, False])
def test_checkpoint_size_is_the_length_torch_save_writes(monkeypatch, storage_bytes_skipped):
    if not storage_bytes_skipped:  # a torch without skip_data writes the bytes into the counter
        monkeypatch.setattr(torch.serialization, "skip_data", None, raising=False)
    model = measure.build_for_counting("resnest14d")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert measure.checkpoint_size(model) == len(buffer.getvalue())


def test_no_weight_init_is_a_noop_inside_and_restored_after():
    original = nn.init.kaiming_normal_
    tensor = torch.full((4, 4), 7.0)
    with measure.no_weight_init():
        assert nn.init.kaiming_normal_(tensor) is tensor
        nn.init.ones_(tensor)
        assert torch.equal(tensor, torch.full((4, 4), 7.0))
    assert nn.init.kaiming_normal_ is original


def test_a_failed_meta_trace_falls_back_to_counting_on_the_cpu(monkeypatch):
    def refuse():
        raise RuntimeError("no meta kernel")

    monkeypatch.setattr(measure, "_shape_only_tracing", refuse)
    count = measure.count_flops(measure.build_for_counting("resnet18"), 64)
    assert count.method == measure.ON_CPU
    assert count.total == measure.naive_flops("resnet18", 64)


def test_a_failed_meta_trace_of_a_model_moved_to_meta_falls_back_on_fresh_cpu_tensors(monkeypatch):
    def refuse():
        raise RuntimeError("no meta kernel")

    monkeypatch.setattr(measure, "_shape_only_tracing", refuse)
    at_64, at_96 = measure.measure_model("resnet18", [64, 96])
    assert at_64.flops_method == at_96.flops_method == measure.ON_CPU
    assert (at_64.flops, at_96.flops) == (measure.naive_flops("resnet18", 64), measure.naive_flops("resnet18", 96))


class _CumulativeHead(nn.Module):
    """A convolution, then an operator fvcore cannot count and its convention does not exclude."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.relu_then_cumsum(self.conv(x))

    @staticmethod
    def relu_then_cumsum(x):
        return torch.relu(x).cumsum(1)


def test_uncounted_operators_are_reported_and_the_conventional_ones_are_not():
    count = measure.count_flops(_CumulativeHead().eval(), 16)
    assert count.total == 8 * 3 * 3 * 3 * 14 * 14  # the convolution's multiply-adds
    assert count.unexpected_uncounted_ops == {"aten::cumsum": 1}
    block_ops = measure.measure_model("resnest14d", [224])[0]
    assert block_ops.uncounted_ops["aten::add"] > 0 and block_ops.unexpected_uncounted_ops == {}



class _UnusualLayers(nn.Module):
    """Convolutions the shape-only kernels work out themselves (strided, dilated, grouped, 1-d) or hand
    back to torch's (transposed), and a batch norm after them."""

    def __init__(self):
        super().__init__()
        self.dilated = nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2)
        self.grouped = nn.Conv2d(8, 8, 3, padding="same", groups=4)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.norm = nn.BatchNorm2d(4)
        self.flat = nn.Conv1d(4, 2, 3, stride=2)

    def forward(self, x):
        x = self.norm(self.up(self.grouped(self.dilated(x))))
        return self.flat(x.flatten(2))


def test_the_shape_only_trace_counts_what_a_cpu_trace_counts():
    model = _UnusualLayers().eval()
    on_shapes = measure.count_flops(model, 17)
    on_cpu = measure._fvcore_count(model, torch.zeros(1, 3, 17, 17), measure.ON_CPU)
    assert on_shapes.method == measure.ON_SHAPES
    assert (on_shapes.total, on_shapes.uncounted_ops) == (on_cpu.total, on_cpu.uncounted_ops)
