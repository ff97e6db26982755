"""Shared data for the quality tests: a small penguins-like frame with a model's predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest


@dataclass
class Predictions:
    """A frame of slice columns, and a binary model's labels, predictions and scores."""

    frame: pd.DataFrame
    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray


@pytest.fixture
def penguins() -> Predictions:
    """600 rows: sex (with missing values), island, a numeric body mass (with NaN), year;
    scores rounded to 2 decimals, so they tie."""
    rng = np.random.default_rng(7)
    n = 600
    sex = rng.choice(np.array(["female", "male", None], dtype=object), n, p=[0.45, 0.45, 0.1])
    island = rng.choice(["Biscoe", "Dream", "Torgersen"], n, p=[0.5, 0.4, 0.1])
    mass = np.round(rng.normal(4200, 600, n), 0)
    mass[rng.random(n) < 0.05] = np.nan
    frame = pd.DataFrame(
        {"sex": sex, "island": island, "body_mass_g": mass, "year": rng.integers(2007, 2010, n)}
    )
    y_true = rng.integers(0, 2, n)
    y_score = np.round(np.clip(0.35 * y_true + 0.65 * rng.random(n), 0, 1), 2)
    y_pred = (y_score > 0.5).astype(int)
    return Predictions(frame, y_true, y_pred, y_score)
