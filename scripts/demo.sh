#!/usr/bin/env bash
# The main job on the examples: export each example notebook as a pipeline package and run it;
# tracked runs, bundles, Kubeflow Pipelines' local runner, and the churn model past its first
# deploy (serving, monitoring, retraining).
#
# The set-up installs only what the main job uses; a step that needs an engine (kfp) installs
# it when it is reached (scripts/setup.sh --extra kfp, --extra airflow). The sections are independent of each
# other, so they run side by side (one process each, the machine's cores shared); each one's
# output is shown whole, in order, with its duration. Any section failing fails the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$EPOCHREALTIME
elapsed() { LC_ALL=C awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f s", b - a }'; }
echo "== set-up: .venv with nbops and the examples' packages (scripts/setup.sh)"
bash scripts/setup.sh
echo "   ($(elapsed "$started"))"
mkdir -p bundles pipelines

notebooks() {  # into pipelines/examples: a bundle (other sections) re-exports into pipelines/NAME
  for notebook in example_notebooks/*.ipynb; do
    name=$(basename "$notebook" .ipynb)
    echo "-- $notebook"
    .venv/bin/nbops tags "$notebook"
    .venv/bin/nbops export "$notebook" -o pipelines/examples
    echo "-- metrics of the exported pipeline (python -m $name):"
    (cd "pipelines/examples/$name" && ../../../.venv/bin/python -m "$name")
  done
}

tracked() {
  .venv/bin/nbops run example_notebooks/penguins.ipynb -p n_estimators 100
  .venv/bin/nbops sweep example_notebooks/synthetic_regression.ipynb --grid alpha=0.1,1,10 --sort r2
  .venv/bin/nbops ci example_notebooks/penguins.ipynb --gate "accuracy >= 0.9" --gate "slices.accuracy.min >= 0.85" --gate "data.drifted_columns <= 1"
  .venv/bin/nbops runs list --notebook example_notebooks/penguins.ipynb -n 2
  .venv/bin/nbops runs list --notebook example_notebooks/synthetic_regression.ipynb -n 3
  echo "-- a deployable bundle from the latest penguins run, scoring raw records in batch"
  .venv/bin/nbops bundle --notebook example_notebooks/penguins.ipynb
  .venv/bin/python -c "from palmerpenguins import load_penguins; load_penguins().drop(columns=['species']).dropna().head(20).to_csv('bundles/new_penguins.csv', index=False)"
  bundle=$(ls -d bundles/penguins-v* | grep -v tar.gz | sort -V | tail -1)
  .venv/bin/nbops predict "$bundle" bundles/new_penguins.csv -o bundles/new_penguins_predictions.csv
  head -5 bundles/new_penguins_predictions.csv
}

passengers() {
  .venv/bin/nbops run example_notebooks/passengers.ipynb
  .venv/bin/nbops bundle --notebook example_notebooks/passengers.ipynb
  bundle=$(ls -d bundles/passengers-v* | grep -v tar.gz | sort -V | tail -1)
  sed -n '/^def serve/,$p' "$bundle/code/passengers/serving.py"
  .venv/bin/nbops predict "$bundle" example_notebooks/data/passengers_test.csv -o bundles/passengers_predictions.csv
  head -5 bundles/passengers_predictions.csv
}

untagged() {
  mkdir -p pipelines/untagged
  cp tests/fixtures/tutorials/iris_knn.ipynb pipelines/untagged/
  .venv/bin/nbops tag pipelines/untagged/iris_knn.ipynb --write
  .venv/bin/nbops export pipelines/untagged/iris_knn.ipynb -o pipelines
  (cd pipelines/iris_knn && ../../.venv/bin/python -m iris_knn)
  .venv/bin/nbops run pipelines/untagged/iris_knn.ipynb
  .venv/bin/nbops bundle --notebook pipelines/untagged/iris_knn.ipynb
}

kubeflow() {
  echo "-- installing kfp for this step (scripts/setup.sh --extra kfp)"
  bash scripts/setup.sh --extra kfp
  .venv/bin/nbops export example_notebooks/penguins.ipynb -o pipelines/kfp --target kfp --no-install
  (cd example_notebooks && PATH="$PWD/../.venv/bin:$PATH" python -c "
import sys
sys.path.insert(0, '../pipelines/kfp/penguins')
from kfp import local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root='../pipelines/.kfp-local')
import kfp_pipeline
task = kfp_pipeline.penguins_pipeline(n_estimators=50)
print('metrics of the pipeline on kfp:', task.output.metadata)
" 2>&1 | grep -E "^metrics|finished with status")
}

churn() {
  .venv/bin/nbops run example_notebooks/churn.ipynb
  .venv/bin/nbops bundle --notebook example_notebooks/churn.ipynb
  bundle=$(ls -d bundles/churn-v* | grep -v tar.gz | sort -V | tail -1)
  .venv/bin/nbops promote "$bundle" --alias production --reason "first deploy"
  port=$(.venv/bin/python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  rm -f bundles/churn-requests.jsonl
  .venv/bin/nbops serve churn@production --port "$port" --log-sample 1 --log-path bundles/churn-requests.jsonl \
    --log-key id --poll 0.5 > bundles/churn-serve.log 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  served() {  # the version the server answers with now; waits (up to 5 min) for it to differ from $1
    .venv/bin/python - "$port" "${1:-}" <<'PY'
import json, sys, time, urllib.request
port, old = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 300
while True:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata", timeout=5) as r:
            version = str(json.load(r)["served"]["version"])
        if version != old:
            print(version)
            break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"the server did not answer with a version other than {old!r} in 5 minutes")
    time.sleep(0.2)
PY
  }
  before=$(served)
  echo "serving churn@production: v$before; next quarter's customers arrive (a new region)"
  .venv/bin/python scripts/send_requests.py example_notebooks/data/churn_q2_requests.csv --url "http://127.0.0.1:$port"
  monitor() {  # nbops monitor "$@" into bundles/churn-monitor.txt; exit 31 (an alert) is expected
    local code=0
    .venv/bin/nbops monitor "$@" > bundles/churn-monitor.txt || code=$?
    if [ "$code" != 0 ] && [ "$code" != 31 ]; then
      cat bundles/churn-monitor.txt
      echo "monitor failed: exit $code" >&2
      exit "$code"
    fi
    [ "$code" = 0 ] || echo "monitor: exit $code (an alert)"
  }
  echo "-- monitoring the requests: drift, and the accuracy estimated without labels"
  monitor churn@production --log bundles/churn-requests.jsonl \
    --reference example_notebooks/data/churn_q1.csv --html bundles/churn-monitor.html
  tail -8 bundles/churn-monitor.txt
  echo "-- once labels arrive: realised accuracy next to the estimate"
  monitor churn@production --log bundles/churn-requests.jsonl \
    --reference example_notebooks/data/churn_q1.csv --labels example_notebooks/data/churn_q2_labels.csv \
    --key id
  grep -A8 -i "realised" bundles/churn-monitor.txt
  echo "-- retrain on the new quarter, compare with production on held-out rows, promote if better"
  .venv/bin/nbops retrain churn --data example_notebooks/data/churn_q2.csv --key id
  after=$(served "$before")
  echo "the running server switched from v$before to v$after without a restart"
  .venv/bin/python scripts/send_requests.py example_notebooks/data/churn_q2_requests.csv --url "http://127.0.0.1:$port"
  .venv/bin/nbops registry history churn --alias production
  echo "-- the same loop for a scheduler: an Airflow DAG monitor -> retrain -> compare -> promote"
  echo "-- installing Airflow for this step: the export checks the DAG with it (scripts/setup.sh --extra airflow)"
  bash scripts/setup.sh --extra airflow
  .venv/bin/nbops export example_notebooks/churn.ipynb -o pipelines/airflow --target airflow --loop churn --schedule @daily
  kill "$server"
}

# name, title; the longest (churn) starts first
sections=(
  "notebooks|the example notebooks: cells and steps (nbops tags), exported (nbops export), run as packages"
  "tracked|tracked runs: nbops run, a sweep and a CI gate; a bundle from the run, scoring records in batch"
  "passengers|a train/test notebook bundled as it is written: the serving path is sliced from its cells"
  "untagged|an untagged tutorial notebook, as its author left it: suggested tags, export, run, bundle"
  "kubeflow|the penguins pipeline on Kubeflow Pipelines: exported, compiled, run on kfp's local runner"
  "churn|after the first deploy (churn example): registry, serving, monitoring, retraining, Airflow loop"
)
logs=bundles/demo-logs
rm -rf "$logs"
mkdir -p "$logs"
declare -A pid
trap 'kill 0' INT TERM  # stop every section (and the churn server) with the demo
for entry in "churn|" "${sections[@]}"; do
  name=${entry%%|*}
  [ -z "${pid[$name]:-}" ] || continue
  (
    begun=$EPOCHREALTIME
    "$name"
    echo "   ($(elapsed "$begun"))"
  ) > "$logs/$name.log" 2>&1 &
  pid[$name]=$!
done
failed=()
for entry in "${sections[@]}"; do
  name=${entry%%|*}
  echo "== ${entry#*|}"
  code=0
  wait "${pid[$name]}" || code=$?
  cat "$logs/$name.log"
  if [ "$code" != 0 ]; then
    echo "!! this section failed (exit $code)"
    failed+=("$name")
  fi
done
if [ "${#failed[@]}" != 0 ]; then
  echo "== the main job FAILED in $(elapsed "$started"): ${failed[*]}" >&2
  exit 1
fi
echo "== the main job finished in $(elapsed "$started")"
