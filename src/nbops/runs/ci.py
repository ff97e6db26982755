"""`nbops ci`: run a notebook, check the gates, write JUnit XML and a Markdown summary.

Exit codes tell CI what happened: 0 all gates passed, 21 a cell raised, 22 the kernel died,
23 a cell timed out, 24 a gate failed (see nbops.errors).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbops._atomic import atomic_write_text
from nbops._markdown import inline
from nbops.config import Project, load_project
from nbops.errors import GateFailedError, RunError
from nbops.gates import GateResult, evaluate_gates, parse_gate
from nbops.runs.execute import run_notebook
from nbops.runs.record import RunRecord
from nbops.runs.store import RunStore


@dataclass
class CiReport:
    """What `nbops ci` found: the run, each gate's result, and the reports written."""

    record: RunRecord | None
    gates: list[GateResult]
    error: RunError | None
    junit: Path
    summary: Path
    gate_texts: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and all(g.passed for g in self.gates)


def run_ci(
    notebook: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    parameter_file: str | Path | None = None,
    extra_gates: list[str] | None = None,
    baseline: str | None = None,
    junit: Path | None = None,
    summary: Path | None = None,
    timeout: float | None = None,
    project: Project | None = None,
    tracking: str | None = None,
    all_cells: bool = False,
) -> CiReport:
    """Run the notebook and check the project's gates (plus `extra_gates`).

    Gates are parsed before the kernel starts (GateError). Never raises for a failed run or
    gate: the report says, and `raise_for_status` turns it into the exit code.
    """
    project = project or load_project()
    texts = [*project.config.gates, *(extra_gates or [])]
    gates = [parse_gate(t) for t in texts]
    store = RunStore(project.store_dir)
    baseline_ref = baseline or project.config.baseline
    baseline_metrics = store.load(baseline_ref).gate_values() if baseline_ref else {}
    record: RunRecord | None = None
    error: RunError | None = None
    try:
        record = run_notebook(
            notebook,
            overrides,
            parameter_file=parameter_file,
            timeout=timeout,
            project=project,
            store=store,
            tracking=tracking,
            all_cells=all_cells,
        )
    except RunError as exc:
        error = exc
        record = store.load(exc.run_id) if exc.run_id else None
    results: list[GateResult] = []
    if record is not None and error is None:
        values = record.gate_values()
        values.update({f"baseline.{k}": v for k, v in baseline_metrics.items()})
        results = evaluate_gates(gates, values)
        record.gates = [r.to_dict() for r in results]
        store.save(record)
    folder = store.run_dir(record.run_id) if record else project.store_dir
    report = CiReport(
        record=record,
        gates=results,
        error=error,
        junit=junit or folder / "junit.xml",
        summary=summary or folder / "summary.md",
        gate_texts=texts,
    )
    _write(report.junit, junit_xml(report, str(notebook)))
    markdown = summary_markdown(report, str(notebook))
    _write(report.summary, markdown)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    return report


def raise_for_status(report: CiReport) -> None:
    """Raise the run's error, or GateFailedError naming the failed gates."""
    if report.error is not None:
        raise report.error
    failed = [g for g in report.gates if not g.passed]
    if failed:
        names = "; ".join(f"{g.gate} ({g.reason})" for g in failed)
        raise GateFailedError(
            f"{len(failed)} of {len(report.gates)} gates failed: {names}",
            run_id=report.record.run_id if report.record else None,
            fix=f"see {report.summary}",
        )


def junit_xml(report: CiReport, notebook: str) -> str:
    """The report as JUnit XML: one test for the run, one per gate."""
    suite = ET.Element("testsuite", name=f"nbops ci {notebook}")
    run_case = ET.SubElement(suite, "testcase", classname="nbops.ci", name="notebook runs")
    if report.record and report.record.duration_s is not None:
        run_case.set("time", f"{report.record.duration_s:.3f}")
    failures = 0
    if report.error is not None:
        failures += 1
        failure = ET.SubElement(run_case, "failure", message=str(report.error))
        failure.text = (
            "\n".join(report.record.failure.traceback)
            if report.record and report.record.failure
            else ""
        )
    results = {g.gate: g for g in report.gates}
    for text in report.gate_texts:
        case = ET.SubElement(suite, "testcase", classname="nbops.ci.gates", name=text)
        result = results.get(text.split("#", 1)[0].strip())
        if result is None:
            ET.SubElement(case, "skipped", message="not checked: the run did not complete")
        elif not result.passed:
            failures += 1
            ET.SubElement(case, "failure", message=_xml_text(result.reason))
    suite.set("tests", str(1 + len(report.gate_texts)))
    suite.set("failures", str(failures))
    suite.set("skipped", str(sum(1 for t in report.gate_texts if report.error is not None)))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def summary_markdown(report: CiReport, notebook: str) -> str:
    """A Markdown summary for a CI job page; the notebook's name, the error, the gates and
    the metric names are escaped (nbops._markdown.inline), so none becomes HTML or a cell."""
    verdict = "passed" if report.passed else "failed"
    lines = [f"## nbops ci: {inline(notebook, code=True)} {verdict}", ""]
    if report.record:
        r = report.record
        lines.append(
            f"Run {inline(r.run_id, code=True)}: {inline(r.status)} in {r.duration_s or 0:.1f} s"
        )
        lines.append("")
    if report.error is not None:
        lines += [f"**The notebook did not complete:** {inline(str(report.error))}", ""]
    if report.gates:
        lines += ["| gate | result | detail |", "| --- | --- | --- |"]
        for g in report.gates:
            mark = "pass" if g.passed else "**FAIL**"
            lines.append(f"| {inline(g.gate, code=True)} | {mark} | {inline(g.reason)} |")
        lines.append("")
    if report.record and report.record.metrics:
        lines += ["| metric | value |", "| --- | --- |"]
        for name, value in report.record.latest_metrics().items():
            lines.append(f"| {inline(name)} | {value:.6g} |")
        lines.append("")
    return "\n".join(lines)


_NOT_XML = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_text(text: str) -> str:
    """Text without terminal colour codes and the control characters XML 1.0 forbids."""
    return _NOT_XML.sub("", text)


def _write(path: Path, text: str) -> None:
    """Write a report whole or not at all (no temporary file left when the write fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
