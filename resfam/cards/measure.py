"""Measure one model per the measurement contract (docs/measurement.md), spending nothing counting does not need.

    Parameters   sum(p.numel() for p in model.parameters()), default 1000-class head
    FLOPs        fvcore FlopCountAnalysis(model.eval(), torch.zeros(1, 3, S, S)).total()
    Activations  fvcore ActivationCountAnalysis(model.eval(), torch.zeros(1, 3, S, S)).total()
    File Size    bytes of torch.save(model.state_dict())
    Layers       model.nominal_depth (the zoo's `nominal_depth`; None where the zoo gives none)

and, for the prose of the cards, the stage layout (`stage_layout`): the output channels of each stem
convolution, and per stage its blocks, their type and its widths.

Every figure depends only on the model's structure and tensor shapes, never on weight values, so:

- the model is built with `torch.nn.init` made a no-op (`no_weight_init`): parameters keep whatever
  memory `torch.empty` gave them, which costs nothing;
- the file size is the byte count of a real `torch.save` into a sink that only counts
  (`checkpoint_size`), with the storage bytes skipped where torch allows it: the archive layout, and so
  its size, is the same;
- FLOPs are counted on a trace of the model on the meta device (`count_flops`): the same TorchScript
  trace fvcore makes on CPU, but every operator only computes its output shape. Should that trace fail,
  the count falls back to a real forward pass on CPU, under `no_grad`, and says why (`fallback`: the
  report counts these, `--verbose` names them);
- activations are counted from that same trace: one fvcore analysis whose operator handles return
  both counts (`TRACE_HANDLES`), so they cost no second trace;
- that trace records no per-module scopes, which only fvcore's per-module breakdown reads
  (`_without_module_scopes`), and a measuring worker's tracer no Python source location per node
  (`meta_kernels.stop_recording_source_locations`): the graph's operators and shapes, all that fvcore
  counts from, are the same.

One model instance serves every image size a card set needs (`measure_model`), and is then moved to
the meta device rather than copied there. `naive_flops` and `naive_activations` are the
contract computed literally (default initialisation, a real forward pass): the tests and the benchmark
compare against it.

This module imports torch and fvcore: only the measuring worker process (and the tests) import it.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn as nn
from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis, jit_analysis
from fvcore.nn.activation_count import _DEFAULT_SUPPORTED_OPS as ACTIVATION_HANDLES
from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS as FLOP_HANDLES
from fvcore.nn.jit_analysis import _IGNORED_OPS, JitModelAnalysis
from fvcore.nn.jit_handles import get_shape

from resfam.cards.architecture import tag_evidence
from resfam.cards.meta_kernels import shape_only_tracing
from resfam.hub import no_weight_init
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

# A named part of measuring a model: `step("saving")` is a context manager (see measure_built_model).
Step = Callable[[str], contextlib.AbstractContextManager[Any]]


def _unnamed_step(name: str) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


# Which way FLOPs were counted, recorded with every measurement.
ON_SHAPES = "meta trace"
ON_CPU = "cpu forward"


@dataclass(frozen=True)
class FlopCount:
    """fvcore's totals from one trace (FLOPs and activations) and the operators it met but could not
    count FLOPs of (name -> number of calls)."""

    total: int
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    method: str = ON_SHAPES
    traced_ops: frozenset[str] = frozenset()  # every operator of the traced graph, counted or not
    activations: int = 0
    fallback: str | None = None  # why the meta trace failed, when counted on the CPU

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
    layers: int | None  # None: the zoo states no nominal depth
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    unexpected_uncounted_ops: dict[str, int] = field(default_factory=dict)  # see FlopCount
    flops_method: str = ON_SHAPES
    architecture: list[str] = field(default_factory=list)  # the architecture tags the model shows
    activations: int = 0
    layout: dict[str, Any] = field(default_factory=dict)  # see stage_layout
    flops_fallback: str | None = None  # why FLOPs and activations were counted on the CPU (FlopCount.fallback)
    architecture_evidence: dict[str, str] = field(default_factory=dict)  # {tag: how it was found}
    feature_channels: list[int] = field(default_factory=list)  # see stage_outputs
    feature_reduction: list[int] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # its modules' classes and their bases (vocabulary.py)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Building


def build_for_counting(model_id: str, create: Callable[..., nn.Module] = create_model, **kwargs: Any) -> nn.Module:
    """The model `model_id` of a zoo (`create`, resfam's by default), uninitialised, in eval mode."""
    with no_weight_init():
        model = create(model_id, **kwargs)
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
    """fvcore's FLOPs and activations of `model` (an uninitialised CPU model) for one `image_size`
    square image.

    Counted on a meta-device copy of the model's structure when possible (no arithmetic at all), on the
    CPU otherwise. The model itself is left as it was.
    """
    return _count_flops(model, [image_size], in_place=False)[0]


def _count_flops(model: nn.Module, image_sizes: list[int], *, in_place: bool,
                 step: Step = _unnamed_step) -> list[FlopCount]:
    """`count_flops` at each of `image_sizes`, all on one meta-device version of the model: a copy, or
    with `in_place` the model itself moved to the meta device (a copy is a deep copy of every module:
    several times the cost of the move). If the meta trace fails, a moved model gets CPU tensors back,
    uninitialised, for the fallback."""
    try:
        shapes_only = model.to("meta") if in_place else _meta_copy(model)
        with shape_only_tracing():
            return [_traced(step, size, lambda size=size: _fvcore_count(
                        shapes_only, torch.zeros(1, 3, size, size, device="meta"), ON_SHAPES))
                    for size in image_sizes]
    except Exception as error:  # an operator without a meta kernel, a torch without these internals
        logging.getLogger(__name__).debug("meta trace failed; counting on the CPU", exc_info=True)
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        fallback = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if in_place:
        model.to_empty(device="cpu")
    with _denormals_flushed():
        return [_traced(step, size, lambda size=size: replace(
                    _fvcore_count(model, torch.zeros(1, 3, size, size), ON_CPU), fallback=fallback))
                for size in image_sizes]


def _traced(step: Step, image_size: int, count: Callable[[], FlopCount]) -> FlopCount:
    with step(f"tracing at {image_size} px"):
        return count()


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
    """FLOPs and activations of `model` for `image`, from one fvcore trace."""
    analysis = JitModelAnalysis(model, image)
    # fvcore logs a warning per unsupported operator and per uncalled module; the operators are
    # returned below instead, and nothing else of that output is news.
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    # Every operator of the graph, for the architecture tags: the handles fvcore counts with, and for
    # the operators it passes over as free (relu, ...), handles that count nothing, each noting the
    # operator it met. Totals and the uncounted operators stay as they were.
    traced: set[str] = set()
    handles = {op: functools.partial(_noting, traced, op, handle) for op, handle in TRACE_HANDLES.items()}
    analysis.set_op_handle(**{op: functools.partial(_noting, traced, op, None) for op in _IGNORED_OPS}, **handles)
    with torch.no_grad(), warnings.catch_warnings(), _without_module_scopes():
        warnings.simplefilter("ignore")
        totals = analysis.by_operator()
    uncounted = dict(sorted(analysis.unsupported_ops().items()))
    return FlopCount(int(totals["flops"]), uncounted, method, frozenset(traced | set(uncounted)),
                     int(totals["activations"]))


@contextlib.contextmanager
def _without_module_scopes() -> Iterator[None]:
    """fvcore's analyses trace the model with a scope pushed for every module (two hooks on each), to
    break the counts down by module; this engine reads only the whole model's totals (`by_operator()`),
    sums over the same graph nodes either way. Inside this block the trace is torch's plain one, which
    also spares torch's pass that folds the scope blocks back into the graph: measuring the 34 models
    of the cards took 6.0 CPU s with the scopes and 4.5 s without, every count, uncounted operator and
    architecture tag the same (docs/performance.md)."""
    scoped = jit_analysis._get_scoped_trace_graph
    jit_analysis._get_scoped_trace_graph = _plain_trace
    try:
        yield
    finally:
        jit_analysis._get_scoped_trace_graph = scoped


def _plain_trace(module: nn.Module, inputs: Any, aliases: Any) -> torch._C.Graph:
    """What fvcore's scoped trace gives (an inlined graph with the parameters as inputs), without scopes."""
    return torch.jit._get_trace_graph(module, inputs)[0]


def _noting(traced: set[str], op: str, handle: Callable | None, inputs: Any, outputs: Any) -> Any:
    traced.add(op)
    return handle(inputs, outputs) if handle is not None else 0


def _flops_and_activations(flop_handle: Callable, activation_handle: Callable | None) -> Callable:
    """One fvcore operator handle returning both counts: {'flops': n, 'activations': m}."""

    def handle(inputs, outputs) -> Counter:
        counts = Counter(flops=_summed(flop_handle(inputs, outputs)))
        if activation_handle is not None:
            counts["activations"] = _summed(activation_handle(inputs, outputs))
        return counts

    return handle


def _summed(count: Any) -> Any:
    """A handle's result: a number, or a Counter of numbers by operator name."""
    return sum(count.values()) if isinstance(count, Mapping) else count


# FlopCountAnalysis's handles and ActivationCountAnalysis's, merged: the operators that count as
# supported are FlopCountAnalysis's, so its `unsupported_ops` stay as they were; that needs every
# operator with activations to have FLOPs too (so it is in fvcore 0.1.5).
if not set(ACTIVATION_HANDLES) <= set(FLOP_HANDLES):
    raise ImportError("this fvcore counts activations of operators it has no FLOP handle for: "
                      f"{sorted(set(ACTIVATION_HANDLES) - set(FLOP_HANDLES))}; resfam expects fvcore 0.1.5")
TRACE_HANDLES = {op: _flops_and_activations(handle, ACTIVATION_HANDLES.get(op)) for op, handle in FLOP_HANDLES.items()}


def _attention_flops(inputs: Any, outputs: Any) -> int:
    """aten::scaled_dot_product_attention, which fvcore 0.1.5 has no handle for: its two matrix products
    (query by key, weights by value), counted as fvcore counts aten::matmul, one multiply-add a FLOP."""
    query, key, value = (get_shape(inputs[index]) for index in range(3))
    return math.prod(query[:-2]) * query[-2] * key[-2] * (query[-1] + value[-1])


def _attention_activations(inputs: Any, outputs: Any) -> int:
    """The outputs of the same two products, as fvcore counts a matmul's: the attention weights and the
    result."""
    query, key = get_shape(inputs[0]), get_shape(inputs[1])
    return math.prod(query[:-1]) * key[-2] + math.prod(get_shape(outputs[0]))


# fused attention (transformers): counted like the matrix products it replaces, not left out
TRACE_HANDLES["aten::scaled_dot_product_attention"] = _flops_and_activations(_attention_flops,
                                                                             _attention_activations)


@contextlib.contextmanager
def _denormals_flushed() -> Iterator[None]:
    """Uninitialised weights may hold denormal floats, which make CPU arithmetic crawl."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


# ---------------------------------------------------------------------------------------------
# Whole models


def stage_layout(model: nn.Module) -> dict[str, Any]:
    """How the model is laid out, read from its modules (no trace):

        stem_widths  output channels of each convolution before the first stage, in order
        stages       per stage: {"blocks": how many, "block": their class name,
                                 "width": the output channels of its last convolution (the stage's output),
                                 "inner_width": the output channels of its first convolution}

    A stage is a direct child of the model that is an `nn.Sequential` of blocks, a block being a
    module with the `expansion` and `depth` attributes of the block contract (resfam/models/resnet.py).
    The inner width is the narrow middle of a bottleneck (all slices of a Res2Net block together);
    for a basic block, it is the stage's width.
    """
    stem_widths: list[int] = []
    stages = []
    for child in model.children():
        if _is_stage(child):
            blocks = list(child)
            first = _convolutions(blocks[0])
            last = _convolutions(blocks[-1])
            stages.append({"blocks": len(blocks), "block": type(blocks[0]).__name__,
                           "width": last[-1].out_channels, "inner_width": first[0].out_channels})
        elif not stages:
            stem_widths += [convolution.out_channels for convolution in _convolutions(child)]
    return {"stem_widths": stem_widths, "stages": stages}


def _is_stage(module: nn.Module) -> bool:
    """A stage of `stage_layout`: an `nn.Sequential` of blocks of the block contract."""
    return isinstance(module, nn.Sequential) and len(module) > 0 \
        and all(hasattr(block, "expansion") and hasattr(block, "depth") for block in module)


def stage_outputs(model: nn.Module, image_size: int) -> tuple[list[int], list[int]]:
    """(channels, reduction) of each stage's output (the stages of `stage_layout`), read from one forward
    pass of `model` as built on a zero `image_size` square image, on the device its parameters are on
    (the meta device after counting: shapes only, nothing computed). The reduction is the input size
    divided by the output's width."""
    shapes: list[tuple[int, ...]] = []
    hooks = [child.register_forward_hook(lambda module, inputs, output: shapes.append(tuple(output.shape)))
             for child in model.children() if _is_stage(child)]
    device = next(model.parameters()).device
    try:
        with torch.no_grad(), contextlib.ExitStack() as kernels:
            try:  # the short shape kernels, not torch's Python ones (which import torch._dynamo and sympy)
                kernels.enter_context(shape_only_tracing())
            except Exception:  # a torch without these internals: its own kernels do
                logging.getLogger(__name__).debug("no shape-only kernels for the stage outputs", exc_info=True)
            model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return [shape[1] for shape in shapes], [round(image_size / shape[-1]) for shape in shapes]


def _convolutions(module: nn.Module) -> list[nn.Conv2d]:
    return [layer for layer in module.modules() if isinstance(layer, nn.Conv2d)]


def _nominal_depth(model: nn.Module) -> int:
    return int(model.nominal_depth)


def measure_built_model(model_id: str, model: nn.Module, image_sizes: list[int], step: Step = _unnamed_step,
                        depth: Callable[[nn.Module], int | None] = _nominal_depth) -> list[ModelMeasurement]:
    """Every figure of an already built (uninitialised) `model`, FLOPs and activations at each of
    `image_sizes`, its stage layout and what each stage outputs (at the smallest of `image_sizes`).

    The model is used up: FLOPs are counted last, on the model itself moved to the meta device. Each
    part of the work runs inside `step(name)` ("counting", "saving", "tracing at 224 px"): the worker
    times each and says which one a failure happened in. `depth` is the zoo's nominal depth.
    """
    with step("counting"):
        parameters = count_parameters(model)
        layers = depth(model)
        layout = stage_layout(model)
    with step("saving"):
        file_size = checkpoint_size(model)
    counts = _count_flops(model, image_sizes, in_place=True, step=step)
    with step("finding the architecture tags"):
        evidence = tag_evidence(model, frozenset().union(*(flops.traced_ops for flops in counts)))
        classes = sorted({f"{cls.__module__}.{cls.__qualname__}" for module in model.modules()
                          for cls in type(module).__mro__ if cls.__module__ != "builtins"})
    with step("finding the stage outputs"):
        channels, reduction = stage_outputs(model, min(image_sizes))
    return [ModelMeasurement(model_id, size, parameters, flops.total, file_size, layers, flops.uncounted_ops,
                             flops.unexpected_uncounted_ops, flops.method, sorted(evidence), flops.activations, layout,
                             flops.fallback, evidence, channels, reduction, classes)
            for size, flops in zip(image_sizes, counts, strict=False)]


def measure_model(model_id: str, image_sizes: list[int], **kwargs: Any) -> list[ModelMeasurement]:
    """Build `model_id` once and measure it at each of `image_sizes`."""
    return measure_built_model(model_id, build_for_counting(model_id, **kwargs), image_sizes)


def naive_flops(model_id: str, image_size: int, create: Callable[..., nn.Module] = create_model) -> int:
    """The contract's FLOPs computed literally: default initialisation and a real forward pass (of the
    model of the zoo `create`, resfam's by default)."""
    return _naive_count(FlopCountAnalysis, model_id, image_size, create)


def naive_activations(model_id: str, image_size: int) -> int:
    """The contract's activations computed literally: default initialisation and a real forward pass."""
    return _naive_count(ActivationCountAnalysis, model_id, image_size)


def _naive_count(analysis_class: type[JitModelAnalysis], model_id: str, image_size: int,
                 create: Callable[..., nn.Module] = create_model) -> int:
    model = create(model_id)
    analysis = analysis_class(model.eval(), torch.zeros(1, 3, image_size, image_size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    return int(analysis.total())
