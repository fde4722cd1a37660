"""Architecture tags: the components a card's `Architecture` list names, each found in the model as built.

Two sources, one vocabulary:

- the components of any network, defined here (`GENERIC_TAGS`): each is found from the model's layers
  (their class and settings) or from the operators of the traced graph that the FLOP count makes;
- the units a model family implements (split attention, a Res2Net block, a blur pool): the class that
  implements one declares it where it is written,

      class SplitAttention(nn.Module):
          architecture_tags = {"Split Attention": "one-line definition"}

  and a model has the tag when one of its modules is of that class. A class whose instances differ
  (a bottleneck is a ResNeXt block only when its 3x3 convolution is grouped) also defines
  `shows_architecture_tag(self, tag) -> bool`. A new block type brings its tags with it; nothing here
  changes.

The measuring worker reports the tags of each model (`tags_of`) and the vocabulary (`vocabulary`);
the verifier compares them with the card's list both ways. docs/architecture.md describes the pipeline.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any

# A generic tag: (definition, test on one module, operators whose presence in the traced graph shows it).
# A tag holds when any module passes its test or any of its operators was traced.
_ModuleTest = Callable[[Any], bool]


def _conv(module: Any) -> bool:
    return type(module).__name__ in ("Conv1d", "Conv2d", "Conv3d") and type(module).__module__.startswith("torch.nn")


def _kernel_is_1x1(module: Any) -> bool:
    return _conv(module) and all(size == 1 for size in module.kernel_size)


def _grouped(module: Any) -> bool:
    return _conv(module) and 1 < module.groups < module.in_channels


def _torch_layer(*names: str) -> _ModuleTest:
    return lambda module: type(module).__name__ in names and type(module).__module__.startswith("torch.nn")


def _global_average_pool(module: Any) -> bool:
    return _torch_layer("AdaptiveAvgPool2d")(module) and module.output_size in (1, (1, 1))


def _none(module: Any) -> bool:
    return False


def _depthwise(module: Any) -> bool:
    return _conv(module) and module.groups > 1 and module.groups == module.in_channels


def _dropout(module: Any) -> bool:
    return _torch_layer("Dropout", "Dropout1d", "Dropout2d", "Dropout3d")(module) and module.p > 0


GENERIC_TAGS: dict[str, tuple[str, _ModuleTest, tuple[str, ...]]] = {
    "Convolution": ("a learned 2-d convolution layer (torch.nn.Conv2d)", _conv, ()),
    "1x1 Convolution": ("a convolution layer whose kernel is 1x1: it mixes channels, pixel by pixel",
                        _kernel_is_1x1, ()),
    "Grouped Convolution": ("a convolution layer with more than one group and fewer groups than input channels",
                            _grouped, ()),
    "Batch Normalization": ("a batch normalization layer, or the batch_norm operator in the traced graph",
                            _torch_layer("BatchNorm1d", "BatchNorm2d", "BatchNorm3d"), ("aten::batch_norm",)),
    "ReLU": ("the rectified linear unit, as a layer or as an operator in the traced graph",
             _torch_layer("ReLU"), ("aten::relu", "aten::relu_")),
    "Sigmoid Activation": ("a sigmoid computed inside the network (the traced graph has aten::sigmoid)",
                           _none, ("aten::sigmoid", "aten::sigmoid_")),
    "Softmax": ("a softmax computed inside the network (the traced graph has aten::softmax); "
                "a classifier that returns logits has none", _none, ("aten::softmax",)),
    "Max Pooling": ("max pooling over a fixed window (the traced graph has aten::max_pool2d)",
                    _none, ("aten::max_pool2d",)),
    "Average Pooling": ("average pooling over a fixed window, not the global one (aten::avg_pool2d in the "
                        "traced graph)", _none, ("aten::avg_pool2d",)),
    "Global Average Pooling": ("each channel averaged over its whole feature map by an adaptive average "
                               "pooling layer with a 1x1 output", _global_average_pool, ()),
    "Dense Connections": ("a fully connected layer (torch.nn.Linear), such as the classifier",
                          _torch_layer("Linear"), ()),
    "Depthwise Convolution": ("a convolution layer with one group per input channel: each channel filtered "
                              "on its own", _depthwise, ()),
    "Dropout": ("a dropout layer (torch.nn.Dropout, Dropout2d, ...) whose rate is above zero", _dropout, ()),
    "Layer Normalization": ("a layer normalization layer, or the layer_norm operator in the traced graph",
                            _torch_layer("LayerNorm"), ("aten::layer_norm",)),
    "Group Normalization": ("a group normalization layer, or the group_norm operator in the traced graph",
                            _torch_layer("GroupNorm"), ("aten::group_norm",)),
    "GELU": ("the Gaussian error linear unit, as a layer or as an operator in the traced graph",
             _torch_layer("GELU"), ("aten::gelu", "aten::gelu_")),
    "Swish": ("x times sigmoid(x) (SiLU), as a torch.nn.SiLU layer or the silu operator in the traced graph",
              _torch_layer("SiLU"), ("aten::silu", "aten::silu_")),
    "Hard Swish": ("the piecewise-linear approximation of Swish, as a layer or an operator in the traced graph",
                   _torch_layer("Hardswish"), ("aten::hardswish", "aten::hardswish_")),
    "ReLU6": ("the rectified linear unit capped at 6 (torch.nn.ReLU6)", _torch_layer("ReLU6"), ("aten::relu6",)),
    "Multi-Head Attention": ("attention over several heads: a torch.nn.MultiheadAttention layer, or scaled "
                             "dot-product attention in the traced graph", _torch_layer("MultiheadAttention"),
                             ("aten::scaled_dot_product_attention",)),
}


def declared_tags(cls: type) -> dict[str, str]:
    """The tags `cls` declares where it is written ({tag: definition}); its instances show these and
    those of its base classes."""
    declared = vars(cls).get("architecture_tags")
    return dict(declared) if isinstance(declared, dict) else {}


def vocabulary(package: str = "resfam") -> dict[str, str]:
    """Every tag a card may list: the generic ones and those declared by the classes of the loaded
    `package` modules. Raises ValueError when two classes define one tag differently, or a declared
    tag takes a generic tag's name."""
    tags = {tag: definition for tag, (definition, _, _) in GENERIC_TAGS.items()}
    declared_by: dict[str, str] = {}
    for module_name, module in sorted(sys.modules.items()):
        if module is None or not (module_name == package or module_name.startswith(package + ".")):
            continue
        for cls in vars(module).values():
            if not isinstance(cls, type) or cls.__module__ != module_name:
                continue
            for tag, definition in declared_tags(cls).items():
                where = f"{module_name}.{cls.__qualname__}"
                if tag in GENERIC_TAGS:
                    raise ValueError(f"{where} declares the architecture tag {tag!r}, which the card engine "
                                     "already finds in every network; remove it from architecture_tags")
                if tag in declared_by and tags[tag] != definition:
                    raise ValueError(f"{where} and {declared_by[tag]} define the architecture tag {tag!r} "
                                     "differently; give it one definition (a shared constant)")
                tags[tag] = definition
                declared_by.setdefault(tag, where)
    return tags


def tags_of(model: Any, traced_ops: Iterable[str]) -> list[str]:
    """The tags `model` shows, sorted: generic ones from its layers and `traced_ops`, declared ones
    from the classes of its modules."""
    return sorted(tag_evidence(model, traced_ops))


def tag_evidence(model: Any, traced_ops: Iterable[str]) -> dict[str, str]:
    """{tag: how it was found} for every tag `model` shows: the first module (by name and class) that
    has it or declares it, else the traced operator that shows it."""
    found: dict[str, str] = {}
    for name, module in model.named_modules():
        module_name = f"{name or 'the model'} ({type(module).__name__})"
        for tag, (_, test, _) in GENERIC_TAGS.items():
            if tag not in found and test(module):
                found[tag] = f"layer {module_name}"
        shows = getattr(module, "shows_architecture_tag", None)
        for cls in type(module).__mro__:
            for tag in declared_tags(cls):
                if tag not in found and (shows is None or shows(tag)):
                    found[tag] = f"module {module_name}, declared by {cls.__module__}.{cls.__qualname__}"
    ops = set(traced_ops)
    for tag, (_, _, tag_ops) in GENERIC_TAGS.items():
        if tag not in found and ops.intersection(tag_ops):
            found[tag] = f"operator {min(ops.intersection(tag_ops))} in the traced graph"
    return found
