"""The card engine: parse, render, measure, verify and sync the model cards (see docs/architecture.md).

Its entry point is `resfam.cards.verify.verify` (`from resfam.cards.verify import verify`). The names
below are imported on first use: the template renderer, a separate process every build starts, needs
`render` and what it imports, not the whole engine.
"""
from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

# The card engine is resfam's `cards` extra: without it, say so, rather than fail on a missing import.
_EXTRA = {"yaml": "pyyaml", "jinja2": "jinja2", "fvcore": "fvcore", "mkdocs": "mkdocs", "material": "mkdocs-material"}
_missing = [package for module, package in _EXTRA.items() if importlib.util.find_spec(module) is None]
if _missing:
    raise ImportError(f"resfam's card engine needs the cards extra, which is not installed (missing: "
                      f"{', '.join(_missing)}): pip install 'resfam[cards]', or in a checkout: "
                      "bash scripts/install.sh cards")

# public name -> the submodule that defines it
_LAZY = {
    "CardError": "findings", "Finding": "findings",
    "Card": "claims", "Claim": "claims", "InsertionPoint": "claims", "ModelClaims": "claims",
    "family_of": "model_index", "parse_card": "model_index",
    "card_context": "render", "make_environment": "render", "render_template": "render",
    "Edit": "sync", "apply_edits": "sync", "plan_sync": "sync", "render_diff": "sync", "sync_values": "sync",
    "write_atomic": "sync",
    "DEFAULT_TOLERANCES": "verify", "CardResult": "verify", "Report": "verify", "Progress": "zoo",
}

_SUBMODULES = ("architecture", "cache", "card_file", "catalog", "claims", "cli", "export", "fields", "findings",
               "kinds", "limits", "measure", "measure_one", "meta_kernels", "model_index", "pages", "plugin", "pool",
               "prose", "render", "report", "sync", "verify", "worker", "yaml_nodes", "zoo")

__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from .claims import Card, Claim, InsertionPoint, ModelClaims
    from .findings import CardError, Finding
    from .model_index import family_of, parse_card
    from .render import card_context, make_environment, render_template
    from .sync import Edit, apply_edits, plan_sync, render_diff, sync_values, write_atomic
    from .verify import DEFAULT_TOLERANCES, CardResult, Report
    from .zoo import Progress

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, _SUBMODULES)
