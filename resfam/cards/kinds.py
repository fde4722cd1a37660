"""How each kind of value of the table of fields is checked when a card states it.

Each check returns None when the value is acceptable, else the end of the sentence "'<field>' of <model> ..."
(or that and a hint of its own, when the field's usual hint does not fit).
"""
from __future__ import annotations

import math
import re
from typing import Any

import yaml

from .fields import FIELDS, INTERPOLATIONS
from .yaml_nodes import is_empty, is_number, shown, shown_node

SANITY_LIMIT = 10**15  # no count in a model card (params, FLOPs, bytes) comes near this
MAX_IMAGE_SIZE = 4096  # the verifier runs a forward pass at this size: keep it bounded

_URL = re.compile(r"https?://[^\s/$.?#][^\s]*\Z")
_NUMERIC_STRING = re.compile(r"[0-9]*\.?[0-9]+\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_PERCENT = re.compile(r"([0-9]*\.?[0-9]+)[ ]?%\Z")
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:[.:][A-Za-z_]\w*)+\Z")


def is_import_path(value: str) -> bool:
    """'resfam.models.resnet.resnet18', 'resfam.models.resnet:ResNet', 'torchvision.models.resnet18': a
    module path, not a registry name (which may carry one dot, as in a tag like 'resnet50.a1_in1k')."""
    return bool(_DOTTED.match(value)) and (":" in value or value.count(".") >= 2 or value.startswith("resfam."))


def check_count(value: Any, node: yaml.ScalarNode) -> str | None:
    if is_empty(node):
        return "has no value"
    if not isinstance(value, int) or isinstance(value, bool):
        quoted = isinstance(value, str) and _DIGITS.match(value) and node.style in ("'", '"')
        suffix = " (a quoted string: remove the quotes)" if quoted else ""
        return f"must be an integer, got {shown(value, node.value)}{suffix}"
    if value < 0:
        return f"must be a non-negative integer, got {node.value}"
    if value > SANITY_LIMIT:
        return f"is implausibly large: {shown(value, node.value)} (more than 10^15)"
    return None


def check_rate(value: Any, node: yaml.ScalarNode) -> str | None:
    if not is_number(value) or not math.isfinite(value) or value < 0:
        return f"must be a non-negative number, got {shown_node(node)}"
    return None


def check_image_size(value: Any, node: yaml.ScalarNode) -> str | None:
    number = int(value) if isinstance(value, str) and _DIGITS.match(value) else value
    if not isinstance(number, int) or isinstance(number, bool):
        return f"must be a whole number of pixels such as '224', got {shown_node(node)}"
    if not 0 < number <= MAX_IMAGE_SIZE:
        return f"must be between 1 and {MAX_IMAGE_SIZE} pixels, got {node.value}"
    return None


def check_crop_pct(value: Any, node: yaml.ScalarNode) -> str | None:
    number = float(value) if isinstance(value, str) and _NUMERIC_STRING.match(value) else value
    if not is_number(number) or not math.isfinite(number):
        return f"must be a fraction such as '0.875', got {shown_node(node)}"
    if not 0 < number <= 1:
        return f"must be a fraction in (0, 1], got {node.value}"
    return None


def check_interpolation(value: Any, node: yaml.ScalarNode) -> str | None:
    if value not in INTERPOLATIONS:
        return f"must be one of {', '.join(INTERPOLATIONS)}, got {shown_node(node)}"
    return None


def check_url(value: Any, node: yaml.ScalarNode) -> str | None:
    if not isinstance(value, str) or not _URL.match(value):
        return f"must be an http(s) URL, got {shown_node(node)}"
    return None


def check_model_id(value: Any, node: yaml.ScalarNode) -> str | tuple[str, str] | None:
    if isinstance(value, str) and is_import_path(value):
        # A card names a model only through the registry: nothing in a card is ever imported.
        last = re.split(r"[.:]", value)[-1]
        example = last if last.islower() else "resnet50"
        return (f"must be the model's registered name, not an import path: got {shown_node(node)}",
                f"a card names a model only through the resfam registry: write 'ID: {example}' "
                "(resfam.list_models() lists the names)")
    if not isinstance(value, str) or not _MODEL_ID.match(value):
        return f"must be a registered model name such as 'resnet50', got {shown_node(node)}"
    return None


def check_text(value: Any, node: yaml.ScalarNode) -> str | None:
    if not isinstance(value, str):
        return f"must be text, got {shown_node(node)}"
    return None


def check_percentage(value: Any, node: yaml.ScalarNode) -> str | None:
    match = _PERCENT.match(value) if isinstance(value, str) else None
    number = float(match.group(1)) if match else value
    if not is_number(number) or not math.isfinite(number):
        return f"must be a percentage such as 76.13%, got {shown_node(node)}"
    if not 0 <= number <= 100:
        return f"must be between 0 and 100%, got {node.value}"
    return None


def percentage_value(value: Any) -> float | None:
    """An accuracy claim ('76.13%' or 76.13) as a number of percent; None when it is neither."""
    if isinstance(value, str):
        match = _PERCENT.match(value)
        return float(match.group(1)) if match else None
    return float(value) if is_number(value) else None


# How each kind of value of the table of fields is checked; a kind not here takes any scalar.
_CHECKS_BY_KIND = {
    "count": check_count,
    "rate": check_rate,
    "text": check_text,
    "source": check_text,  # which file it names is the verifier's question
    "model_id": check_model_id,
    "image_size": check_image_size,
    "crop_pct": check_crop_pct,
    "interpolation": check_interpolation,
    "url": check_url,
    "percentage": check_percentage,
}
FIELD_CHECKS = {field.name: _CHECKS_BY_KIND[field.kind] for field in FIELDS if field.kind in _CHECKS_BY_KIND}
FIELD_HINTS = {field.name: field.hint for field in FIELDS if field.hint}
