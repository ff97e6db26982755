#!/usr/bin/env bash
# The main job on the examples: export each example notebook as a pipeline package and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for notebook in example_notebooks/*.ipynb; do
  name=$(basename "$notebook" .ipynb)
  echo "== $notebook"
  .venv/bin/nbops tags "$notebook"
  .venv/bin/nbops export "$notebook" -o pipelines
  echo "-- metrics of the exported pipeline (python -m $name):"
  (cd "pipelines/$name" && ../../.venv/bin/python -m "$name")
done
echo "== tracked runs: nbops run, a sweep, and a CI gate on the penguins notebook"
.venv/bin/nbops run example_notebooks/penguins.ipynb -p n_estimators 100
.venv/bin/nbops sweep example_notebooks/synthetic_regression.ipynb --grid alpha=0.1,1,10 --sort r2
.venv/bin/nbops ci example_notebooks/penguins.ipynb --gate "accuracy >= 0.9" --gate "slices.accuracy.min >= 0.85" --gate "data.drifted_columns <= 1"
.venv/bin/nbops runs list -n 5
echo "== a deployable bundle from that run, scoring raw records in batch"
.venv/bin/nbops bundle --run latest
.venv/bin/python -c "from palmerpenguins import load_penguins; load_penguins().drop(columns=['species']).dropna().head(20).to_csv('bundles/new_penguins.csv', index=False)"
bundle=$(ls -d bundles/penguins-v* | grep -v tar.gz | sort -V | tail -1)
.venv/bin/nbops predict "$bundle" bundles/new_penguins.csv -o bundles/new_penguins_predictions.csv
head -5 bundles/new_penguins_predictions.csv
echo "== a train/test notebook bundled as it is written: the serving path is sliced from its cells"
.venv/bin/nbops run example_notebooks/passengers.ipynb
.venv/bin/nbops bundle --run latest
bundle=$(ls -d bundles/passengers-v* | grep -v tar.gz | sort -V | tail -1)
sed -n '/^def serve/,$p' "$bundle/code/passengers/serving.py"
.venv/bin/nbops predict "$bundle" example_notebooks/data/passengers_test.csv -o bundles/passengers_predictions.csv
head -5 bundles/passengers_predictions.csv
echo "== an untagged tutorial notebook, as its author left it: suggested tags, export, run, bundle"
mkdir -p pipelines/untagged
cp tests/fixtures/tutorials/iris_knn.ipynb pipelines/untagged/
.venv/bin/nbops tag pipelines/untagged/iris_knn.ipynb --write
.venv/bin/nbops export pipelines/untagged/iris_knn.ipynb -o pipelines
(cd pipelines/iris_knn && ../../.venv/bin/python -m iris_knn)
.venv/bin/nbops run pipelines/untagged/iris_knn.ipynb
.venv/bin/nbops bundle --run latest
echo "== the penguins pipeline on Kubeflow Pipelines: exported, compiled, and run on kfp's local runner"
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
echo "== after the first deploy (churn example): registry, serving production, monitoring, retraining"
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
echo "-- monitor: drift, and the accuracy estimated without labels (exit 31 is an alert)"
.venv/bin/nbops monitor churn@production --log bundles/churn-requests.jsonl \
  --reference example_notebooks/data/churn_q1.csv --html bundles/churn-monitor.html | tail -8 \
  || echo "monitor: exit ${PIPESTATUS[0]}"
echo "-- once labels arrive: realised accuracy next to the estimate"
.venv/bin/nbops monitor churn@production --log bundles/churn-requests.jsonl \
  --reference example_notebooks/data/churn_q1.csv --labels example_notebooks/data/churn_q2_labels.csv \
  --key id | grep -A8 -i "realised" || true
echo "-- retrain on the new quarter, compare with production on held-out rows, promote if better"
.venv/bin/nbops retrain churn --data example_notebooks/data/churn_q2.csv --key id
after=$(served "$before")
echo "the running server switched from v$before to v$after without a restart"
.venv/bin/python scripts/send_requests.py example_notebooks/data/churn_q2_requests.csv --url "http://127.0.0.1:$port"
.venv/bin/nbops registry history churn --alias production
echo "-- the same loop for a scheduler: an Airflow DAG monitor -> retrain -> compare -> promote"
.venv/bin/nbops export example_notebooks/churn.ipynb -o pipelines --target airflow --loop churn --schedule @daily
kill "$server"
