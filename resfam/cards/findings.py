"""What the card engine reports: one `Finding` type for every outcome, from a clean figure to a
YAML syntax error, so every door (command line, MkDocs plugin, Python API) prints the same thing."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "drift", "error", "warning", "unchecked"]


@dataclass(frozen=True)
class Finding:
    """One fact about a card.

    status: ok (the claim matches the code), drift (a figure differs beyond its tolerance),
        error (bad input: the card cannot be read or checked), warning (kept, but worth a look),
        unchecked (the card states a field the zoo gives no fact for: "not checked with this zoo").
    path: the template file, as given (relative to the project where possible).
    line: 1-based line in the template, or None when the problem is the whole file.
    model, field: the model-index entry and field concerned, where there is one.
    claimed, measured: the card's value and the code's value, for ok and drift.
    drift_pct: (claimed - measured) / measured * 100, for numeric fields.
    message: what is wrong, in one line; hint: how to fix it (a command or an edit).
    strict: a warning about prose written by hand where the template could cite the code (a literal
        figure, a stage list). The strict checks (`verify --strict`, `mkdocs build --strict`) fail on
        every warning, this kind and the others alike.
    """

    status: Status
    path: str
    line: int | None
    message: str
    hint: str = ""
    model: str | None = None
    field: str | None = None
    claimed: Any = None
    measured: Any = None
    drift_pct: float | None = None
    strict: bool = False

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def format(self) -> str:
        """`path:line: status: message` and, when there is one, an indented hint line."""
        text = f"{self.location}: {self.status}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CardError(Exception):
    """Bad input: one or more error findings, all reported together (never a traceback)."""

    def __init__(self, findings: list[Finding]):
        self.findings = list(findings)
        super().__init__("\n".join(f.format() for f in self.findings))
