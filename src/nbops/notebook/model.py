"""Which value of a notebook's steps is its model: the one a run records without
`nbops.log_model`.

The rule: the value the last evaluate step that predicts with an earlier step's value
predicts with (`.predict(`, `.predict_proba(`, `.score(`; `.transform(` when nothing
predicts), else the only estimator a train step fits; None when the notebook shows none.

A pure function of the syntax trees, beside the metric rule (metrics.py) it completes.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nbops.notebook.tags import Role

if TYPE_CHECKING:
    from nbops.notebook.analysis import Step, StepGraph

_PREDICTING = ("predict", "predict_proba", "predict_log_proba", "decision_function", "score")


@dataclass(frozen=True)
class ModelSource:
    """The value a run records as its model, and the step after which it is read."""

    step: str
    value: str


def model_source(graph: StepGraph) -> ModelSource | None:
    """The value a run records as its model when the notebook does not call log_model
    (see the module docstring), or None when the notebook shows none."""
    for step in reversed([s for s in graph.steps if s.role is Role.EVALUATE]):
        inputs = {i.name for i in step.inputs if i.source == "step"}
        for methods in (_PREDICTING, ("transform",)):
            used = [n for n in _method_bases(step, methods) if n in inputs]
            if used:
                return ModelSource(step=step.key, value=used[-1])
    fitted: dict[str, str] = {}
    for step in graph.steps:
        if step.role is Role.TRAIN:
            for name in _method_bases(step, ("fit",)):
                fitted[name] = step.key
    if len(fitted) == 1:
        ((name, key),) = fitted.items()
        return ModelSource(step=key, value=name)
    return None


def _method_bases(step: Step, methods: tuple[str, ...]) -> list[str]:
    """The names whose methods `methods` a step calls, in order: `knn` for `knn.predict(X)`,
    and `model` for `model = Est().fit(X, y)`."""
    names: dict[str, None] = {}
    for cell in step.cells:
        for node in ast.walk(cell.code.tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
                if (
                    isinstance(target, ast.Name)
                    and isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute)
                    and value.func.attr in methods
                    and "fit" in methods
                ):
                    names.setdefault(target.id, None)
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in methods
            ):
                base = _base_node(node.func.value)
                if isinstance(base, ast.Name):
                    names.pop(base.id, None)
                    names[base.id] = None
    return list(names)


def _base_node(node: ast.expr) -> ast.expr:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node
