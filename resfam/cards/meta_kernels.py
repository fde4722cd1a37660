"""Shape-only kernels for tracing a model on the meta device: what lets `measure` count FLOPs without
computing anything (`shape_only_tracing`).

This module is built on private torch APIs (`torch.library` Meta overrides, the `torch._decomp`
tables, the tracing-state switch); it changes with torch, not with the measurement contract, which
stays in `measure`. A torch without these internals makes `measure` fall back to counting on the CPU.
It is measurement code all the same: it is hashed into the cache key (`cache.MEASUREMENT_CODE`).
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator

import torch

_tracing_depth = 0  # how many `shape_only_tracing` blocks are open: only the outermost registers


@contextlib.contextmanager
def shape_only_tracing() -> Iterator[None]:
    """Make a TorchScript trace of meta tensors record what a CPU trace records, cheaply.

    Two things differ from a CPU trace, and this block fixes both for its duration:
    - torch's meta kernels written in Python read tensor shapes, which, while tracing, come back as
      traced tensors that the kernels cannot use as numbers: they run here with tracing paused (the
      operator itself is still recorded, by the tracer, before its kernel runs);
    - on CPU `aten::convolution` is carried out by calling `aten::_convolution`, and that is what the
      trace records and fvcore counts; the meta kernel of `aten::convolution` computes the shape
      directly, so here it calls `aten::_convolution` the way the CPU path does.
    An operator the tracer misses would leave its output unrecorded, which fails the trace (its
    output cannot become a constant): the count then falls back to the CPU.

    The operators a ResNet is made of get kernels that only work out the output's shape
    (`_SHAPE_KERNELS`). torch's own are general Python code (type promotion, memory formats, symbolic
    shapes): measuring took a fifth longer with them, and the first of them imports torch._dynamo and
    sympy (docs/performance.md has the figures). Anything the short kernels do not cover goes to torch's
    kernel.

    Blocks nest: a worker opens one for its whole life, so the kernels are registered once.
    """
    global _tracing_depth
    if _tracing_depth:
        _tracing_depth += 1
        try:
            yield
        finally:
            _tracing_depth -= 1
        return
    library = torch.library.Library("aten", "IMPL")
    try:
        for op, stock_kernel in _python_meta_kernels().items():
            shape_kernel = _SHAPE_KERNELS.get(op.name())
            kernel = stock_kernel if shape_kernel is None else _or_else(shape_kernel, stock_kernel)
            library.impl(op, _with_tracing_paused(kernel), "Meta")
        library.impl(torch.ops.aten.convolution.default, _convolution_as_on_cpu, "Meta")
        _tracing_depth = 1
        yield
    finally:
        _tracing_depth = 0
        library._destroy()  # the original kernels are in effect again


_record_nothing = None  # the tracer's source-location callback once replaced: kept alive for the process


def stop_recording_source_locations() -> bool:
    """Make the TorchScript tracer stop recording each node's Python source location, for the rest of
    this process; True if it could.

    For every operator it records, the tracer walks the whole Python stack and keeps a copy of every
    frame's file, function and line: half of a measuring trace's time (measuring resfam's 34 models
    in one process took 15.6 CPU s with it and 7.5 s without; docs/performance.md). fvcore reads
    the nodes' scopes and shapes, never their source locations, so the counts are the same. torch
    offers no switch for it and no way back: the tracer's hook (`torch::jit::tracer::
    setRecordSourceLocation`, exported by libtorch) is given a callback that does nothing, so only a
    process that exists to measure calls this (the measuring worker's child, never a page's).
    A torch without the symbol keeps recording.
    """
    global _record_nothing
    if _record_nothing is not None:
        return True
    import ctypes
    from pathlib import Path

    libraries = sorted((Path(torch.__file__).parent / "lib").glob("libtorch_cpu.*"))
    try:
        setter = ctypes.CDLL(str(libraries[0]))._ZN5torch3jit6tracer23setRecordSourceLocationEPFvPNS0_4NodeEE
    except (IndexError, OSError, AttributeError):
        return False
    setter.argtypes, setter.restype = [ctypes.c_void_p], None
    callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda node: None)
    setter(ctypes.cast(callback, ctypes.c_void_p))
    _record_nothing = callback
    return True


@functools.cache
def _python_meta_kernels() -> dict[torch._ops.OpOverload, Callable]:
    """The aten operators whose meta kernel torch registers in Python, each with that kernel: from
    its meta table if there, else from its decompositions, in the order torch itself picks them."""
    from torch._decomp import global_decomposition_table
    from torch._meta_registrations import _meta_lib_dont_use_me_use_register_meta as python_meta_library

    registered_in_python = python_meta_library._op_impls
    kernels = {}
    for table in ("meta", "post_autograd", "pre_autograd"):
        for op, kernel in global_decomposition_table[table].items():
            if isinstance(op, torch._ops.OpOverload) and op.namespace == "aten" and op not in kernels \
                    and _registration_name(op) in registered_in_python:
                kernels[op] = kernel
    return kernels


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


class _NotCovered(Exception):
    """A shape-only kernel met a case it leaves to torch's kernel."""


def _or_else(shape_kernel, stock_kernel):
    def kernel(*args, **kwargs):
        try:
            return shape_kernel(*args, **kwargs)
        except _NotCovered:
            return stock_kernel(*args, **kwargs)

    return kernel


def _output(shape, like: torch.Tensor) -> torch.Tensor:
    """A contiguous meta tensor: `aten::empty` has a C++ meta kernel, `new_empty`/`empty_like` Python."""
    return torch.empty(shape, dtype=like.dtype, device="meta")


def _check_covered(*tensors, contiguous: bool = True) -> None:
    """Raise _NotCovered unless `tensors` are what the shape-only kernels cover: tensors (not numbers)
    of one floating dtype, and contiguous, unless the kernel's output is contiguous whatever its
    inputs' layout. Anything else is left to torch's kernel (type promotion, integer sums, memory
    formats)."""
    if not all(isinstance(t, torch.Tensor) and t.dim() > 0 and (t.is_contiguous() or not contiguous)
               for t in tensors):
        raise _NotCovered
    dtype = tensors[0].dtype
    if not dtype.is_floating_point or any(t.dtype != dtype for t in tensors):
        raise _NotCovered


def _broadcast(shape, other) -> list[int]:
    """The shape two tensors broadcast to (torch.broadcast_shapes is symbolic-shape Python)."""
    size = max(len(shape), len(other))
    shape, other = [1] * (size - len(shape)) + list(shape), [1] * (size - len(other)) + list(other)
    if any(a != b and 1 not in (a, b) for a, b in zip(shape, other, strict=False)):
        raise _NotCovered  # torch's error
    return [b if a == 1 else a for a, b in zip(shape, other, strict=False)]


def _dimension(dim: int, ndim: int) -> int:
    """`dim` counted from the front; one out of range is torch's error, so torch's kernel says it."""
    if not -ndim <= dim < ndim:
        raise _NotCovered
    return dim % ndim


def _elementwise_shape(a, b, *, alpha=1):
    _check_covered(a, b)
    return _output(_broadcast(a.shape, b.shape), a)


def _same_shape(a):
    _check_covered(a)
    return _output(a.shape, a)


def _softmax_shape(a, dim, half_to_float):
    """torch's kernel returns a contiguous tensor whatever the input's layout (ResNeSt's is transposed)."""
    _check_covered(a, contiguous=False)
    if half_to_float:
        raise _NotCovered
    _dimension(dim, a.dim())
    return _output(a.shape, a)


def _reduction_shape(a, dims=None, keepdim=False, *, dtype=None):
    _check_covered(a)
    if not dims or dtype is not None:  # every dimension, or a change of type
        raise _NotCovered
    reduced = {_dimension(dim, a.dim()) for dim in dims}
    if len(reduced) != len(dims):
        raise _NotCovered
    shape = [1 if i in reduced else size for i, size in enumerate(a.shape) if keepdim or i not in reduced]
    return _output(shape, a)


def _cat_shape(tensors, dim=0):
    _check_covered(*tensors)
    first = tensors[0]
    dim = _dimension(dim, first.dim())
    if any(t.dim() != first.dim() or t.shape[:dim] != first.shape[:dim] or t.shape[dim + 1:] != first.shape[dim + 1:]
           for t in tensors):
        raise _NotCovered
    return _output((*first.shape[:dim], sum(t.shape[dim] for t in tensors), *first.shape[dim + 1:]), first)


def _convolution_shape(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, *flags):
    """`aten::_convolution` by the textbook formula; transposed convolutions, lists that do not match
    the spatial dimensions, empty inputs and outputs too small to exist (torch's error) go to torch."""
    _check_covered(input, weight)
    spatial_dims = input.dim() - 2
    if transposed or not len(stride) == len(padding) == len(dilation) == spatial_dims \
            or weight.dim() != input.dim() or input.shape[1] == 0:
        raise _NotCovered
    sizes = [(size + 2 * pad - dilation_ * (kernel_size - 1) - 1) // step + 1
             for size, pad, dilation_, kernel_size, step
             in zip(input.shape[2:], padding, dilation, weight.shape[2:], stride, strict=False)]
    if any(size <= 0 for size in sizes):
        raise _NotCovered
    return _output((input.shape[0], weight.shape[0], *sizes), input)


def _matrix_product_shape(bias, mat1, mat2, *, beta=1, alpha=1):
    """`aten::addmm` (a linear layer): torch's kernel is a decomposition into elementwise Python."""
    _check_covered(bias, mat1, mat2, contiguous=False)
    if mat1.dim() != 2 or mat2.dim() != 2 or mat1.shape[1] != mat2.shape[0]:
        raise _NotCovered
    shape = [mat1.shape[0], mat2.shape[1]]
    if _broadcast(bias.shape, shape) != shape:
        raise _NotCovered
    return _output(shape, mat1)


def _pooling_shape(input, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    """The output of a 2-d pooling of an (N, C, H, W) input, as torch works it out (a window may not
    start in the right or bottom padding); torch's kernel goes through its symbolic-shape checks."""
    _check_covered(input)
    pairs = [_pair(value) for value in (kernel_size, stride or kernel_size, padding, dilation)]
    if input.dim() != 4 or None in pairs:
        raise _NotCovered
    sizes = []
    for size, kernel, step, pad, dilation_ in zip(input.shape[2:], *pairs, strict=False):
        if pad * 2 > kernel or min(kernel, step, dilation_) <= 0:  # torch's error: torch says it
            raise _NotCovered
        span = size + 2 * pad - dilation_ * (kernel - 1) - 1 + (step - 1 if ceil_mode else 0)
        out = span // step + 1
        if ceil_mode and (out - 1) * step >= size + pad:
            out -= 1
        if out <= 0:
            raise _NotCovered
        sizes.append(out)
    return _output((*input.shape[:2], *sizes), input)


def _pair(value) -> tuple[int, int] | None:
    values = [value] if isinstance(value, int) else list(value)
    return (values[0], values[0]) if len(values) == 1 else tuple(values) if len(values) == 2 else None


def _max_pooling_shapes(input, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    """`aten::max_pool2d_with_indices`: the pooled tensor and its indices (int64), the same shape."""
    output = _pooling_shape(input, kernel_size, stride, padding, dilation, ceil_mode)
    return output, torch.empty(output.shape, dtype=torch.int64, device="meta")


def _average_pooling_shape(input, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                           divisor_override=None):
    return _pooling_shape(input, kernel_size, stride, padding, 1, ceil_mode)


def _reflection_padding_shape(input, padding):
    """`aten::reflection_pad2d` (left, right, top, bottom) of an (N, C, H, W) input; each pad must be
    shorter than the side it mirrors (else torch's error)."""
    _check_covered(input)
    if input.dim() != 4 or len(padding) != 4:
        raise _NotCovered
    left, right, top, bottom = padding
    height, width = input.shape[2:]
    if not (0 <= top < height and 0 <= bottom < height and 0 <= left < width and 0 <= right < width):
        raise _NotCovered
    return _output((*input.shape[:2], height + top + bottom, width + left + right), input)


def _batch_norm_shapes(input, weight, bias, running_mean, running_var, training, momentum, eps):
    """`aten::native_batch_norm`: the output (the input's shape) and the saved mean and inverse
    deviation (one per channel). torch's meta kernel is its Python decomposition, which works the
    normalisation out op by op: about a quarter of a whole trace on its own (measured 2026-11-30)."""
    _check_covered(input)
    if input.dim() < 2:
        raise _NotCovered
    per_channel = (input.shape[1],)
    return _output(input.shape, input), _output(per_channel, input), _output(per_channel, input)


# aten operator name -> a kernel that works out only the output's shape, or raises _NotCovered. The
# tracer has recorded the operator before its kernel runs, so fvcore sees the same graph either way.
_SHAPE_KERNELS = {
    "aten::_convolution": _convolution_shape,
    "aten::native_batch_norm": _batch_norm_shapes,
    "aten::add.Tensor": _elementwise_shape,
    "aten::mul.Tensor": _elementwise_shape,
    "aten::sigmoid": _same_shape,
    "aten::_softmax": _softmax_shape,
    "aten::mean.dim": _reduction_shape,
    "aten::sum.dim_IntList": _reduction_shape,
    "aten::cat": _cat_shape,
    "aten::addmm": _matrix_product_shape,
    "aten::max_pool2d_with_indices": _max_pooling_shapes,
    "aten::avg_pool2d": _average_pooling_shape,
    "aten::reflection_pad2d": _reflection_padding_shape,
}


def _convolution_as_on_cpu(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    cudnn = torch.backends.cudnn
    return torch.ops.aten._convolution.default(
        input, weight, bias, stride, padding, dilation, transposed, output_padding, groups,
        cudnn.benchmark, cudnn.deterministic or torch.are_deterministic_algorithms_enabled(), cudnn.enabled,
        cudnn.allow_tf32,
    )



