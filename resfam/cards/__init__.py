"""The card engine: parse, render, measure, verify and sync the model cards (see DESIGN.md)."""
from .findings import CardError, Finding
from .model_index import Card, Claim, InsertionPoint, ModelClaims, family_of, parse_card
from .render import card_context, make_environment, render_template
from .sync import Edit, apply_edits, plan_sync, render_diff, write_atomic
from .verify import DEFAULT_TOLERANCES, CardResult, Progress, Report, sync_values, verify
