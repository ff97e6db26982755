"""MODEL_CARD.md: what a bundle's model is for, how it serves, the data, metrics, slice
metrics, plots and gates it was built with, and where it came from.

`model_card(...)` renders it from the manifest's parts (nbops.bundle.manifest) as
nbops.bundle.write builds the bundle. Every text that comes from the data, the notebook or
the run goes through `inline` (nbops._markdown): a card never holds HTML or Markdown
structure that the data put there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbops._markdown import inline, plain
from nbops._version import __version__ as nbops_version
from nbops.bundle.manifest import (
    MODEL_FILE,
    SCHEMA_FILE,
    OutputInfo,
    OverrideInfo,
    ServingInfo,
    SourceInfo,
)

__all__ = ["model_card"]


def model_card(
    *,
    name: str,
    version: int,
    created_at: str,
    source: SourceInfo,
    model_class: str,
    output: OutputInfo,
    model_format: str = "skops format",
    serving: ServingInfo,
    gates: list[dict[str, Any]],
    override: OverrideInfo,
    plots: list[str],
) -> str:
    """MODEL_CARD.md: purpose, model, serving, data, metrics, slices, plots, gates.

    Every text that comes from the data, the notebook or the run (column names, class
    labels, slice predicates, metric and parameter names and values, gate expressions, the
    notebook's name) goes through `inline` (nbops._markdown), so none of it can become HTML or Markdown structure
    (a `<script>` element, a table cell of its own, a heading)."""
    notebook = source.notebook
    origin = (
        f"the notebook {inline(notebook, code=True)} ({inline(Path(notebook).stem)})"
        if notebook
        else "a notebook"
    )
    target = inline(serving.label, code=True) if serving.label else "its target"
    what = {"class": "classifies", "number": "predicts"}.get(output.prediction, "predicts")
    columns = ", ".join(inline(c, code=True) for c in serving.request_columns)
    lines = [
        f"# {inline(name)} — model card (bundle v{version})",
        "",
        "## Purpose",
        "",
        f"This model {what} {target} from {columns}. It was built from {origin}"
        + (f", export version {inline(source.export_version)}" if source.export_version else "")
        + (f", run {inline(source.run_id, code=True)}" if source.run_id else "")
        + ".",
        "",
        "## Model",
        "",
        f"- class: {inline(model_class, code=True)} ({inline(model_format)}, `{MODEL_FILE}`)",
        f"- output: {inline(output.prediction)}"
        + (f"; classes {', '.join(inline(c) for c in output.classes)}" if output.classes else "")
        + ("; probabilities available" if output.proba else ""),
    ]
    if serving.step:
        function = f"{serving.package}.{serving.module}.{serving.function}"
        lines.append(
            f"- serving path: step {inline(serving.step, code=True)} ({inline(function, code=True)}, "
            f"request frame as {inline(serving.input, code=True)}), then the model"
        )
    else:
        lines.append("- serving path: the model alone, on the request columns")
    if serving.request_array:
        lines.append("- requests become a numpy array (request columns in order), as trained")
    if serving.parameters:
        lines.append(
            "- serving parameters: "
            + ", ".join(inline(f"{k}={plain(v)}", code=True) for k, v in serving.parameters.items())
        )
    lines += [
        f"- requests: JSON records with {columns}, checked against `{SCHEMA_FILE}`",
        "",
        "## Data",
        "",
    ]
    if source.data:
        keys = ["name", "type", "sha256", "rows", "columns"]
        lines += _table(
            ["data", "type", "sha256", "rows", "columns"],
            [[_fingerprint_cell(d, k) for k in keys] for d in source.data],
        )
    else:
        lines.append("No data fingerprints were recorded.")
    lines += ["", "## Metrics", ""]
    if source.metrics:
        lines += _table(
            ["metric", "value"], [[inline(k), _number(v)] for k, v in source.metrics.items()]
        )
    else:
        lines.append("No metrics were recorded.")
    if source.slice_metrics:
        lines += ["", "## Slice metrics", "", *_slice_tables(source.slice_metrics)]
    if plots:
        lines += ["", "## Plots", ""]
        # The file names are made of [A-Za-z0-9_.-] by _plot_files: no escape needed.
        lines += [f"![{Path(p).stem}]({p})" for p in plots]
    lines += ["", "## Quality gates", ""]
    if gates:
        lines += _table(
            ["gate", "result", "reason"],
            [
                [
                    inline(g.get("gate", "")),
                    "skipped" if g.get("skipped") else ("pass" if g.get("passed") else "**FAIL**"),
                    inline(g.get("reason", "")),
                ]
                for g in gates
            ],
        )
    else:
        lines.append("No gates were checked.")
    if override.applied:
        failed = ", ".join(inline(g, code=True) for g in override.failed_gates) or "(none listed)"
        lines += ["", f"**Override**: this bundle was built although gates failed: {failed}."]
    lines += ["", "## Provenance", ""]
    lines += [
        f"- notebook: {inline(notebook, code=True)}"
        + (
            f" (sha256 {inline(source.notebook_sha256, code=True)})"
            if source.notebook_sha256
            else ""
        )
        if notebook
        else "- notebook: unknown",
        f"- git commit: {inline(source.git_commit, code=True)}"
        + (" (uncommitted changes)" if source.git_dirty else "")
        if source.git_commit
        else "- git commit: unknown",
        f"- python {inline(source.python)}, nbops {inline(nbops_version)}, built {inline(created_at)}",
    ]
    if source.parameters:
        lines += ["", "Parameters:", ""]
        lines += _table(
            ["parameter", "value"], [[inline(k), inline(v)] for k, v in source.parameters.items()]
        )
    return "\n".join(lines) + "\n"


def _slice_tables(slices: Mapping[str, Any]) -> list[str]:
    if isinstance(slices.get("rows"), list):
        return _slice_report_table(slices)
    reports = {k: v for k, v in slices.items() if isinstance(v, Mapping) and "rows" in v}
    if reports:
        lines: list[str] = []
        for title, report in reports.items():
            lines += [f"### {inline(title)}", "", *_slice_report_table(report), ""]
        return lines[:-1]
    flat = _flatten(slices)
    return _table(["slice metric", "value"], [[inline(k), inline(v)] for k, v in flat.items()])


def _slice_report_table(report: Mapping[str, Any]) -> list[str]:
    rows = []
    for name, value in (report.get("overall") or {}).items():
        rows.append(
            ["(overall)", inline(name), _number(value), inline(report.get("n_rows", "")), "", ""]
        )
    for row in report.get("rows") or []:
        if not isinstance(row, Mapping):
            continue
        low, high = row.get("ci_low"), row.get("ci_high")
        ci = f"[{_number(low)}, {_number(high)}]" if low is not None and high is not None else ""
        note = "too small" if row.get("too_small") else inline(row.get("reason") or "")
        rows.append(
            [
                inline(row.get("name", "")),
                inline(row.get("metric", "")),
                _number(row.get("value")),
                inline(row.get("count", "")),
                ci,
                note or (_number(row.get("gap")) if row.get("gap") is not None else ""),
            ]
        )
    return _table(["slice", "metric", "value", "rows", "CI", "gap / note"], rows)


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in value.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _fingerprint_cell(d: Mapping[str, Any], key: str) -> str:
    value = d.get(key)
    if value is None:
        return ""
    if key == "sha256":
        return inline(str(value)[:12], code=True)
    if isinstance(value, list | tuple):
        return str(len(value))
    return inline(value)


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return inline(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; the cells are Markdown already made safe (see nbops._markdown.inline)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
