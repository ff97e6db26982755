"""The validation report: one `CheckResult` per check (status, offending count and fraction,
examples, message), and `ValidationReport`'s summary, views and gate values.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from nbops.errors import ValidationFailedError

REPORT_VERSION = 1
CheckKind = Literal[
    "missing_column",
    "unexpected_column",
    "dtype",
    "nulls",
    "range",
    "categories",
    "unique",
    "duplicate_keys",
    "file_format",
    "file_size",
    "drift_psi",
    "drift_ks",
    "drift_categories",
    "new_categories",
    "custom",
]
Status = Literal["pass", "warn", "fail"]
DRIFT_KINDS: frozenset[str] = frozenset(
    {"drift_psi", "drift_ks", "drift_categories", "new_categories"}
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckResult(_Model):
    """One check's outcome."""

    name: str
    column: str | None = None
    kind: CheckKind
    status: Status
    count: int = Field(default=0, description="offending rows (or columns, for column checks)")
    fraction: float = Field(default=0.0, description="count over the rows validated")
    examples: list[JsonValue] = Field(default_factory=list, description="up to 5 values")
    example_rows: list[int] = Field(default_factory=list, description="their positions, from 0")
    message: str = ""
    stats: dict[str, JsonValue] = Field(default_factory=dict)


class ReportSummary(_Model):
    checks: int = 0
    passed: int = 0
    warned: int = 0
    failed: int = 0


class ValidationReport(_Model):
    """Every check run on one frame or file, with counts and gate values."""

    schema_version: Literal[1] = 1
    kind: Literal["nbops.validation"] = "nbops.validation"
    schema_name: str | None = None
    source: str
    environment: str
    rows: int
    columns: int
    drift_checked: bool = False
    duration_s: float = 0.0
    summary: ReportSummary = Field(default_factory=ReportSummary)
    checks: list[CheckResult] = Field(default_factory=list)

    @model_validator(mode="after")
    def _summarise(self) -> ValidationReport:
        statuses = [c.status for c in self.checks]
        self.summary = ReportSummary(
            checks=len(statuses),
            passed=statuses.count("pass"),
            warned=statuses.count("warn"),
            failed=statuses.count("fail"),
        )
        return self

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return self.summary.failed == 0

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warned_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def drifted_columns(self) -> list[str]:
        """Columns with a drift check at warn or fail, in schema order."""
        out: list[str] = []
        for c in self.checks:
            if c.kind in DRIFT_KINDS and c.status != "pass" and c.column and c.column not in out:
                out.append(c.column)
        return out

    def gate_values(self) -> dict[str, float]:
        """Values CI gates can compare, e.g. `data.failed_checks == 0`."""
        return {
            "data.failed_checks": float(len(self.failed_checks)),
            "data.warned_checks": float(len(self.warned_checks)),
            "data.drifted_columns": float(len(self.drifted_columns)),
            "data.rows": float(self.rows),
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per check."""
        fields = list(CheckResult.model_fields)
        return pd.DataFrame([c.model_dump() for c in self.checks], columns=fields)

    def raise_if_failed(self) -> None:
        """Raise ValidationFailedError naming the failed checks, if any."""
        failed = self.failed_checks
        if failed:
            names = ", ".join(c.name for c in failed[:5]) + (" ..." if len(failed) > 5 else "")
            raise ValidationFailedError(
                f"{len(failed)} data check(s) failed: {names}",
                location=self.source,
                fix="see the validation report for the offending values",
            )
