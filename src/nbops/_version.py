"""The version of nbops: one place, read by the package root, the generated code's headers,
bundle manifests and the build (pyproject.toml's `[tool.hatch.version]`).

Library modules import it from here, never from the package root (which sits above every
layer: it re-exports the public API)."""

__version__ = "0.1.0"
