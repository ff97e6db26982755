"""Where a project writes, confined to the Jupyter server's root folder.

`confine_to_root` refuses (ApiError 403, naming the setting and its pyproject.toml) a folder
a request would write to (`store`, `export_dir`, `bundles/`, a local MLflow `tracking_uri`,
see `project_folders`) when it resolves outside the root or holds a symlink leading out
where nbops writes by name (LINK_DEPTH), before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.labserver.jobs import relative_to_root
from nbops.labserver.requests import ApiError, shown_value

# Deferred import: nbops.bundle (DEFAULT_OUT) loads on the first confinement check, not when
# Jupyter loads the extension at every server start.

if TYPE_CHECKING:
    from nbops.config import Project


def project_folders(project: Project) -> dict[str, Path]:
    """The folders a project's runs, exports and bundles write to, by setting: `store`,
    `export_dir`, `bundles` (not a setting: the fixed folder `nbops bundle` writes to) and
    `tracking_uri` when it names a local file or folder (MLflow's `file:`/`sqlite:` URIs or
    a plain path; relative ones are relative to the server's working folder, as MLflow
    reads them)."""
    from nbops.bundle.from_run import DEFAULT_OUT

    folders = {
        "store": project.root / project.config.store,
        "export_dir": project.root / project.config.export_dir,
        "bundles": project.root / DEFAULT_OUT,
    }
    local = _local_tracking_path(project)
    if local is not None:
        folders["tracking_uri"] = local
    return folders


def _local_tracking_path(project: Project) -> Path | None:
    uri = project.config.tracking_uri
    if project.tracking != "mlflow" or not uri:
        return None
    from urllib.parse import unquote, urlsplit

    scheme = urlsplit(uri).scheme.lower()
    if scheme == "file":
        path = unquote(uri[len("file:") :])
        path = "/" + path.lstrip("/") if path.startswith("//") else path
    elif scheme.startswith("sqlite"):
        path = unquote(uri.split(":///", 1)[1]) if ":///" in uri else ""
    elif len(scheme) <= 1:  # a plain path (a one-letter scheme is a Windows drive)
        path = uri
    else:  # a tracking server (http, databricks, ...): nothing is written here
        return None
    return Path(path) if path else None  # `sqlite://` alone is in memory


# How deep into a folder it writes to nbops looks for a symlink leading out: deep enough for
# what it writes there by name (`.nbops/runs.db`, `.nbops/runs/<id>`, `pipelines/<name>/
# <name>/`, `bundles/<name>-v<N>/`), shallow enough to stay quick in a store of many runs.
LINK_DEPTH = {"store": 2, "export_dir": 3, "bundles": 2, "tracking_uri": 1}


def confine_to_root(project: Project, root: Path, settings: tuple[str, ...]) -> None:
    """ApiError 403 naming the setting and its pyproject.toml when a folder the request
    writes to resolves outside the server root (`../..`, an absolute path, a symlink), or
    holds a symlink leading out where nbops writes (see LINK_DEPTH)."""
    folders = project_folders(project)
    pyproject = project.root / "pyproject.toml"
    where = relative_to_root(pyproject, root) if pyproject.is_file() else None
    for setting in settings:
        folder = folders.get(setting)
        if folder is None:
            continue
        if not _resolves_inside(folder, root):
            raise _leads_outside(project, root, setting, folder, where)
        link = _link_leading_out(folder.resolve(), root, LINK_DEPTH[setting])
        if link is not None:
            raise _leads_outside(project, root, setting, link, where)


def _link_leading_out(folder: Path, root: Path, depth: int) -> Path | None:
    """The first symlink within `depth` levels of `folder` (a folder inside the root) whose
    target lies outside the root; None when there is none (or the folder does not exist)."""
    level = [folder]
    for _ in range(depth):
        below: list[Path] = []
        for current in level:
            try:
                entries = list(os.scandir(current))
            except OSError:  # not a folder, missing, unreadable: nothing written through it
                continue
            for entry in entries:
                path = Path(entry.path)
                if entry.is_symlink():
                    if not _resolves_inside(path, root):
                        return path
                elif entry.is_dir(follow_symlinks=False):
                    below.append(path)
        level = below
    return None


def _resolves_inside(folder: Path, root: Path) -> bool:
    try:
        return folder.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop, a name too long
        return False


def _leads_outside(
    project: Project, root: Path, setting: str, folder: Path, where: str | None
) -> ApiError:
    """The refusal of a folder outside the root: the setting, where it is set, and why it
    leads out (written so, or a symlink on the way)."""
    by_link = Path(os.path.normpath(folder.absolute())).is_relative_to(root)
    link = relative_to_root(folder.parent, root)
    link_name = f"{link}/{folder.name}" if link not in (None, ".") else folder.name
    if setting == "bundles":
        told = "the bundles folder 'bundles'"
    else:
        given = setting in project.config.model_fields_set
        told = f"{setting} = {shown_value(getattr(project.config, setting))}" + (
            f" (set in [tool.nbops] of {where or 'pyproject.toml'})"
            if given
            else " (the default" + (f", not set in {where})" if where else ")")
        )
    reason = f" ({link_name} resolves outside through a symlink)" if by_link else ""
    change = (
        f"replace the symlink on the way to {link_name} with a folder"
        if by_link
        else f"set {setting} in [tool.nbops] of {where or 'the project pyproject.toml'} to a "
        "folder inside the root"
    )
    return ApiError(
        403,
        f"{told} leads outside the Jupyter server's root folder{reason}; the nbops panel "
        "writes only inside it",
        fix=f"{change}, or start Jupyter in a folder that holds it (the nbops command line "
        "is not confined)",
        setting=setting,
        file=where,
    )
