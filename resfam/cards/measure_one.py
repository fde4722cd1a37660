"""`resfam-cards measure ID [--image-size N]`: one model measured in this process, to debug it.

`verify` measures in worker processes, each step bounded in time and every worker in memory, and
reports a failure in one line. This measures the model the same way (`measure.build_for_counting`,
then `measure.measure_built_model`) in the process that runs it: no worker, no cache, no limit. An
exception in the model's code comes with its full traceback and stops under a debugger
(`python -m pdb -m resfam.cards.cli measure ID`); Ctrl-C on a model that hangs prints where it was.
It prints every figure a card can state, with how the build finds it, and every architecture tag
with the module or operator it was found in. docs/architecture.md describes the pipeline.
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from .cache import PACKAGE_DIR
from .fields import FIELDS, TAGS, Origin
from .findings import CardError, Finding
from .kinds import MAX_IMAGE_SIZE
from .zoo import MeasuredModel, RegisteredModel


def measure_here(model_id: str, image_size: int | None = None, *, out: TextIO | None = None,
                 progress: TextIO | None = None) -> None:
    """Measure `model_id` at `image_size` (default: its registered one) in this process and write what
    was found, and how, to `out` (default: stdout); each step is announced on `progress` as it starts.
    CardError for an unknown model or image size; anything the model's code raises is raised as it is."""
    if image_size is not None and not 0 < image_size <= MAX_IMAGE_SIZE:
        raise CardError([Finding("error", "--image-size", None, f"{image_size} is not an image size",
                                 hint=f"a number of pixels from 1 to {MAX_IMAGE_SIZE}")])
    from . import measure  # torch and fvcore, before the zoo
    from .worker import _RelativePaths
    from .zoos import DEFAULT_ZOO, load_zoo

    zoo = load_zoo(DEFAULT_ZOO)  # the zoo loaded as the worker loads it; it records where each model is defined
    from resfam import registry

    try:
        registry.get_model_entry(model_id)
    except registry.UnknownModelError as error:  # its message names the closest IDs
        raise CardError([Finding("error", "ID", None, str(error),
                                 hint="the registered models are listed by: python -m resfam")]) from None
    site = zoo.defined_at(model_id)
    defined_in = _RelativePaths(PACKAGE_DIR).of_file(site[0]) if site else None
    registered = RegisteredModel(model_id, zoo.family(model_id), zoo.default_config(model_id), (),
                                 defined_in, site[1] if defined_in else None)
    size = image_size or registered.image_size
    seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def step(name: str) -> Iterator[None]:
        if progress is not None:
            print(f"{model_id}: {name}", file=progress, flush=True)
        started = time.perf_counter()
        yield
        seconds[name] = time.perf_counter() - started

    with step("building"):
        model = measure.build_for_counting(model_id)
    [measured] = measure.measure_built_model(model_id, model, [size], step)
    (out or sys.stdout).write(describe(registered, measured.to_json(), seconds))


def describe(registered: RegisteredModel, measurement: Mapping[str, Any], seconds: Mapping[str, float]) -> str:
    """What `measure` prints: each field of the table that the code gives, with its value and how it was
    found, the architecture tags' evidence, the stage layout, the operators fvcore could not count and
    what each step took."""
    size = measurement["image_size"]
    values = MeasuredModel(registered, {size: measurement}).values(size)
    fallback = measurement.get("flops_fallback")
    trace = (f"traced on the CPU: the shape-only trace failed: {fallback}" if fallback
             else "traced on the meta device (shapes only)")
    lines = [f"{registered.model_id}: family {registered.family}, measured in this process (uninitialised, "
             f"eval mode, {size} px)"]
    for card_field in FIELDS:
        if card_field.name not in values:
            continue
        value = values[card_field.name]
        how = card_field.how or "the model ID it is registered under"
        if card_field.compare == TAGS:
            shown = ", ".join(value)
        elif card_field.per_image_size:
            shown, how = f"{_shown(value)} at {size} px", f"{how}; {trace}"
        else:
            shown = _shown(value)
        if card_field.measured_from and card_field.measured_from[0] == Origin.REGISTRY and registered.defined_at:
            how += f" (line {registered.defined_at})"
        lines += [f"{card_field.name}: {shown}", f"    {how}"]
        if card_field.compare == TAGS:
            evidence = measurement["architecture_evidence"]
            lines += [f"    {tag}: {evidence[tag]}" for tag in value]
    layout = measurement["layout"]
    lines.append(f"Stem: convolutions of {', '.join(map(str, layout['stem_widths'])) or 'no'} channels")
    lines += [f"Stage {number}: {stage['blocks']} x {stage['block']}, {stage['width']} channels out, "
              f"{stage['inner_width']} in its first convolution" for number, stage in enumerate(layout["stages"], 1)]
    if measurement["uncounted_ops"]:
        lines.append("Operators fvcore counts no FLOPs of: " + ", ".join(
            f"{op} x{calls}" + ("" if op in measurement["unexpected_uncounted_ops"] else " (by its convention)")
            for op, calls in measurement["uncounted_ops"].items()))
    lines.append("Steps: " + ", ".join(f"{name} {took:.2f} s" for name, took in seconds.items()))
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    if value is None:
        return "not known"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
