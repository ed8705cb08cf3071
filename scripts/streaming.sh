#!/usr/bin/env bash
# Run the streaming app (jobs/streaming/app.py) in the background: start | stop | status | logs.
# Log: var/log/streaming.log, pid: var/run/streaming.pid. Extra args after `start` go to the app.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PIDFILE=var/run/streaming.pid
LOG=var/log/streaming.log
say() { printf '[streaming] %s\n' "$*"; }
. scripts/service_lib.sh

case "${1:-}" in
  start)
    shift
    if svc_running; then say "already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    svc_launch "$PY" jobs/streaming/app.py "$@"
    for _ in $(seq 1 240); do
      grep -q "\[streaming\] started" <(svc_new_log) && { say "started (pid $(cat "$PIDFILE")), log $LOG"; exit 0; }
      svc_running || svc_failed_start "the app" 20
      sleep 0.5
    done
    say "error: not started after 120 s, see $LOG"; exit 1 ;;
  stop) svc_stop 60 0.5 ;;
  status) svc_status ", log $LOG" ;;
  logs) tail -n 50 "$LOG" ;;
  *) echo "usage: $0 start [app args]|stop|status|logs" >&2; exit 2 ;;
esac
