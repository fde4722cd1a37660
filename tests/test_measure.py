"""The measurement contract (docs/measurement.md), computed the fast way, equals the contract computed literally."""
import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import resfam
from resfam.cards import measure, meta_kernels

SMALL_MODELS = ["resnet18", "resnest14d", "resnet26"]


def literal_measurement(model_id: str, image_size: int) -> dict:
    """The contract as docs/measurement.md writes it: default initialisation, a real forward pass, a real buffer."""
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


@pytest.mark.parametrize("model_id, image_size", [("resnet18", 224), ("resnest14d", 97), ("res2net50_14w_8s", 64)])
def test_activations_come_from_the_flops_trace_and_equal_fvcores_own_analysis(model_id, image_size, monkeypatch):
    traces = []
    original = measure.JitModelAnalysis.by_operator

    def counted(self, *args, **kwargs):
        traces.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(measure.JitModelAnalysis, "by_operator", counted)
    fast = measure.measure_model(model_id, [image_size])[0]
    assert len(traces) == 1  # one trace for both counts
    assert (fast.flops, fast.activations) == (measure.naive_flops(model_id, image_size),
                                              measure.naive_activations(model_id, image_size))


def test_the_uncounted_operators_are_those_of_the_flop_analysis_alone():
    model = measure.build_for_counting("resnest14d")
    image = torch.zeros(1, 3, 64, 64)
    analysis = measure.FlopCountAnalysis(model, image).unsupported_ops_warnings(False)
    analysis.total()
    assert measure._fvcore_count(model, image, measure.ON_CPU).uncounted_ops == dict(analysis.unsupported_ops())


def test_the_stage_layout_is_read_from_the_modules():
    assert measure.stage_layout(measure.build_for_counting("resnet18")) == {
        "stem_widths": [64],
        "stages": [{"blocks": 2, "block": "BasicBlock", "width": width, "inner_width": width}
                   for width in (64, 128, 256, 512)]}
    deep = measure.stage_layout(measure.build_for_counting("resnext50d_32x4d"))
    assert deep["stem_widths"] == [32, 32, 64]
    assert [(s["blocks"], s["block"], s["width"], s["inner_width"]) for s in deep["stages"]] == [
        (3, "Bottleneck", 256, 128), (4, "Bottleneck", 512, 256), (6, "Bottleneck", 1024, 512),
        (3, "Bottleneck", 2048, 1024)]
    res2net = measure.stage_layout(measure.build_for_counting("res2net101_26w_4s"))
    assert [s["blocks"] for s in res2net["stages"]] == [3, 4, 23, 3]
    assert res2net["stages"][0]["inner_width"] == 26 * 4  # every slice of the first 1x1


def test_one_build_serves_every_image_size():
    at_160, at_256 = measure.measure_model("resnet18", [160, 256])
    assert (at_160.image_size, at_256.image_size) == (160, 256)
    assert at_160.flops == measure.naive_flops("resnet18", 160)
    assert at_256.flops == measure.naive_flops("resnet18", 256)
    assert at_160.parameters == at_256.parameters and at_160.file_size == at_256.file_size
    assert at_160.activations < at_256.activations == measure.naive_activations("resnet18", 256)
    assert at_160.layout == at_256.layout


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

    monkeypatch.setattr(measure, "shape_only_tracing", refuse)
    count = measure.count_flops(measure.build_for_counting("resnet18"), 64)
    assert count.method == measure.ON_CPU
    assert count.total == measure.naive_flops("resnet18", 64)


def test_a_failed_meta_trace_of_a_model_moved_to_meta_falls_back_on_fresh_cpu_tensors(monkeypatch):
    def refuse():
        raise RuntimeError("no meta kernel")

    monkeypatch.setattr(measure, "shape_only_tracing", refuse)
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


# One model per kind of block: basic, bottleneck with avg-down shortcut, anti-aliased, grouped,
# split attention with radix 4, Res2Net's hierarchical slices.
BLOCK_KINDS = ["resnet18", "resnet50d", "resnetblur50", "resnext50_32x4d", "resnest50d_4s2x40d", "res2net50_14w_8s"]


@pytest.mark.parametrize("model_id", BLOCK_KINDS)
def test_the_shape_only_trace_of_every_kind_of_block_is_the_cpu_trace(model_id):
    model = measure.build_for_counting(model_id)
    on_cpu = measure._fvcore_count(model, torch.zeros(1, 3, 97, 97), measure.ON_CPU)
    on_shapes = measure.count_flops(model, 97)  # an odd size: ceil-mode and padding edges
    assert on_shapes.method == measure.ON_SHAPES
    assert (on_shapes.total, on_shapes.uncounted_ops) == (on_cpu.total, on_cpu.uncounted_ops)


def _meta(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


# (operator, arguments, keyword arguments): cases the short kernels work out and cases they hand back
# to torch's kernel; either way the result must be what torch's own meta kernel returns.
SHAPE_KERNEL_CASES = [
    ("aten::add.Tensor", (_meta(2, 8, 5, 5), _meta(2, 8, 5, 5)), {}),
    ("aten::add.Tensor", (_meta(2, 8, 5, 5), _meta(8, 1, 1)), {"alpha": 2}),  # broadcast
    ("aten::add.Tensor", (_meta(1, 8), _meta(3, 1)), {}),  # both sides broadcast
    ("aten::add.Tensor", (_meta(2, 8), _meta(2, 8, dtype=torch.float64)), {}),  # type promotion: torch's
    ("aten::add.Tensor", (_meta(2, 8), _meta(3, 8)), {}),  # cannot broadcast: torch's error
    ("aten::add.Tensor", (_meta(4, 6).t(), _meta(6, 4)), {}),  # not contiguous: torch's
    ("aten::mul.Tensor", (_meta(2, 8, 5, 5), _meta(2, 8, 1, 1)), {}),
    ("aten::mul.Tensor", (_meta(2, 8, dtype=torch.int64), _meta(2, 8, dtype=torch.int64)), {}),  # integers
    ("aten::sigmoid", (_meta(2, 8, 1, 1),), {}),
    ("aten::_softmax", (_meta(2, 2, 1, 64), 1, False), {}),
    ("aten::_softmax", (_meta(2, 1, 2, 64).transpose(1, 2), 1, False), {}),  # ResNeSt's, transposed
    ("aten::_softmax", (_meta(2, 2, 1, 64, dtype=torch.float16), 1, True), {}),  # half to float: torch's
    ("aten::_softmax", (_meta(2, 2, 1, 64), 4, False), {}),  # no such dimension: torch's error
    ("aten::mean.dim", (_meta(2, 8, 7, 7), [2, 3], True), {}),
    ("aten::mean.dim", (_meta(2, 8, 7, 7), [-1, -2]), {}),
    ("aten::mean.dim", (_meta(2, 8, 7, 7), None), {}),  # every dimension: torch's
    ("aten::mean.dim", (_meta(2, 8, 7, 7), [4]), {}),  # no such dimension: torch's error
    ("aten::mean.dim", (_meta(2, 8, 7, 7), [1]), {"dtype": torch.float64}),  # a cast: torch's
    ("aten::sum.dim_IntList", (_meta(2, 4, 8, 7, 7), [1]), {}),
    ("aten::sum.dim_IntList", (_meta(2, 4, 8, 7, 7), [1, -4]), {}),  # the same dimension twice: torch's error
    ("aten::cat", ([_meta(2, 3, 5, 5), _meta(2, 5, 5, 5)], 1), {}),
    ("aten::cat", ([_meta(2, 3, 5, 5), _meta(2, 3, 5, 5)], -4), {}),
    ("aten::cat", ([_meta(2, 3, 5, 5), _meta(2, 3, 4, 5)], 1), {}),  # sizes differ elsewhere: torch's error
    ("aten::cat", ([_meta(2, 3, 5, 5), _meta(2, 3, 5, 5)], 4), {}),  # no such dimension: torch's error
    ("aten::addmm", (_meta(10), _meta(2, 16), _meta(10, 16).t()), {}),  # a linear layer's weight.t()
    ("aten::addmm", (_meta(3, 10), _meta(2, 16), _meta(16, 10)), {}),  # bias cannot broadcast: torch's error
    ("aten::max_pool2d_with_indices", (_meta(1, 4, 13, 13), [3, 3], [2, 2], [1, 1]), {}),
    ("aten::max_pool2d_with_indices", (_meta(1, 4, 13, 12), [3, 3], [2, 2], [0, 0], [1, 1], True), {}),  # ceil
    # ceil mode, and the last window would start in the padding
    ("aten::max_pool2d_with_indices", (_meta(1, 4, 6, 6), [2, 2], [2, 2], [1, 1], [1, 1], True), {}),
    ("aten::max_pool2d_with_indices", (_meta(4, 13, 13), [3, 3]), {}),  # no batch dimension: torch's
    ("aten::avg_pool2d", (_meta(1, 4, 13, 13), [2, 2], [2, 2], [0, 0], True, False), {}),
    ("aten::avg_pool2d", (_meta(1, 4, 13, 13), [3], [], [1]), {}),
    # padding over half the window: torch's error
    ("aten::avg_pool2d", (_meta(1, 4, 13, 13), [2, 2], [2, 2], [2, 2]), {}),
    ("aten::reflection_pad2d", (_meta(1, 4, 13, 12), [1, 1, 2, 0]), {}),
    ("aten::reflection_pad2d", (_meta(1, 4, 3, 3), [3, 1, 1, 1]), {}),  # as wide as the side: torch's error
    ("aten::reflection_pad2d", (_meta(4, 3, 3), [1, 1, 1, 1]), {}),  # no batch dimension: torch's
    ("aten::reflection_pad2d", (_meta(1, 4, 3, 3), [1, 1]), {}),  # two pads, not four: torch's error
    ("aten::native_batch_norm", (_meta(2, 8, 5, 5), _meta(8), _meta(8), _meta(8), _meta(8), False, 0.1, 1e-5), {}),
    ("aten::native_batch_norm", (_meta(8), _meta(8), _meta(8), _meta(8), _meta(8), False, 0.1, 1e-5), {}),
    ("aten::_convolution", (_meta(1, 3, 17, 17), _meta(8, 3, 3, 3), None, [2, 2], [2, 2], [2, 2], False, [0, 0], 1,
                            False, False, True, True), {}),
    ("aten::_convolution", (_meta(1, 8, 9, 9), _meta(8, 4, 2, 2), None, [2, 2], [0, 0], [1, 1], True, [0, 0], 1,
                            False, False, True, True), {}),  # transposed: torch's
]


def _described(result):
    if isinstance(result, BaseException):
        return type(result).__name__
    if isinstance(result, tuple):
        return [_described(item) for item in result]
    return (tuple(result.shape), result.dtype, result.stride(), result.device.type)


def _outcome(kernel, args, kwargs):
    try:
        return _described(kernel(*args, **kwargs))
    except Exception as error:  # noqa: BLE001 - the errors are compared too
        return _described(error)


@pytest.mark.parametrize("op_name, args, kwargs", SHAPE_KERNEL_CASES,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(SHAPE_KERNEL_CASES)])
def test_each_shape_only_kernel_returns_what_torchs_meta_kernel_returns(op_name, args, kwargs):
    stock = {op.name(): kernel for op, kernel in meta_kernels._python_meta_kernels().items()}[op_name]
    ours = meta_kernels._or_else(meta_kernels._SHAPE_KERNELS[op_name], stock)
    expected = _outcome(stock, args, kwargs)
    assert _outcome(ours, args, kwargs) == expected


def test_every_shape_only_kernel_replaces_a_python_kernel_of_torch():
    """A kernel for an operator torch implements in C++ would never be registered: the table would lie."""
    python_kernels = {op.name() for op in meta_kernels._python_meta_kernels()}
    assert set(meta_kernels._SHAPE_KERNELS) <= python_kernels


def test_measuring_every_kind_of_block_imports_neither_dynamo_nor_sympy():
    """torch's Python kernels import torch._dynamo and sympy on first use (about a second of every cold run)."""
    script = ("import sys, torch\n"
              "from resfam.cards import measure\n"
              f"for model_id in {BLOCK_KINDS!r}:\n"
              "    assert measure.measure_model(model_id, [97])[0].flops_method == measure.ON_SHAPES\n"
              "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=Path(resfam.__file__).parent.parent)
    assert result.stdout.strip() == "[]"


def test_shape_only_tracing_blocks_nest_and_the_outermost_restores_torchs_kernels():
    def meta_kernels():
        return [line for line in torch._C._dispatch_dump("aten::add.Tensor").splitlines() if "Meta" in line]

    torchs = meta_kernels()
    with measure.shape_only_tracing():
        ours = meta_kernels()
        with measure.shape_only_tracing():
            assert meta_kernels() == ours  # registered once
        assert meta_kernels() == ours and ours != torchs
        assert measure.count_flops(measure.build_for_counting("resnet18"), 64).method == measure.ON_SHAPES
    assert meta_kernels() == torchs


def test_fused_attention_counts_as_the_matrix_products_it_replaces():
    """aten::scaled_dot_product_attention (transformers) has no fvcore handle: counted as its two matrix
    products, the same FLOPs and activations as attention written out with matmul and softmax."""
    from fvcore.nn import FlopCountAnalysis

    from resfam.cards.measure import TRACE_HANDLES

    class Attention(torch.nn.Module):
        def __init__(self, fused: bool):
            super().__init__()
            self.fused = fused

        def forward(self, x):
            q, k, v = x, x * 2, x[..., :6]
            if self.fused:
                return torch.nn.functional.scaled_dot_product_attention(q, k, v)
            return (q @ k.transpose(-2, -1) / 8 ** 0.5).softmax(dim=-1) @ v

    x = torch.randn(2, 3, 16, 8)
    counts = {}
    for fused in (True, False):
        analysis = FlopCountAnalysis(Attention(fused), x).set_op_handle(**TRACE_HANDLES)
        counts[fused] = analysis.by_operator()
        assert "aten::scaled_dot_product_attention" not in analysis.unsupported_ops()
    assert counts[True]["flops"] == counts[False]["flops"] == 2 * 3 * 16 * 16 * (8 + 6)
    assert counts[True]["activations"] == counts[False]["activations"] == 2 * 3 * 16 * 6 + 2 * 3 * 16 * 16


@pytest.mark.parametrize("model_id", BLOCK_KINDS)
def test_the_trace_without_module_scopes_counts_what_fvcores_scoped_trace_counts(model_id, monkeypatch):
    """fvcore pushes a scope per module to break counts down by module; the engine reads only the
    totals, so it traces without them (measure._without_module_scopes): nothing it reports may change."""
    from fvcore.nn import jit_analysis

    scoped_trace = jit_analysis._get_scoped_trace_graph
    model = measure.build_for_counting(model_id).to("meta")
    image = torch.zeros(1, 3, 97, 97, device="meta")
    with measure.shape_only_tracing():
        unscoped = measure._fvcore_count(model, image, measure.ON_SHAPES)
        assert jit_analysis._get_scoped_trace_graph is scoped_trace  # put back after the count
        monkeypatch.setattr(measure, "_without_module_scopes", contextlib.nullcontext)
        scoped = measure._fvcore_count(model, image, measure.ON_SHAPES)
    assert unscoped == scoped


def test_a_measuring_process_that_stops_recording_source_locations_counts_the_same():
    """The tracer's per-node record of the Python stack is switched off for good in a measuring worker's
    child (meta_kernels.stop_recording_source_locations): it takes effect, and the counts stay."""
    script = ("import torch\n"
              "from resfam.cards import measure, meta_kernels\n"
              "def ranges():\n"
              "    graph, _ = torch.jit._get_trace_graph(torch.nn.Conv2d(3, 4, 3), (torch.zeros(1, 3, 8, 8),))\n"
              "    return [node.sourceRange() for node in graph.nodes() if node.kind().startswith('aten::')]\n"
              "def counts():\n"
              f"    return [measure.measure_model(model_id, [97])[0] for model_id in {BLOCK_KINDS[:4]!r}]\n"
              "before, recorded = counts(), ranges()\n"
              "stop = meta_kernels.stop_recording_source_locations\n"
              "assert stop() and stop()  # a second call changes nothing\n"
              "assert all(recorded) and not any(ranges()), (recorded, ranges())\n"
              "assert counts() == before\n"
              "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=Path(resfam.__file__).parent.parent)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
