#!/usr/bin/env bash
# The main job on the examples: export each example notebook as a pipeline package and run it.
# Each section ends with its duration; the set-up installs only what the main job uses, and a
# step that needs an engine (kfp) installs it when it is reached (scripts/setup.sh --extra).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$EPOCHREALTIME
section_started=$started
elapsed() { LC_ALL=C awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f s", b - a }'; }
section() {  # close the section before (its duration) and open the next one, titled $1
  echo "   ($(elapsed "$section_started"))"
  section_started=$EPOCHREALTIME
  echo "== $1"
}
echo "== set-up: .venv with nbops and the examples' packages (scripts/setup.sh)"
bash scripts/setup.sh
for notebook in example_notebooks/*.ipynb; do
  name=$(basename "$notebook" .ipynb)
  section "$notebook"
  .venv/bin/nbops tags "$notebook"
  .venv/bin/nbops export "$notebook" -o pipelines
  echo "-- metrics of the exported pipeline (python -m $name):"
  (cd "pipelines/$name" && ../../.venv/bin/python -m "$name")
done
section "tracked runs: nbops run, a sweep, and a CI gate on the penguins notebook"
.venv/bin/nbops run example_notebooks/penguins.ipynb -p n_estimators 100
.venv/bin/nbops sweep example_notebooks/synthetic_regression.ipynb --grid alpha=0.1,1,10 --sort r2
.venv/bin/nbops ci example_notebooks/penguins.ipynb --gate "accuracy >= 0.9" --gate "slices.accuracy.min >= 0.85" --gate "data.drifted_columns <= 1"
.venv/bin/nbops runs list -n 5
section "a deployable bundle from that run, scoring raw records in batch"
.venv/bin/nbops bundle --run latest
.venv/bin/python -c "from palmerpenguins import load_penguins; load_penguins().drop(columns=['species']).dropna().head(20).to_csv('bundles/new_penguins.csv', index=False)"
bundle=$(ls -d bundles/penguins-v* | grep -v tar.gz | sort -V | tail -1)
.venv/bin/nbops predict "$bundle" bundles/new_penguins.csv -o bundles/new_penguins_predictions.csv
head -5 bundles/new_penguins_predictions.csv
section "a train/test notebook bundled as it is written: the serving path is sliced from its cells"
.venv/bin/nbops run example_notebooks/passengers.ipynb
.venv/bin/nbops bundle --run latest
bundle=$(ls -d bundles/passengers-v* | grep -v tar.gz | sort -V | tail -1)
sed -n '/^def serve/,$p' "$bundle/code/passengers/serving.py"
.venv/bin/nbops predict "$bundle" example_notebooks/data/passengers_test.csv -o bundles/passengers_predictions.csv
head -5 bundles/passengers_predictions.csv
section "an untagged tutorial notebook, as its author left it: suggested tags, export, run, bundle"
mkdir -p pipelines/untagged
cp tests/fixtures/tutorials/iris_knn.ipynb pipelines/untagged/
.venv/bin/nbops tag pipelines/untagged/iris_knn.ipynb --write
.venv/bin/nbops export pipelines/untagged/iris_knn.ipynb -o pipelines
(cd pipelines/iris_knn && ../../.venv/bin/python -m iris_knn)
.venv/bin/nbops run pipelines/untagged/iris_knn.ipynb
.venv/bin/nbops bundle --run latest
section "the penguins pipeline on Kubeflow Pipelines: exported, compiled, and run on kfp's local runner"
echo "-- installing kfp for this step (scripts/setup.sh --extra kfp)"
bash scripts/setup.sh --extra kfp
.venv/bin/nbops export example_notebooks/penguins.ipynb -o pipelines --target kfp --no-install
(cd example_notebooks && PATH="$PWD/../.venv/bin:$PATH" python -c "
import sys
sys.path.insert(0, '../pipelines/penguins')
from kfp import local
local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root='../pipelines/.kfp-local')
import kfp_pipeline
task = kfp_pipeline.penguins_pipeline(n_estimators=50)
print('metrics of the pipeline on kfp:', task.output.metadata)
" 2>&1 | grep -E "^metrics|finished with status")
section "after the first deploy (churn example): the registry, serving churn@production"
.venv/bin/nbops run example_notebooks/churn.ipynb
.venv/bin/nbops bundle --run latest
bundle=$(ls -d bundles/churn-v* | grep -v tar.gz | sort -V | tail -1)
.venv/bin/nbops promote "$bundle" --alias production --reason "first deploy"
port=$(.venv/bin/python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
rm -f bundles/churn-requests.jsonl
.venv/bin/nbops serve churn@production --port "$port" --log-sample 1 --log-path bundles/churn-requests.jsonl \
  --log-key id --poll 0.5 > bundles/churn-serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
served() {  # the version the server answers with now; waits (up to 2 min) for it to differ from $1
  .venv/bin/python - "$port" "${1:-}" <<'PY'
import json, sys, time, urllib.request
port, old = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 120
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
        sys.exit(f"the server did not answer with a version other than {old!r} in 2 minutes")
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
section "churn: monitoring the requests: drift, and the accuracy estimated without labels"
monitor churn@production --log bundles/churn-requests.jsonl \
  --reference example_notebooks/data/churn_q1.csv --html bundles/churn-monitor.html
tail -8 bundles/churn-monitor.txt
echo "-- once labels arrive: realised accuracy next to the estimate"
monitor churn@production --log bundles/churn-requests.jsonl \
  --reference example_notebooks/data/churn_q1.csv --labels example_notebooks/data/churn_q2_labels.csv \
  --key id
grep -A8 -i "realised" bundles/churn-monitor.txt
section "churn: retrain on the new quarter, compare with production on held-out rows, promote if better"
.venv/bin/nbops retrain churn --data example_notebooks/data/churn_q2.csv --key id
after=$(served "$before")
echo "the running server switched from v$before to v$after without a restart"
.venv/bin/python scripts/send_requests.py example_notebooks/data/churn_q2_requests.csv --url "http://127.0.0.1:$port"
.venv/bin/nbops registry history churn --alias production
section "churn: the same loop for a scheduler: an Airflow DAG monitor -> retrain -> compare -> promote"
.venv/bin/nbops export example_notebooks/churn.ipynb -o pipelines --target airflow --loop churn --schedule @daily
kill "$server"
echo "   ($(elapsed "$section_started"))"
echo "== the main job finished in $(elapsed "$started")"
