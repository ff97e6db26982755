#!/usr/bin/env bash
# Create .venv (if missing) and install nbops into it (editable).
#
#   bash scripts/setup.sh              the main job (scripts/demo.sh): nbops and the examples'
#                                      packages; no engine, no JupyterLab extension build
#   bash scripts/setup.sh --dev        the test set-up (scripts/test.sh): every engine (MLflow,
#                                      kfp, Airflow, Dask, pandera, boosting) and the test tools,
#                                      and the JupyterLab extension built (needs Node.js)
#   bash scripts/setup.sh --extra NAME the packages of one optional extra (kfp, airflow, ...),
#                                      as a demo step installs them when it reaches them
#
# Installs go through uv (bootstrapped with the venv's pip; several times faster than pip),
# falling back to pip where uv cannot be had. Safe to run again: an up-to-date environment is
# left as it is (a stamp per mode, newer than pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
mode=main
extra=
case "${1:-}" in
  "") ;;
  --dev) mode=dev ;;
  --extra)
    mode=extra
    extra=${2:?"--extra needs the name of an extra in pyproject.toml, e.g. --extra kfp"}
    ;;
  *)
    echo "setup.sh: unknown argument '$1' (use no argument, --dev, or --extra NAME)" >&2
    exit 2
    ;;
esac

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet uv >/dev/null 2>&1 || true
fi

# Bytecode is compiled at install time (uv does not by default): where PYTHONDONTWRITEBYTECODE
# is set, as on this project's CI machines, Python would otherwise compile every module it
# imports from source in every process (import sklearn, pandas: 14-23 s instead of 4 s here).
install() {  # pip install arguments, through uv when it is there
  if [ -x .venv/bin/uv ]; then
    .venv/bin/uv pip install --quiet --compile-bytecode --python .venv/bin/python "$@"
  else
    .venv/bin/python -m pip install --quiet "$@"
  fi
}

fresh() {  # is the stamp $1 there and newer than pyproject.toml?
  [ -f "$1" ] && [ "$1" -nt pyproject.toml ]
}

labextension_stale() {
  local labext=src/nbops/labextension/package.json
  [ ! -f "$labext" ] || [ -n "$(find jupyter_extension/src jupyter_extension/style \
    jupyter_extension/schema jupyter_extension/package.json jupyter_extension/yarn.lock \
    src/nbops/notebook/vocabulary.json -newer "$labext" -print -quit)" ]
}

case $mode in
  main)
    # The main job needs no JupyterLab extension: skip its Node build (hatch-jupyter-builder)
    # here; the test set-up (--dev) builds it.
    if ! fresh .venv/.nbops-installed && ! fresh .venv/.nbops-installed-dev; then
      SKIP_JUPYTER_BUILDER=1 install -e ".[examples]"
      touch .venv/.nbops-installed
    fi
    ;;
  dev)
    if ! fresh .venv/.nbops-installed-dev; then
      # A package build runs hatch-jupyter-builder, which builds the extension with jlpm (on
      # PATH from the venv) into src/nbops/labextension; --reinstall-package rebuilds nbops
      # when the main job installed it without the extension.
      export PATH="$PWD/.venv/bin:$PATH"
      if [ -x .venv/bin/uv ]; then
        install --reinstall-package nbops -e ".[dev]"
      else
        install -e ".[dev]"
      fi
      touch .venv/.nbops-installed-dev
    fi
    # Rebuild the extension when its sources or the vocabulary changed since the last build.
    if labextension_stale; then
      (cd jupyter_extension && export PATH="$PWD/../.venv/bin:$PATH" && jlpm install && jlpm build:prod)
    fi
    ;;
  extra)
    stamp=.venv/.nbops-installed-extra-$extra
    if ! fresh "$stamp" && ! fresh .venv/.nbops-installed-dev; then
      # The extra's requirements, with the dev list's pin of the same package (the tested one)
      listed=$(.venv/bin/python - "$extra" <<'PY'
import re
import sys
import tomllib

with open("pyproject.toml", "rb") as handle:
    extras = tomllib.load(handle)["project"]["optional-dependencies"]
name = sys.argv[1]
if name not in extras:
    sys.exit(f"setup.sh: no extra {name!r} in pyproject.toml (there are: {', '.join(extras)})")


def project(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


wanted = extras[name]
names = {project(r) for r in wanted}
pins = [r for r in extras.get("dev", []) if project(r) in names]
print("\n".join(wanted + pins))
PY
      )
      mapfile -t requirements <<<"$listed"
      install "${requirements[@]}"
      touch "$stamp"
    fi
    ;;
esac

# The project's own sources (an editable install: not in site-packages), for the same reason.
.venv/bin/python -m compileall -q -j 0 src >/dev/null
