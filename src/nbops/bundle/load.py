"""Loading a bundle, safely: `load_bundle(path)` -> `Bundle`, ready to predict.

    bundle = load_bundle("bundles/churn-v3")          # or "bundles/churn-v3.tar.gz"
    bundle.predict(frame)                             # validated, transformed, predicted
    bundle.predict_records([{"a": 1.0, "b": 2, "c": "x"}])

What loading checks, in order, before any bundled code runs or any model object is built:

1. an archive is unpacked only if every member is safe (`nbops.bundle.archive.unpack`);
2. the manifest parses, and is not from a newer nbops (BundleVersionError);
3. every file the manifest lists has its sha256, and no file it does not list is present
   (manifest.json and `__pycache__` folders aside) — BundleIntegrityError naming the file
   (`nbops.bundle.contents`, which `verify_bundle` shares);
4. the model is read with skops, trusting only the types `trusted_types` allows (nbops's
   allow-list, narrowed by the manifest), the trees of its XGBoost and LightGBM boosters are
   checked before their libraries parse them, and its decision trees' indices after —
   never pickle or joblib;
5. the bundled package is imported from the verified bytes held in memory (never from files
   read again, nor from `.pyc` caches) under a unique module name, without touching sys.path
   (nbops.bundle.bundled_code).

Between 1 and 2, the signature (`manifest.sig`, which step 3 leaves aside) over the
manifest's bytes is checked against the trusted keys (`trusted_keys`, plus
$NBOPS_TRUSTED_KEYS) before the manifest is even parsed: BundleSignatureError when it fails,
or when it is missing and `require_signature` (or $NBOPS_REQUIRE_SIGNATURE) asks for one
(`nbops.bundle.signing`); `Bundle.signature` says what was found. The bytes checked are the
ones parsed, so the hashes step 3 checks the files against are the signed ones.

Loading does nothing else: the schema is parsed, not checked against data; heavy modules are
imported on first use.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from nbops.bundle.allowlist import check_tree_bounds, trusted_types
from nbops.bundle.archive import unpack
from nbops.bundle.boosters import check_boosters
from nbops.bundle.bundled_code import import_serving
from nbops.bundle.contents import read_schema, verify_files
from nbops.bundle.manifest import MANIFEST_FILE, BundleManifest
from nbops.bundle.signing import (
    KeySource,
    SignatureCheck,
    TrustPolicy,
    check_signature,
    trust_policy,
)
from nbops.errors import BundleError, BundleIntegrityError, NbopsError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from nbops.quality.schema import Schema

__all__ = ["Bundle", "load_bundle"]

# Deferred import: quality.validate (pandas) in Bundle.check, with the first request checked,
# so importing this module (`nbops bundle compare` reporting a missing bundle,
# `nbops.load_bundle`) loads no pandas; the schema is read through nbops.bundle.contents.

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


_REFUSED = frozenset({"missing_column", "dtype", "nulls", "file_format"})


def _model_output(method: Any, features: Any) -> Any:
    """The model's answer for the features; a model refusing them (scikit-learn's ValueError
    on a wrong shape or value, a TypeError, an overflow) is a one-line BundleError."""
    try:
        return method(features)
    except NbopsError:
        raise
    except (ValueError, TypeError, ArithmeticError) as e:
        message = " ".join(str(e).split())[:300]
        raise BundleError(
            f"the model refuses the request's features ({type(e).__name__}: {message})",
            fix="send values like the ones the model was trained on (schema.json); if every "
            "request fails, the bundle's serving code does not produce the model's input",
        ) from None


class Bundle:
    """A loaded bundle: its manifest, request schema, model and serving path."""

    def __init__(
        self,
        path: Path,
        manifest: BundleManifest,
        schema: Schema,
        model: Any,
        serve: Callable[[Any], Any] | None,
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.schema = schema
        self.model = model
        self._serve = serve
        self.signature = SignatureCheck("unsigned")
        self._cleanup: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"<Bundle {self.manifest.name} v{self.manifest.version} at {self.path}>"

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def request_columns(self) -> list[str]:
        """The columns a request carries (the serving step's, or the model's, input)."""
        return list(self.manifest.serving.request_columns)

    @property
    def classes(self) -> list[Any] | None:
        """The classes, in the order of `predict_proba`'s columns (None: not a classifier)."""
        classes = self.manifest.output.classes
        return list(classes) if classes is not None else None

    @property
    def has_proba(self) -> bool:
        return hasattr(self.model, "predict_proba")

    def close(self) -> None:
        """Remove the folder an archive was unpacked into (nothing for a bundle folder)."""
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ---------------------------------------------------------------------------

    def check(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Validate a request frame against the schema ("serving" environment, no drift) and
        keep the request columns; BundleError naming the columns of failing checks. Only the
        checks that can refuse a request are computed (`request_checks`: columns present,
        dtypes, nulls), as `validate` computes them."""
        import pandas as pd

        from nbops.quality.validate.run import request_checks

        if not isinstance(frame, pd.DataFrame):
            raise BundleError(
                f"a request is a pandas DataFrame, not {type(frame).__name__}",
                fix="or use predict_records for JSON records",
            )
        try:
            found = request_checks(frame, self.schema, environment="serving")
        except NbopsError as e:
            raise BundleError(f"the request cannot be checked: {e}") from None
        # Refuse only what the serving code cannot take (a missing column, a wrong type, a
        # null where none may be); values outside the training range or new categories are
        # served, and `nbops monitor` watches for them. A request is judged row by row: the
        # share of nulls in a nullable column (max_null_fraction) is a dataset-level check,
        # for monitoring, or one record would pass among others and fail alone. And a null
        # in a column that may hold none is refused even when validation only warns (a few
        # nulls in a data set can be sampling; the model still cannot take them).
        nullable = {c.name for c in self.schema.columns if c.nullable}
        failed = [
            c
            for c in found
            if c.kind in _REFUSED
            and (
                (c.status == "fail" and not (c.kind == "nulls" and c.column in nullable))
                or (c.kind == "nulls" and c.status == "warn" and c.column not in nullable)
            )
        ]
        if failed:
            columns: list[str] = []
            for check in failed:
                column = check.column or check.name
                if column not in columns:
                    columns.append(column)
            details = "; ".join(c.message for c in failed[:3] if c.message)
            raise BundleError(
                f"the request fails {len(failed)} check(s) on column(s) "
                f"{', '.join(repr(c) for c in columns)}: {details}",
                fix=f"send the columns {', '.join(self.request_columns)} as schema.json "
                "describes them",
            )
        return _request_columns(frame, self.request_columns)

    def transform(self, frame: pd.DataFrame) -> Any:
        """The model's input for a request frame: checked, then through the serving step
        (whose failure on a value, such as an encoder meeting an unseen label, is a
        BundleError)."""
        checked: Any = self.check(frame)
        if self.manifest.serving.request_array:  # the notebook trained on a numpy array
            checked = checked.to_numpy()
        if self._serve is None:
            return checked
        try:
            return self._serve(checked)
        except NbopsError:
            raise
        except Exception as e:  # the notebook's code refusing a value (an unseen label...)
            raise BundleError(
                f"the serving code fails on the request ({type(e).__name__}: {e})",
                fix="send values like the ones the model was trained on (schema.json)",
            ) from None

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predictions for a request frame (checked, transformed, then `model.predict`)."""
        import numpy as np

        return np.asarray(_model_output(self.model.predict, self.transform(frame)))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Class probabilities, for a model with `predict_proba`; BundleError otherwise."""
        import numpy as np

        if not self.has_proba:
            raise BundleError(f"the model ({self.manifest.model.class_name}) has no predict_proba")
        return np.asarray(_model_output(self.model.predict_proba, self.transform(frame)))

    def records_frame(self, records: Sequence[dict[str, Any]]) -> pd.DataFrame:
        """JSON records as a request frame (datetime columns parsed from their text)."""
        import pandas as pd

        if not isinstance(records, Sequence) or isinstance(records, str | bytes):
            raise BundleError("a request is a list of records (JSON objects)")
        if not records:
            raise BundleError("the request holds no records")
        if not all(isinstance(r, dict) for r in records):
            raise BundleError("every record of a request is a JSON object")
        frame = pd.DataFrame.from_records(list(records))
        for column in self.schema.columns:
            if column.kind == "datetime" and column.name in frame.columns:
                s = frame[column.name]
                if not pd.api.types.is_datetime64_any_dtype(s.dtype):
                    # left as it is when it does not parse: the dtype check names the column
                    with contextlib.suppress(TypeError, ValueError):
                        frame[column.name] = pd.to_datetime(s, format="ISO8601")
        return frame

    def predict_records(self, records: Sequence[dict[str, Any]]) -> list[Any]:
        """Predictions for JSON records, as JSON values (NaN as None)."""
        return json_values(self.predict(self.records_frame(records)))

    def predict_proba_records(self, records: Sequence[dict[str, Any]]) -> list[Any]:
        return json_values(self.predict_proba(self.records_frame(records)))


def _request_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The request columns of a frame, as a new frame the serving code may change without
    touching the caller's: when the frame holds exactly those columns in that order and
    pandas copies on write, a shallow copy (no data copied, no column lookup); else the
    selection (a lazy copy under copy-on-write, a copy before)."""
    import pandas as pd

    if list(frame.columns) == columns and _copy_on_write(pd):
        return frame.copy(deep=False)
    return frame[columns]


def _copy_on_write(pd: Any) -> bool:
    """Whether pandas copies on write (always from pandas 3; an option before)."""
    if int(pd.__version__.split(".")[0]) >= 3:
        return True
    return bool(pd.options.mode.copy_on_write is True)


def json_values(values: Any) -> list[Any]:
    """An array as a list of plain JSON values."""
    import numpy as np

    array = np.asarray(values)
    return [_plain(v) for v in array.tolist()]


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


# -- loading -------------------------------------------------------------------------------------


def load_bundle(
    path: str | os.PathLike[str],
    *,
    trusted_keys: Sequence[KeySource] = (),
    require_signature: bool = False,
) -> Bundle:
    """Load a bundle folder or `.tar.gz` (unpacked into a temporary folder, removed when the
    Bundle is closed or garbage-collected, and when loading stops on Ctrl-C or SIGTERM).
    Raises BundleIntegrityError (a file differs from the manifest, an unlisted file, an unsafe
    archive, a model type nbops does not allow), BundleVersionError (a newer nbops wrote it),
    BundleSignatureError (a signature that fails against `trusted_keys` and
    $NBOPS_TRUSTED_KEYS, or none when `require_signature`), KeyFileError (a trusted key that
    cannot be read) or BundleError."""
    policy = trust_policy(trusted_keys, require_signature)
    source = Path(path)
    if source.is_file() and source.name.endswith(_ARCHIVE_SUFFIXES):
        with _sigterm_unwinds():
            return _load_archive(source, policy)
    if source.is_dir():
        return _load_folder(source, policy)
    raise BundleError(
        f"no bundle at {source}", fix="give a bundle folder or its .tar.gz (nbops bundle)"
    )


def _load_archive(source: Path, policy: TrustPolicy) -> Bundle:
    tmp = tempfile.mkdtemp(prefix="nbops-bundle-")
    try:
        bundle = _load_folder(unpack(source, tmp), policy)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bundle._cleanup = weakref.finalize(bundle, shutil.rmtree, tmp, ignore_errors=True)
    return bundle


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While an archive is unpacked and loaded: SIGTERM, when nothing else handles it, raises
    SystemExit(143) where the main thread is, as Ctrl-C raises KeyboardInterrupt, so the
    temporary folder is removed on the way out (the default action would end the process on
    the spot). A second SIGTERM during that clean-up is ignored; the previous handling comes
    back afterwards. Nothing changes off the main thread or under another handler."""
    import signal
    import threading

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def terminate(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _load_folder(folder: Path, policy: TrustPolicy) -> Bundle:
    manifest_path = folder / MANIFEST_FILE
    try:
        text = manifest_path.read_bytes()
    except OSError:
        raise BundleIntegrityError(
            "the bundle has no manifest.json", location=str(folder), fix="rebuild the bundle"
        ) from None
    signature = check_signature(folder, text, policy)  # before anything reads the manifest
    manifest = BundleManifest.from_json(text, location=str(manifest_path))
    contents = verify_files(folder, manifest)
    schema = read_schema(contents, manifest)
    model = _model(contents, manifest)
    serve = import_serving(folder, contents, manifest)
    bundle = Bundle(folder, manifest, schema, model, serve)
    bundle.signature = signature
    return bundle


def _model(contents: dict[str, bytes], manifest: BundleManifest) -> Any:
    """The model, loaded by skops trusting only the types the manifest lists, each of which
    nbops allows. skops reads the file's object tree once, in `loads`, and refuses any type
    beyond those (and its defaults); only when something fails is the file read again, to
    report it as `_refused` says."""
    from nbops.bundle.skops_import import skops_io

    sio = skops_io()
    info = manifest.model
    data = contents[info.file]
    try:
        trusted_types([], info.types)  # a listed type nbops never loads is refused
        trusted = sorted(set(info.types))
        check_boosters(data)  # before XGBoost or LightGBM parse a model
        model = sio.loads(data, trusted=trusted)
    except Exception as e:
        _refused(sio, data, info.file, info.types, e)
    check_tree_bounds(model)
    return model


def _refused(sio: Any, data: bytes, file: str, listed: list[str], error: Exception) -> NoReturn:
    """Why the model could not be loaded, checked in this order: the file is not a readable
    skops file; the manifest lists a type nbops never loads; the file holds a type nbops never
    loads or the manifest does not list; a booster fails its check; then what skops raised."""
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as e:
        raise BundleIntegrityError(
            f"{file} is not a readable skops file ({type(e).__name__})",
            fix="rebuild the bundle",
        ) from None
    trusted_types(untrusted, listed)
    check_boosters(data)
    if isinstance(error, BundleIntegrityError):
        raise error
    raise BundleIntegrityError(
        f"{file} cannot be loaded ({type(error).__name__}: {error})", fix="rebuild the bundle"
    ) from None
