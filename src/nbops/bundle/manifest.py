"""`manifest.json` of a bundle: what the bundle holds, where it came from, how it serves.

    {
      "schema_version": 1, "kind": "nbops.bundle", "name": "churn", "version": 3,
      "created_at": "...", "nbops_version": "0.1.0",
      "source":  {notebook, notebook_sha256, export_version, run_id, parameters, metrics,
                  slice_metrics, data (fingerprints), git_commit, git_dirty, python,
                  prediction_reference},
      "model":   {file: "model.skops", serializer: "skops", class, types, sha256},
      "serving": {step: "transform:features" | "serving-path" | null, package, module,
                  function, input, parameters, setup, request_columns, label, values,
                  value_types, cells},
      "input":   {schema_file: "schema.json", reference_stats: "reference_stats.json",
                  format: "records"},
      "output":  {prediction: "class" | "number" | "other", dtype, classes, proba},
      "requirements": "requirements.lock",
      "gates":   [{gate, passed, left, right, reason}, ...],
      "override": {applied, failed_gates},
      "files":   {relative path: sha256, ...}     every file but manifest.json itself
    }

`model.types` lists the types the model file holds beyond skops's own defaults (what
`skops.io.get_untrusted_types` reports); loading trusts only those of them nbops's allow-list
accepts (`nbops.bundle.allowlist`). `serving.step` is None when the model alone is the serving
path (a scikit-learn Pipeline taking the request columns); otherwise requests go through
`<package>.<module>.<function>(**{input: frame}, **parameters)` in the bundled `code/` (plus
the `setup` values the step reads from the package's `common.py`, as the pipeline passes them).
`serving.request_array`: the notebook trained on a numpy array rather than a frame, so a
request (named columns, as any other) is turned into that array, columns in order, first.
A "serving-path" step is the code nbops sliced from the notebook (`code/<package>/serving.py`,
`serve(request, frozen)`), with the values it froze from the training run in `values`
(`serving/values.json` and its skops files, loaded trusting only `value_types` that the
allow-list accepts) and the notebook cells it came from in `cells`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nbops.errors import BundleError, BundleIntegrityError, BundleVersionError

BUNDLE_SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"  # beside the manifest, not in `files` (nbops.bundle.signing)
MODEL_FILE = "model.skops"
SCHEMA_FILE = "schema.json"
REFERENCE_STATS_FILE = "reference_stats.json"
REQUIREMENTS_FILE = "requirements.lock"
MODEL_CARD_FILE = "MODEL_CARD.md"
DOCKERFILE = "Dockerfile"
CODE_DIR = "code"
CARD_DIR = "card"


MAX_JSON_DEPTH = 64  # arrays and objects inside one another, in any JSON file of a bundle

_JSON_TOKENS = re.compile(r'"(?:[^"\\]+|\\.)*"|[\[\]{}]')
_JSON_TOKENS_BYTES = re.compile(rb'"(?:[^"\\]+|\\.)*"|[\[\]{}]')


def json_depth(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep arrays and objects nest in JSON text, counted from its brackets outside
    strings without parsing it (no recursion, whatever the depth); stops counting past
    `limit` (returns limit + 1)."""
    tokens = _JSON_TOKENS_BYTES if isinstance(text, bytes) else _JSON_TOKENS
    depth = deepest = 0
    for match in tokens.finditer(text):  # type: ignore[arg-type]
        char = match.group()[:1]
        if char in ("[", "{", b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in ("]", "}", b"]", b"}"):
            depth -= 1
    return deepest


def load_json(text: str | bytes, *, what: str, location: str) -> Any:
    """Parse one of a bundle's JSON files: BundleIntegrityError, one line, when it is not JSON
    or nests deeper than MAX_JSON_DEPTH (which Python's parser would meet with a
    RecursionError)."""
    if json_depth(text) > MAX_JSON_DEPTH:
        raise BundleIntegrityError(
            f"{what} nests arrays or objects more than {MAX_JSON_DEPTH} levels deep",
            location=location,
            fix=_REBUILD,
        )
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BundleIntegrityError(
            f"{what} is not valid JSON ({type(e).__name__}: {e})"[:300],
            location=location,
            fix=_REBUILD,
        ) from None


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceInfo(_Record):
    """Where the model came from: notebook, export, run, parameters, data, metrics, code."""

    notebook: str | None = Field(default=None, description="the notebook's path")
    notebook_sha256: str | None = None
    export_version: int | None = None
    run_id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    slice_metrics: dict[str, Any] | None = None
    data: list[dict[str, Any]] = Field(
        default_factory=list, description="data fingerprints: {name, type, sha256, ...}"
    )
    git_commit: str | None = None
    git_dirty: bool | None = None
    python: str | None = None
    prediction_reference: dict[str, Any] | None = Field(
        default=None, description="the training predictions' distribution, for monitoring"
    )


class ModelInfo(_Record):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    file: str = MODEL_FILE
    serializer: Literal["skops"] = "skops"
    class_name: str = Field(alias="class", description="module.QualName of the model")
    types: list[str] = Field(description="the types the file holds beyond skops's defaults")
    sha256: str


class ServingInfo(_Record):
    """How a request frame becomes a prediction."""

    step: str | None = Field(description="'transform:features', or None: the model alone")
    package: str | None = Field(default=None, description="the package folder in code/")
    module: str | None = Field(default=None, description="module in the package: 'transform'")
    function: str | None = None
    input: str | None = Field(default=None, description="the step's frame argument")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="values for the step's other keyword arguments"
    )
    setup: list[str] = Field(
        default_factory=list, description="keyword arguments taken from the package's common.py"
    )
    request_columns: list[str]
    label: str | None = None
    values: str | None = Field(
        default=None, description="a serving-path's frozen values file (serving/values.json)"
    )
    value_types: list[str] = Field(
        default_factory=list, description="types the values' skops files hold"
    )
    cells: list[int] = Field(
        default_factory=list, description="notebook cells a serving-path was sliced from"
    )
    request_array: bool = Field(
        default=False,
        description="the notebook fed a 2-D numpy array: a checked request frame becomes "
        "`frame[request_columns].to_numpy()` before the serving code or the model",
    )


class InputInfo(_Record):
    schema_file: str = SCHEMA_FILE
    reference_stats: str | None = REFERENCE_STATS_FILE
    format: Literal["records"] = Field(
        default="records", description="requests are JSON records: [{column: value}, ...]"
    )


class OutputInfo(_Record):
    prediction: Literal["class", "number", "other"]
    dtype: str
    classes: list[Any] | None = None
    proba: bool = False


class OverrideInfo(_Record):
    applied: bool = False
    failed_gates: list[str] = Field(default_factory=list)


class BundleManifest(_Record):
    """Schema-versioned record of one bundle; `files` maps each file to its sha256."""

    schema_version: Literal[1] = 1
    kind: Literal["nbops.bundle"] = "nbops.bundle"
    name: str
    version: int = Field(ge=1)
    created_at: str
    nbops_version: str
    source: SourceInfo
    model: ModelInfo
    serving: ServingInfo
    input: InputInfo = Field(default_factory=InputInfo)
    output: OutputInfo
    requirements: str = REQUIREMENTS_FILE
    gates: list[dict[str, Any]] = Field(default_factory=list)
    override: OverrideInfo = Field(default_factory=OverrideInfo)
    files: dict[str, str]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, location: str = MANIFEST_FILE) -> BundleManifest:
        """Parse a manifest: BundleVersionError when a newer nbops wrote it,
        BundleIntegrityError when it is not a valid manifest."""
        data = load_json(text, what="the manifest", location=location)
        if not isinstance(data, dict) or data.get("kind") != "nbops.bundle":
            raise BundleIntegrityError(
                "not an nbops bundle manifest", location=location, fix=_REBUILD
            )
        version = data.get("schema_version")
        if (
            isinstance(version, int)
            and not isinstance(version, bool)
            and version > BUNDLE_SCHEMA_VERSION
        ):
            raise BundleVersionError(
                f"bundle schema_version {version} was written by a newer nbops "
                f"(this one reads up to {BUNDLE_SCHEMA_VERSION})",
                location=location,
                fix="upgrade nbops (pip install -U nbops)",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BundleIntegrityError(
                f"invalid manifest: {where}: {first['msg']}", location=location, fix=_REBUILD
            ) from None


_REBUILD = "rebuild the bundle (nbops bundle)"


@dataclass(frozen=True)
class ServingSpec:
    """How requests are served, given to `build_bundle`.

    `step`: the exported step mapping a request frame to features ('transform:features'), or
    None when the model alone is the serving path. `module`/`function`: where that step lives
    in the exported package ('transform', 'features'; as the export manifest's
    'module:function'). `input`: the step's frame argument. `parameters`: values for the
    step's other keyword arguments. `request_columns`: the columns a request carries (the
    label is never one). `label`: the label's name, for the model card and monitoring.
    `request_array`: the model (or serving code) takes a 2-D numpy array, the request
    columns in order.
    """

    step: str | None
    module: str | None = None
    function: str | None = None
    input: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    request_columns: list[str] = field(default_factory=list)
    label: str | None = None
    value_types: list[str] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)
    request_array: bool = False

    @classmethod
    def from_export(
        cls,
        export_manifest: Any,
        step: str = "transform:features",
        *,
        request_columns: list[str],
        label: str | None = None,
        parameters: dict[str, Any] | None = None,
        input: str | None = None,
    ) -> ServingSpec:
        """The spec for an exported step: its module and function from the export manifest
        (an `ExportManifest`), its frame input (the one input an earlier step provides,
        unless `input` says), and its parameter inputs at their defaults unless `parameters`
        gives them."""
        entry = next((s for s in export_manifest.steps if s.key == step), None)
        if entry is None:
            known = ", ".join(s.key for s in export_manifest.steps) or "none"
            raise BundleError(
                f"the export has no step {step!r} (it has: {known})",
                fix="tag the cell that maps raw records to features as transform:features",
            )
        module, _, function = entry.function.partition(":")
        if input is None:
            frames = [i.name for i in entry.inputs if i.source == "step"]
            if len(frames) != 1:
                raise BundleError(
                    f"the serving step {step!r} must read exactly one frame from earlier "
                    f"steps (it reads: {', '.join(frames) or 'none'})",
                    fix="make the step take only the raw records (and parameters)",
                )
            input = frames[0]
        defaults = {p.name: p.default for p in export_manifest.parameters}
        given = dict(parameters or {})
        values = {
            i.name: given.get(i.name, defaults.get(i.name))
            for i in entry.inputs
            if i.name != input and i.source == "parameter"
        }
        return cls(
            step=step,
            module=module,
            function=function,
            input=input,
            parameters=values,
            request_columns=list(request_columns),
            label=label,
        )
