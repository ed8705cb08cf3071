#!/usr/bin/env bash
# Run the business dashboard (python -m jobs.serving.dashboard) in the background: start | stop | status | logs.
# Log: var/log/dashboard.log, pid: var/run/dashboard.pid. Extra args after `start` go to the app
# (e.g. --port 8051 --env local). It listens on http://127.0.0.1:8050 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PIDFILE=var/run/dashboard.pid
LOG=var/log/dashboard.log
say() { printf '[dashboard] %s\n' "$*"; }
. scripts/service_lib.sh

case "${1:-}" in
  start)
    shift
    if svc_running; then say "already running (pid $(cat "$PIDFILE")), log $LOG"; exit 0; fi
    svc_launch "$PY" -m jobs.serving.dashboard "$@"
    for _ in $(seq 1 120); do
      url=$(svc_new_log | sed -n 's/^\[dashboard\] serving \(http[^ ]*\).*/\1/p' | tail -n 1)
      [[ -n "$url" ]] && { say "started (pid $(cat "$PIDFILE")): open $url   log $LOG"; exit 0; }
      svc_running || svc_failed_start "the dashboard" 20
      sleep 0.5
    done
    say "error: not started after 60 s, see $LOG"; exit 1 ;;
  stop) svc_stop 40 0.25 ;;
  status) svc_status ", log $LOG" ;;
  logs) tail -n 50 "$LOG" ;;
  *) echo "usage: $0 start [dashboard args]|stop|status|logs" >&2; exit 2 ;;
esac
