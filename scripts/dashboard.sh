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
running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-}" in
  start)
    shift
    if running; then say "already running (pid $(cat "$PIDFILE")), log $LOG"; exit 0; fi
    mkdir -p var/run var/log
    : >>"$LOG"
    start_line=$(wc -l <"$LOG")
    setsid nohup "$PY" -m jobs.serving.dashboard "$@" >>"$LOG" 2>&1 </dev/null &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 120); do
      url=$(tail -n +"$((start_line + 1))" "$LOG" | sed -n 's/^\[dashboard\] serving \(http[^ ]*\).*/\1/p' | tail -n 1)
      [[ -n "$url" ]] && { say "started (pid $(cat "$PIDFILE")): open $url   log $LOG"; exit 0; }
      running || { say "error: the dashboard exited during start-up:"; tail -n +"$((start_line + 1))" "$LOG" | tail -n 20 >&2; rm -f "$PIDFILE"; exit 1; }
      sleep 0.5
    done
    say "error: not started after 60 s, see $LOG"; exit 1 ;;
  stop)
    if ! running; then say "not running"; rm -f "$PIDFILE"; exit 0; fi
    pid=$(cat "$PIDFILE")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
    rm -f "$PIDFILE"; say "stopped" ;;
  status)
    if running; then say "running (pid $(cat "$PIDFILE")), log $LOG"; else say "not running"; exit 3; fi ;;
  logs) tail -n 50 "$LOG" ;;
  *) echo "usage: $0 start [dashboard args]|stop|status|logs" >&2; exit 2 ;;
esac
