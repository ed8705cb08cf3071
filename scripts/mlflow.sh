#!/usr/bin/env bash
# scripts/mlflow.sh - the local MLflow tracking server (SQLite backend, local artifact store).
#
# Usage: scripts/mlflow.sh start|stop|status|ui
#   start   start the server in the background on 127.0.0.1:$MLFLOW_PORT (waits until it answers)
#   stop    stop it (the pid file's process group only)
#   status  exit 0 when it answers
#   ui      start it if needed and print the address of the web UI
#
# Environment: MLFLOW_PORT (default 5000), MLFLOW_DIR (default var/mlflow: mlflow.db + artifacts/),
# MLFLOW_LOG (default var/log/mlflow.log). Tests start their own on a free port under a tmp dir.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${MLFLOW_PORT:-5000}"
DIR="${MLFLOW_DIR:-$ROOT/var/mlflow}"
LOG="${MLFLOW_LOG:-$ROOT/var/log/mlflow-$PORT.log}"
PIDFILE="$DIR/mlflow-$PORT.pid"
MLFLOW="$ROOT/.venv/bin/mlflow"
URL="http://127.0.0.1:$PORT"

die() { echo "mlflow: $*" >&2; exit 2; }
answers() { "$ROOT/.venv/bin/python" - "$URL" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/health", timeout=2).read()
PY
}
running_pid() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && cat "$PIDFILE"; }

start() {
  [[ -x "$MLFLOW" ]] || die "no $MLFLOW: run 'make setup'"
  [[ "$PORT" =~ ^[0-9]+$ ]] || die "MLFLOW_PORT must be a number (got '$PORT')"
  if running_pid >/dev/null && answers; then echo "mlflow: already running on $URL"; return; fi
  mkdir -p "$DIR/artifacts" "$(dirname "$LOG")"
  # setsid: its own process group, so stop ends the server and its workers, nothing else.
  # No server-side job execution (MLflow 3's GenAI jobs: huey consumers that outlived the group under
  # load, and that this project never uses)
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid "$MLFLOW" server --host 127.0.0.1 --port "$PORT" --workers 1 \
      --backend-store-uri "sqlite:///$DIR/mlflow.db" --artifacts-destination "$DIR/artifacts" \
      >"$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 120); do
    if answers; then echo "mlflow: tracking server on $URL (store $DIR)"; return; fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -5 "$LOG" >&2; die "server exited (log $LOG)"; }
    sleep 0.5
  done
  die "server did not answer on $URL within 60 s (log $LOG)"
}

stop() {
  local pid
  if pid=$(running_pid); then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "mlflow: stopped"
  else
    echo "mlflow: not running"
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "mlflow: running on $URL"; else echo "mlflow: not running"; exit 1; fi ;;
  ui) start; echo "MLflow UI: $URL" ;;
  *) die "usage: scripts/mlflow.sh start|stop|status|ui" ;;
esac
