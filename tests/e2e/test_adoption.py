"""Untagged tutorial notebooks reach an exported package that reproduces their numbers.

Issue 11's acceptance, on a representative few of the tutorial-style notebooks in
tests/fixtures/tutorials/ (the whole set is measured by bench/adoption.py): with no manual
edit, `nbops tag --suggest --write` (or Kale's own tags), `nbops export`, `nbops run` and
`python -m NAME` give a package whose metrics are those the run recorded, and among them the
number the tutorial presents as its result. Each step is the real command line on a copy
of the notebook and its neighbours (data files, helper modules).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = REPO / "tests" / "fixtures" / "tutorials"


def _adoption() -> ModuleType:
    spec = importlib.util.spec_from_file_location("adoption", REPO / "bench" / "adoption.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["adoption"] = module
    spec.loader.exec_module(module)
    return module


adoption = _adoption()
HEADLINES = json.loads((TUTORIALS / "headlines.json").read_text("utf-8"))

REPRESENTATIVE = {
    # the headline is a cell's trailing bare expression; nbformat 4.4 without cell ids
    "iris_knn.ipynb": "trailing knn.score(...)",
    # train and test frames from data/, cleaned together with `for dataset in combine:`
    "titanic/titanic_logreg.ipynb": "train/test frames",
    # `from helpers import rmse, ...`: a module beside the notebook
    "house_prices/house_prices.ipynb": "helper module",
    # Kale's step:/prev:/pipeline-parameters/pipeline-metrics tags, no nbops tags
    "kale/kale_iris.ipynb": "Kale tags",
}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", sorted(REPRESENTATIVE), ids=lambda n: Path(n).stem)
def test_untagged_tutorial_exports_a_package_reproducing_its_metrics(notebook: str) -> None:
    outcome = adoption.measure(
        TUTORIALS / notebook, TUTORIALS, HEADLINES, kale_convert=False, keep=False
    )

    assert outcome.ok, f"{notebook} failed at the {outcome.stage} stage: {outcome.error}"
    assert outcome.package_metrics, "the package computes no metrics"
    assert outcome.mismatches == []
    headline = HEADLINES[notebook]
    assert outcome.headline_ok, (
        f"no package metric equals the tutorial's headline {headline['expression']} = "
        f"{headline['value']}: {outcome.package_metrics}"
    )
