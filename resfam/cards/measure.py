"""Measure one model per the measurement contract of DESIGN.md, spending nothing counting does not need.

    Parameters  sum(p.numel() for p in model.parameters()), default 1000-class head
    FLOPs       fvcore FlopCountAnalysis(model.eval(), torch.zeros(1, 3, S, S)).total()
    File Size   bytes of torch.save(model.state_dict())
    Layers      model.nominal_depth

Every figure depends only on the model's structure and tensor shapes, never on weight values, so:

- the model is built with `torch.nn.init` made a no-op (`no_weight_init`): parameters keep whatever
  memory `torch.empty` gave them, which costs nothing;
- the file size is the byte count of a real `torch.save` into a sink that only counts
  (`checkpoint_size`), with the storage bytes skipped where torch allows it: the archive layout, and so
  its size, is the same;
- FLOPs are counted on a trace of the model on the meta device (`count_flops`): the same TorchScript
  trace fvcore makes on CPU, but every operator only computes its output shape. Should that trace fail,
  the count falls back to a real forward pass on CPU, under `no_grad`.

One model instance serves every image size a card set needs (`measure_model`), and is then moved to
the meta device rather than copied there. `naive_flops` is the
contract computed literally (default initialisation, a real forward pass): the tests and the benchmark
compare against it.

This module imports torch and fvcore: only the measuring worker process (and the tests) import it.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import torch
import torch.nn as nn
from fvcore.nn import FlopCountAnalysis

from resfam.registry import create_model

# fvcore's convention counts multiply-adds of the compute-heavy operators (convolutions, matrix
# products, normalisations) and leaves these out on purpose: elementwise arithmetic, activations,
# pooling, padding and reductions. An unsupported operator outside this list may hold multiply-adds
# the total leaves out, so it is reported (`FlopCount.unexpected_uncounted_ops`).
CONVENTIONALLY_UNCOUNTED_OPS = frozenset(
    "aten::" + name
    for name in (
        "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "abs", "exp", "log",
        "sqrt", "rsqrt", "pow", "reciprocal", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardtanh",
        "hardtanh_", "relu6", "gelu", "silu", "silu_", "hardswish", "hardswish_", "hardsigmoid",
        "hardsigmoid_", "leaky_relu", "leaky_relu_", "elu", "elu_", "mish", "softmax", "log_softmax",
        "sum", "mean", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
        "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_avg_pool1d", "pad", "reflection_pad1d",
        "reflection_pad2d", "replication_pad1d", "replication_pad2d", "dropout_", "feature_dropout",
        "alpha_dropout", "clone",
    )
)

# Which way FLOPs were counted, recorded with every measurement.
ON_SHAPES = "meta trace"
ON_CPU = "cpu forward"


@dataclass(frozen=True)
class FlopCount:
    """fvcore's total and the operators it met but could not count (name -> number of calls)."""

    total: int
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    method: str = ON_SHAPES

    @property
    def unexpected_uncounted_ops(self) -> dict[str, int]:
        return {op: n for op, n in self.uncounted_ops.items() if op not in CONVENTIONALLY_UNCOUNTED_OPS}


@dataclass(frozen=True)
class ModelMeasurement:
    """The measured figures of one model at one image size."""

    model_id: str
    image_size: int
    parameters: int
    flops: int
    file_size: int
    layers: int
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    unexpected_uncounted_ops: dict[str, int] = field(default_factory=dict)  # see FlopCount
    flops_method: str = ON_SHAPES

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Building


@contextlib.contextmanager
def no_weight_init() -> Iterator[None]:
    """Every in-place initialiser of `torch.nn.init` (kaiming_normal_, uniform_, ones_, ...) does
    nothing inside this block: layers and models keep the memory `torch.empty` gave them."""
    initialisers = {
        name: function
        for name, function in vars(nn.init).items()
        if name.endswith("_") and not name.startswith("_") and callable(function)
    }

    def leave_as_is(tensor, *args, **kwargs):
        return tensor

    try:
        for name in initialisers:
            setattr(nn.init, name, leave_as_is)
        yield
    finally:
        for name, function in initialisers.items():
            setattr(nn.init, name, function)


def build_for_counting(model_id: str, **kwargs: Any) -> nn.Module:
    """The registered model `model_id`, uninitialised, in eval mode."""
    with no_weight_init():
        model = create_model(model_id, **kwargs)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Counting


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


class _ByteCounter:
    """A write-only file that keeps nothing but its size (and the position, for skipped bytes)."""

    def __init__(self) -> None:
        self.position = 0
        self.size = 0

    def write(self, data) -> int:
        written = memoryview(data).nbytes
        self.position += written
        self.size = max(self.size, self.position)
        return written

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.position, 2: self.size}[whence]
        self.position = base + offset
        self.size = max(self.size, self.position)
        return self.position

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass


def checkpoint_size(model: nn.Module) -> int:
    """Bytes of `torch.save(model.state_dict())`, counted as they are written."""
    sink = _ByteCounter()
    with _storage_bytes_skipped():
        torch.save(model.state_dict(), sink)
    return sink.size


def _storage_bytes_skipped():
    """`torch.serialization.skip_data` where torch has it: the archive gets the same layout with the
    storage bytes seeked over instead of written (so they are never read or checksummed)."""
    skip_data = getattr(torch.serialization, "skip_data", None)
    return skip_data() if skip_data is not None else contextlib.nullcontext()


def count_flops(model: nn.Module, image_size: int) -> FlopCount:
    """fvcore's FLOPs of `model` (an uninitialised CPU model) for one `image_size` square image.

    Counted on a meta-device copy of the model's structure when possible (no arithmetic at all), on the
    CPU otherwise. The model itself is left as it was.
    """
    return _count_flops(model, [image_size], in_place=False)[0]


def _count_flops(model: nn.Module, image_sizes: list[int], *, in_place: bool) -> list[FlopCount]:
    """`count_flops` at each of `image_sizes`, all on one meta-device version of the model: a copy, or
    with `in_place` the model itself moved to the meta device (a copy is a deep copy of every module:
    several times the cost of the move). If the meta trace fails, a moved model gets CPU tensors back,
    uninitialised, for the fallback."""
    try:
        shapes_only = model.to("meta") if in_place else _meta_copy(model)
        with _shape_only_tracing():
            return [_fvcore_count(shapes_only, torch.zeros(1, 3, size, size, device="meta"), ON_SHAPES)
                    for size in image_sizes]
    except Exception:  # an operator without a meta kernel, a torch without these internals
        logging.getLogger(__name__).debug("meta trace failed; counting on the CPU", exc_info=True)
    if in_place:
        model.to_empty(device="cpu")
    with _denormals_flushed():
        return [_fvcore_count(model, torch.zeros(1, 3, size, size), ON_CPU) for size in image_sizes]


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers are meta tensors of the same shapes (shared
    tensors stay shared); no tensor data is copied."""
    meta_tensors = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        meta = tensor.detach().to("meta")
        meta_tensors[id(tensor)] = nn.Parameter(meta, tensor.requires_grad) if isinstance(tensor, nn.Parameter) \
            else meta
    return copy.deepcopy(model, meta_tensors)


def _fvcore_count(model: nn.Module, image: torch.Tensor, method: str) -> FlopCount:
    analysis = FlopCountAnalysis(model, image)
    # fvcore logs a warning per unsupported operator and per uncalled module; the operators are
    # returned below instead, and nothing else of that output is news.
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        total = analysis.total()
    return FlopCount(int(total), dict(sorted(analysis.unsupported_ops().items())), method)


@contextlib.contextmanager
def _denormals_flushed() -> Iterator[None]:
    """Uninitialised weights may hold denormal floats, which make CPU arithmetic crawl."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


# ---------------------------------------------------------------------------------------------
# Tracing meta tensors


@contextlib.contextmanager
def _shape_only_tracing() -> Iterator[None]:
    """Make a TorchScript trace of meta tensors record what a CPU trace records.

    Two things differ from a CPU trace, and this block fixes both for its duration:
    - torch's meta kernels written in Python read tensor shapes, which, while tracing, come back as
      traced tensors that the kernels cannot use as numbers: they run here with tracing paused (the
      operator itself is still recorded, by the tracer, before its kernel runs);
    - on CPU `aten::convolution` is carried out by calling `aten::_convolution`, and that is what the
      trace records and fvcore counts; the meta kernel of `aten::convolution` computes the shape
      directly, so here it calls `aten::_convolution` the way the CPU path does.
    An operator the tracer misses would leave its output unrecorded, which fails the trace (its
    output cannot become a constant): the count then falls back to the CPU.

    Convolutions and batch normalisation, most of a ResNet's operators, get kernels that only work
    out the output's shape (`_convolution_shapes`, `_batch_norm_shapes`): torch's own do the same
    with many more steps, and took about two fifths of each trace.
    """
    from torch._decomp import meta_table
    from torch._meta_registrations import _meta_lib_dont_use_me_use_register_meta as python_meta_library

    registered_in_python = python_meta_library._op_impls
    convolution, batch_norm = torch.ops.aten._convolution.default, torch.ops.aten.native_batch_norm.default
    library = torch.library.Library("aten", "IMPL")
    try:
        for op, kernel in meta_table.items():
            if isinstance(op, torch._ops.OpOverload) and op.namespace == "aten" \
                    and op not in (convolution, batch_norm) and _registration_name(op) in registered_in_python:
                library.impl(op, _with_tracing_paused(kernel), "Meta")
        library.impl(torch.ops.aten.convolution.default, _convolution_as_on_cpu, "Meta")
        library.impl(convolution, _with_tracing_paused(_convolution_shapes(meta_table[convolution])), "Meta")
        library.impl(batch_norm, _with_tracing_paused(_batch_norm_shapes), "Meta")
        yield
    finally:
        library._destroy()  # the original kernels are in effect again


def _registration_name(op: torch._ops.OpOverload) -> str:
    name = op._opname if op._overloadname == "default" else f"{op._opname}.{op._overloadname}"
    return f"aten/{name}/Meta"


def _with_tracing_paused(kernel):
    @functools.wraps(kernel)
    def run(*args, **kwargs):
        state = torch._C._get_tracing_state()
        torch._C._set_tracing_state(None)
        try:
            return kernel(*args, **kwargs)
        finally:
            torch._C._set_tracing_state(state)

    return run


def _batch_norm_shapes(input, weight, bias, running_mean, running_var, training, momentum, eps):
    """`aten::native_batch_norm` on meta tensors: the output (the input's shape) and the saved mean and
    inverse deviation (one per channel), as torch's meta kernel returns them. That kernel is torch's
    Python decomposition, which works out the normalisation op by op: about a quarter of the time of
    a whole trace (measured on ResNet-50, ResNeSt-50d and Res2Net-50). The tracer has recorded
    `aten::batch_norm` before this runs, so fvcore sees the same graph."""
    per_channel = (input.shape[1],)
    return torch.empty_like(input), input.new_empty(per_channel), input.new_empty(per_channel)


def _convolution_shapes(stock_kernel):
    """`aten::_convolution` on meta tensors: a tensor of the output's shape, by the textbook formula.
    torch's meta kernel (`stock_kernel`) gets there through symbolic-shape helpers and checks, a fifth
    to a quarter of a trace; it still handles what the formula does not: transposed convolutions,
    lists that do not match the spatial dimensions, empty inputs, and an output too small to exist
    (its error)."""

    def kernel(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, *flags):
        spatial_dims = input.dim() - 2
        if not transposed and len(stride) == len(padding) == len(dilation) == spatial_dims \
                and weight.dim() == input.dim() and input.shape[1] > 0:
            sizes = [(size + 2 * pad - dilation_ * (kernel_size - 1) - 1) // step + 1
                     for size, pad, dilation_, kernel_size, step
                     in zip(input.shape[2:], padding, dilation, weight.shape[2:], stride)]
            if all(size > 0 for size in sizes):
                return input.new_empty((input.shape[0], weight.shape[0], *sizes))
        return stock_kernel(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups,
                            *flags)

    return kernel


def _convolution_as_on_cpu(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    cudnn = torch.backends.cudnn
    return torch.ops.aten._convolution.default(
        input, weight, bias, stride, padding, dilation, transposed, output_padding, groups,
        cudnn.benchmark, cudnn.deterministic or torch.are_deterministic_algorithms_enabled(), cudnn.enabled,
        cudnn.allow_tf32,
    )


# ---------------------------------------------------------------------------------------------
# Whole models


def measure_built_model(model_id: str, model: nn.Module, image_sizes: list[int]) -> list[ModelMeasurement]:
    """Every figure of an already built (uninitialised) `model`, FLOPs at each of `image_sizes`.

    The model is used up: FLOPs are counted last, on the model itself moved to the meta device.
    """
    parameters = count_parameters(model)
    file_size = checkpoint_size(model)
    layers = int(model.nominal_depth)
    counts = _count_flops(model, image_sizes, in_place=True)
    return [ModelMeasurement(model_id, size, parameters, flops.total, file_size, layers, flops.uncounted_ops,
                             flops.unexpected_uncounted_ops, flops.method)
            for size, flops in zip(image_sizes, counts)]


def measure_model(model_id: str, image_sizes: list[int], **kwargs: Any) -> list[ModelMeasurement]:
    """Build `model_id` once and measure it at each of `image_sizes`."""
    return measure_built_model(model_id, build_for_counting(model_id, **kwargs), image_sizes)


def naive_flops(model_id: str, image_size: int) -> int:
    """The contract's FLOPs computed literally: default initialisation and a real forward pass."""
    model = create_model(model_id)
    analysis = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, image_size, image_size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return int(analysis.total())
