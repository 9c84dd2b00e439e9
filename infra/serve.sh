#!/usr/bin/env bash
# The Prefect server (UI and API) and the MLflow UI as local processes on 127.0.0.1, until
# Ctrl-C. Run from the project folder (`make serve`); the MLflow UI reads the sqlite store
# that `recmill run` writes.
set -euo pipefail
BIN="${BIN:-.venv/bin}"
PREFECT_PORT="${PREFECT_PORT:-4200}"
MLFLOW_PORT="${MLFLOW_PORT:-5000}"
mkdir -p mlflow

"$BIN/prefect" server start --host 127.0.0.1 --port "$PREFECT_PORT" &
prefect_pid=$!
"$BIN/mlflow" ui --host 127.0.0.1 --port "$MLFLOW_PORT" \
  --backend-store-uri sqlite:///mlflow/mlflow.db --default-artifact-root mlflow/artifacts &
mlflow_pid=$!
trap 'kill "$prefect_pid" "$mlflow_pid" 2>/dev/null; wait' INT TERM EXIT

echo "Prefect UI: http://127.0.0.1:$PREFECT_PORT   MLflow UI: http://127.0.0.1:$MLFLOW_PORT"
echo "In another shell: export PREFECT_API_URL=http://127.0.0.1:$PREFECT_PORT/api, then"
echo "  $BIN/recmill schedule    (the weekly deployment)   or   $BIN/recmill run    (one run, kept in the UI)"
wait -n "$prefect_pid" "$mlflow_pid"
