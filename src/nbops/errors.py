"""The exceptions nbops raises, as one tree.

    NbopsError                      every error nbops raises on purpose (exit code 1)
    ├── NotebookReadError           the file is not a readable notebook (3)
    ├── NotebookWriteError          `nbops tag --write` cannot write the notebook (36)
    ├── TagError                    a cell's tags cannot be understood (4)
    │   └── NoTaggedCellsError      nothing is tagged, so nothing can be exported (5)
    │       └── NoStepsError        cells are tagged, but none as a step (5)
    ├── CellCodeError               a tagged cell's code cannot be exported (6)
    │   ├── CellSyntaxError         Python syntax error in a tagged cell (6)
    │   ├── MagicError              IPython syntax with no Python equivalent (7)
    │   └── ParameterError          the parameters cell is not plain literals (8)
    ├── DependencyError             a step needs a name no earlier step provides (9)
    │   ├── UntaggedDefinitionError the name is defined only in an untagged cell (10)
    │   ├── LaterStepError          the name is first defined by a later step (11)
    │   ├── UndefinedNameError      the name is defined nowhere in the notebook (12)
    │   └── ServingPathError        the serving path reads the label, or cannot be traced (35)
    ├── ExportError                 the export cannot be written or read back (13)
    │   ├── StaleExportError        `export --check`: the package is out of date (14)
    │   ├── VersionNotFoundError    a version asked for does not exist (15)
    │   ├── ArtifactTypeError       a step passes a value no orchestrator can carry safely (32)
    │   └── TargetBuildError        a kfp or Airflow target cannot be built (33)
    ├── ParameterValueError         a run parameter is unknown or of the wrong type (16)
    ├── RunNotFoundError            no run with that id in the store (17)
    ├── StoreError                  the run store cannot be opened or written (18)
    ├── ConfigError                 [tool.nbops] in pyproject.toml is invalid (19)
    ├── GateError                   a gate expression cannot be parsed (20)
    ├── MissingExtraError           an optional feature's packages are not installed (25)
    ├── QualityInputError           data or predictions given to a check are unusable (26)
    │   └── SchemaVersionError      a schema file from a newer nbops (27)
    ├── ValidationFailedError       `nbops validate`: a check failed (1)
    ├── BundleError                 a bundle cannot be built (28)
    │   ├── BundleIntegrityError    a bundle file differs from its manifest, or is unsafe (29)
    │   ├── BundleVersionError      a bundle from a newer nbops (30)
    │   ├── BundleSignatureError    unsigned when required, a bad or untrusted signature (37)
    │   └── BundleGateFailedError   `bundle compare`: the challenger fails a gate (40)
    ├── KeyFileError                a signing or trusted key file is unreadable or not ed25519 (38)
    ├── MonitorAlertError           `nbops monitor`: drift or shift past the thresholds (31)
    ├── RegistryError               a model, version or alias is not in the registry (41)
    ├── DataSnapshotError           a kept data snapshot is missing or changed (42)
    └── RunError                    a run did not complete (21)
        ├── RunFailedError          a cell raised an exception (21)
        ├── KernelDiedError         the kernel died during the run (22)
        ├── RunTimeoutError         a cell ran past --timeout (23)
        ├── GateFailedError         the run completed but a CI gate failed (24)
        └── DiskFullError           the disk filled up (ENOSPC) during the run (39)

    Terminated                      SIGTERM reached `nbops run` (a KeyboardInterrupt; exit 143)

Each error carries what a user needs to act on it: the file, the cell (1-based number as
the notebook shows it, plus its id), and a `fix` saying what to do. `str(error)` is one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CellLocation:
    """Where in a notebook something is: the file, the cell number (from 1) and its id."""

    path: str
    number: int | None = None
    cell_id: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.path
        if self.number is not None:
            where += f", cell {self.number}"
            if self.cell_id:
                where += f" (id {self.cell_id})"
        if self.line is not None:
            where += f", line {self.line}"
        return where


class NbopsError(Exception):
    """Base of every error nbops raises on purpose; the CLI prints it as one line."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        location: CellLocation | str | None = None,
        fix: str | None = None,
        related: tuple[CellLocation, ...] = (),
    ) -> None:
        self.message = message
        self.location = location
        self.fix = fix
        # Other cells the error concerns, e.g. the cell defining a name the located cell
        # uses, so a reader (the JupyterLab panel) can link both. Not part of str().
        self.related = related
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.location:
            parts.append(f"{self.location}: ")
        parts.append(self.message)
        if self.fix:
            parts.append(f"; {self.fix}")
        return "".join(parts)


class NotebookReadError(NbopsError):
    """The file is not JSON, not a notebook, or fails the nbformat schema."""

    exit_code = 3


class NotebookWriteError(NbopsError):
    """Tags cannot be written into the notebook (`nbops tag --write`): the file is left as
    it was."""

    exit_code = 36


class TagError(NbopsError):
    """A cell's tags cannot be understood (two roles, a malformed step name...)."""

    exit_code = 4


class NoTaggedCellsError(TagError):
    """The notebook has no cell tagged with an nbops role."""

    exit_code = 5


class NoStepsError(NoTaggedCellsError):
    """Cells are tagged (setup, parameters, skip, other tools' tags), but none as a step, so
    the export would be empty; the message lists the tags found."""

    exit_code = 5


class CellCodeError(NbopsError):
    """The code of a tagged cell cannot be exported."""

    exit_code = 6


class CellSyntaxError(CellCodeError):
    """A tagged cell is not valid Python (after IPython syntax is translated)."""

    exit_code = 6


class MagicError(CellCodeError):
    """A tagged cell uses IPython syntax (a magic, a shell command) that has no Python form."""

    exit_code = 7


class ParameterError(CellCodeError):
    """The parameters cell holds something other than assignments of literal values."""

    exit_code = 8


class DependencyError(NbopsError):
    """A step uses a name that neither a parameter nor an earlier step provides."""

    exit_code = 9
    # Set where the analysis knows them: the name at fault and the cell defining it (an
    # UntaggedDefinitionError's untagged cell), so the panel can offer to tag that cell.
    name: str | None = None
    defined_in: CellLocation | None = None


class UntaggedDefinitionError(DependencyError):
    """A step uses a name defined only in an untagged (exploration) or skip cell."""

    exit_code = 10


class LaterStepError(DependencyError):
    """A step uses a name that is first defined by a step after it."""

    exit_code = 11


class UndefinedNameError(DependencyError):
    """A step uses a name that no cell of the notebook defines."""

    exit_code = 12


class ServingPathError(DependencyError):
    """The code that turns a raw test frame into the model's input reads the label given to
    `fit`, or the frame given to `predict` cannot be traced back to where it is loaded."""

    exit_code = 35


class ExportError(NbopsError):
    """An export cannot be written, or an exported package cannot be read back."""

    exit_code = 13


class StaleExportError(ExportError):
    """`nbops export --check`: the exported package does not match the notebook."""

    exit_code = 14


class VersionNotFoundError(ExportError):
    """A version named on the command line is not in the export's history."""

    exit_code = 15


class ArtifactTypeError(ExportError):
    """`nbops export --target`: a step hands another a value no orchestrator can pass safely."""

    exit_code = 32


class TargetBuildError(ExportError):
    """`nbops export --target`: the pipeline for the orchestrator could not be built (the
    package failed when run once, the engine is not installed, or its compiler refused it)."""

    exit_code = 33


class ParameterValueError(NbopsError):
    """A parameter given for a run is not in the parameters cell, or has the wrong type."""

    exit_code = 16


class RunNotFoundError(NbopsError):
    """No run with that id (or id prefix) in the store."""

    exit_code = 17


class StoreError(NbopsError):
    """The run store cannot be opened, read or written."""

    exit_code = 18


class ConfigError(NbopsError):
    """`[tool.nbops]` in pyproject.toml, or a parameters file, is invalid."""

    exit_code = 19


class GateError(NbopsError):
    """A gate expression cannot be parsed."""

    exit_code = 20


class RunError(NbopsError):
    """A run did not complete; the run is recorded all the same."""

    exit_code = 21

    def __init__(self, message: str, *, run_id: str | None = None, **kwargs: Any) -> None:
        self.run_id = run_id
        super().__init__(message, **kwargs)


class RunFailedError(RunError):
    """A cell of the notebook raised an exception."""

    exit_code = 21


class KernelDiedError(RunError):
    """The kernel died (crashed, or was killed) during the run."""

    exit_code = 22


class RunTimeoutError(RunError):
    """A cell ran longer than the run's timeout."""

    exit_code = 23


class GateFailedError(RunError):
    """The notebook ran, but at least one CI gate failed."""

    exit_code = 24


class DiskFullError(RunError):
    """The disk the run writes to is full (ENOSPC). Nothing it was writing is left behind as
    if complete, and the run is recorded as failed."""

    exit_code = 39


class Terminated(KeyboardInterrupt):
    """SIGTERM reached the process running `nbops run` (a KeyboardInterrupt, so every path
    that stops a run on Ctrl-C stops it the same way); the run is recorded as `terminated`
    and the command exits 143 (128 + SIGTERM)."""

    exit_code = 143

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id
        super().__init__("terminated")


class MissingExtraError(NbopsError):
    """An optional feature needs packages that are not installed: `pip install nbops[extra]`."""

    exit_code = 25


def require_extra(module: str, extra: str) -> None:
    """Raise MissingExtraError unless `module` can be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"this needs {module}, which is not installed",
            fix=f"pip install 'nbops[{extra}]'",
        )


class QualityInputError(NbopsError):
    """Data, predictions or options given to validation or slice metrics are unusable
    (mismatched lengths, an empty frame, an unknown metric name...)."""

    exit_code = 26


class SchemaVersionError(QualityInputError):
    """A schema file written by a newer nbops, with a schema version this one cannot read."""

    exit_code = 27


class ValidationFailedError(NbopsError):
    """`nbops validate`: at least one check failed."""

    exit_code = 1


class BundleError(NbopsError):
    """A bundle cannot be built or used (no model, no serving step, bad options...)."""

    exit_code = 28


class BundleIntegrityError(BundleError):
    """A bundle file's sha256 differs from the manifest, a file is missing or unexpected, an
    archive holds unsafe paths or links, or the model holds types outside the allow-list."""

    exit_code = 29


class BundleVersionError(BundleError):
    """The bundle's manifest has a schema version this nbops cannot read."""

    exit_code = 30


class BundleSignatureError(BundleError):
    """A bundle's signature refused: unsigned when a signature is required, a `manifest.sig`
    that fails against every trusted key (signed by another key, or the manifest changed
    after signing), a damaged signature file, or signed with no trusted key to check it when
    a signature is required."""

    exit_code = 37


class BundleGateFailedError(BundleError):
    """`nbops bundle compare`: the challenger bundle fails at least one gate, with the
    champion as baseline (a verdict on two bundles, not on a run: GateFailedError is `nbops
    ci`'s)."""

    exit_code = 40


class KeyFileError(NbopsError):
    """A key file (`--key`, `--trusted-key`, `trusted_keys`, NBOPS_TRUSTED_KEYS) is missing,
    unreadable or not an ed25519 key of the expected kind; or `nbops keygen` would overwrite
    one."""

    exit_code = 38


class MonitorAlertError(NbopsError):
    """`nbops monitor`: the recent data or predictions moved past the thresholds."""

    exit_code = 31


class RegistryError(NbopsError):
    """The model registry cannot do what was asked: no such model, version or alias, an alias
    with no previous holder to roll back to, or a registered version whose bundle on disk
    differs from the one registered."""

    exit_code = 41


class DataSnapshotError(NbopsError):
    """A kept copy of a run's data (`track_data(..., snapshot=True)`) is missing or no longer
    matches its hash, or a DVC-tracked file's cache is missing."""

    exit_code = 42
