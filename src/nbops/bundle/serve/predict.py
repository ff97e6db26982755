"""Predicting, in the prediction thread: the frame, the serving code, the model, and the
search for the one record that fails a request.

`_Predictor.run(jobs)` predicts the queued requests in one call on a frame of all their
records; when that call raises, each request is predicted alone, and a request whose one
record fails is answered with a `RecordError` naming that record (found by halving).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nbops.bundle.serve.body import RecordError, _printable
from nbops.bundle.serve.frame import _checked_column, _json_values
from nbops.bundle.serve.metrics import _Metrics
from nbops.errors import BundleError, NbopsError

logger = logging.getLogger(__name__)

SMALL_BATCH = 256  # calls with fewer records run on one OpenMP thread


@dataclass(eq=False)
class _Job:
    columns: dict[str, list[Any]]
    n: int
    proba: bool
    future: "asyncio.Future[_Outcome] | None" = None
    probe: bool = False  # the start-up check: not counted in the metrics


@dataclass
class _Outcome:
    predictions: list[Any]
    probabilities: list[Any] | None = None


class _Predictor:
    """Runs in the prediction thread: frames, the serving code, the model, splitting, metrics.

    A bundle with `transform` and `model` (a loaded `Bundle`) is predicted in two steps, so
    the model's input can be checked: an infinity there (the serving code divided by zero) is
    a `RecordError` naming the column and the record, as is a `ValueError` from the model.
    Any other bundle is predicted with its `predict`, a `ValueError` mapped the same way.
    """

    def __init__(self, bundle: Any, metrics: _Metrics) -> None:
        self.bundle = bundle
        self.metrics = metrics
        self.columns = [bundle.schema.column(c) for c in bundle.request_columns]
        model = getattr(bundle, "model", None)
        self.staged = callable(getattr(bundle, "transform", None)) and callable(
            getattr(model, "predict", None)
        )
        if self.staged:
            self.has_proba = callable(getattr(model, "predict_proba", None))
        else:
            self.has_proba = callable(getattr(bundle, "predict_proba", None))
        self._openmp: Any = None  # threadpoolctl's controller of the OpenMP runtimes, once made

    def _threads(self, n: int) -> contextlib.AbstractContextManager[Any]:
        """One OpenMP thread for a small batch: a thread team costs more than it saves there,
        and its spinning threads take the CPU the event loop needs (the limit is per thread)."""
        if n >= SMALL_BATCH:
            return contextlib.nullcontext()
        if self._openmp is None:
            try:
                from threadpoolctl import ThreadpoolController

                self._openmp = ThreadpoolController().select(user_api="openmp")
            except Exception:  # threadpoolctl comes with scikit-learn; without it, no limit
                self._openmp = False
        if not self._openmp:
            return contextlib.nullcontext()
        return self._openmp.limit(limits=1)

    def run(self, jobs: list[_Job]) -> list[_Outcome | BaseException]:
        try:
            return list(self._predict(jobs))
        except Exception as e:
            if len(jobs) == 1:
                return [self._located(jobs[0], e)]
            logger.debug("a batch of %d requests failed (%s); predicting each alone", len(jobs), e)
        outcomes: list[_Outcome | BaseException] = []
        for job in jobs:
            try:
                outcomes.extend(self._predict([job]))
            except Exception as e:
                outcomes.append(self._located(job, e))
        return outcomes

    def frame(self, jobs: list[_Job]) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for column in self.columns:
            if len(jobs) == 1:
                values = jobs[0].columns[column.name]
            else:
                values = [v for job in jobs for v in job.columns[column.name]]
            data[column.name] = _checked_column(column, values)
        return pd.DataFrame(data, copy=False)

    def _outputs(self, frame: pd.DataFrame, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions (and probabilities) for a frame: the place model errors come from."""
        n = len(frame)
        with self._threads(n):
            if self.staged:
                features = self.bundle.transform(frame)
                _check_finite(features, getattr(self.bundle.model, "feature_names_in_", None))
                model = self.bundle.model
                predictions = np.asarray(_model_call(model.predict, features))
                probabilities = None
                if proba:
                    probabilities = np.asarray(_model_call(model.predict_proba, features))
            else:
                predictions = np.asarray(_model_call(self.bundle.predict, frame))
                probabilities = None
                if proba:
                    probabilities = np.asarray(_model_call(self.bundle.predict_proba, frame))
        if predictions.ndim == 0 or len(predictions) != n:
            raise BundleError(f"the model returned {predictions.size} predictions for {n} records")
        if probabilities is not None and (probabilities.ndim == 0 or len(probabilities) != n):
            raise BundleError(
                f"the model returned {probabilities.size} probabilities for {n} records"
            )
        return predictions, probabilities

    def _predict(self, jobs: list[_Job]) -> list[_Outcome]:
        frame = self.frame(jobs)
        predictions, probabilities = self._outputs(frame, any(job.proba for job in jobs))
        if not all(job.probe for job in jobs):
            self.metrics.observe_predictions(predictions, has_proba=self.has_proba)
        outcomes, start = [], 0
        for job in jobs:
            end = start + job.n
            proba = None
            if job.proba and probabilities is not None:
                proba = _json_values(probabilities[start:end])
            outcomes.append(_Outcome(_json_values(predictions[start:end]), proba))
            start = end
        return outcomes

    def _located(self, job: _Job, error: BaseException) -> BaseException:
        """The error of one request, as a `RecordError` naming its record where one record
        alone fails (found by halving); errors that are not about the input pass unchanged."""
        if not isinstance(error, BundleError | ValueError | ArithmeticError | RuntimeWarning):
            return error
        if isinstance(error, RecordError):
            if len(error.loc) > 2:  # it names its record already
                return error
            located = error
        else:
            message = _printable(str(error))[:500]
            if not isinstance(error, BundleError):
                message = f"the model refuses the records ({type(error).__name__}: {message})"
            located = RecordError(message, kind="bundle_error")
        if job.n < 2:
            located.loc = ["body", "records", 0]
            return located
        try:
            frame = self.frame([job])
        except Exception:
            return located

        def fails(rows: int) -> bool:
            try:
                self._outputs(frame.iloc[:rows], job.proba)
            except Exception:
                return True
            return False

        low, high = 1, job.n  # the shortest failing prefix is within [low, high]
        while low < high:
            middle = (low + high) // 2
            if fails(middle):
                high = middle
            else:
                low = middle + 1
        record = low - 1
        try:
            self._outputs(frame.iloc[record : record + 1], job.proba)
        except Exception as e:  # that record fails alone: name it, with its own error
            alone = self._located(_Job({}, 1, job.proba), e)
            if isinstance(alone, RecordError):
                alone.loc = ["body", "records", record, *alone.loc[3:]]
                return alone
        return located


def _model_call(function: Callable[[Any], Any], data: Any) -> Any:
    """Call the model; its ValueError (an input it refuses) is a RecordError."""
    try:
        return function(data)
    except NbopsError:
        raise
    except (ValueError, ArithmeticError, RuntimeWarning) as e:
        # RuntimeWarning: numpy's overflow warning, raised where warnings are errors
        message = _printable(str(e))[:500]
        raise RecordError(
            f"the model refuses the records ({type(e).__name__}: {message})",
            fix="send values like the ones the model was trained on (schema.json)",
        ) from None


def _check_finite(features: Any, names: Any = None) -> None:
    """Refuse a model input holding an infinity: RecordError naming the column and record."""
    found: tuple[int, str] | None = None
    if isinstance(features, pd.DataFrame):
        for name in features.columns:
            series = features[name]
            if series.dtype.kind in "fc":
                infinite = np.isinf(series.to_numpy())
                if infinite.any():
                    found = int(np.argmax(infinite)), str(name)
                    break
    elif isinstance(features, np.ndarray) and features.dtype.kind in "fc":
        infinite = np.isinf(features)
        if infinite.any():
            where = np.argwhere(infinite)[0]
            column = int(where[1]) if features.ndim > 1 else 0
            label = f"feature {column}"
            if names is not None and column < len(names):
                label = str(names[column])
            found = int(where[0]), label
    elif hasattr(features, "tocoo") and getattr(features, "dtype", None) is not None:
        coo = features.tocoo()
        if coo.data.dtype.kind in "fc":
            infinite = np.isinf(coo.data)
            if infinite.any():
                i = int(np.argmax(infinite))
                found = int(coo.row[i]), f"feature {int(coo.col[i])}"
    if found is not None:
        record, label = found
        raise RecordError(
            f"the serving code makes column {_printable(label)!r} infinite for this record "
            "(a division by zero, or an overflow); the model cannot predict it",
            loc=["body", "records", record],
            kind="non_finite_feature",
            fix="send values the notebook's features code can compute",
        )
