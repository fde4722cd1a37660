"""The zoo object the card engine loads (`zoo: tinyzoo.zoo:ZOO`): it lists the model IDs, builds a
model by ID, and says what it knows about each (resfam.cards.zoos describes the interface)."""
from __future__ import annotations

import functools
import sys

from .models import TinyNet

_MODELS = {}  # ID -> (builder, family, file, line)


def register(model_id: str, family: str, builder) -> None:
    """Register a model under `model_id`, remembering the line that registers it (the card's Code:)."""
    caller = sys._getframe(1)
    _MODELS[model_id] = (builder, family, caller.f_code.co_filename, caller.f_lineno)


register("tinynet4", "tinynet", functools.partial(TinyNet, depth=4))
register("tinynet6", "tinynet", functools.partial(TinyNet, depth=6))
register("tinygate6", "tinygate", functools.partial(TinyNet, depth=6, gate=True))


class TinyZoo:
    package = "tinyzoo"  # the package whose files define the models

    def list_models(self) -> list[str]:
        return sorted(_MODELS)

    def create_model(self, model_id: str) -> TinyNet:
        return _MODELS[model_id][0]()

    def default_config(self, model_id: str) -> dict:
        return {"image_size": 64, "crop_pct": 0.875, "interpolation": "bilinear"}

    def defined_at(self, model_id: str) -> tuple[str, int]:
        return _MODELS[model_id][2], _MODELS[model_id][3]

    def family(self, model_id: str) -> str:
        return _MODELS[model_id][1]

    def nominal_depth(self, model: TinyNet) -> int:
        return model.depth


ZOO = TinyZoo()
