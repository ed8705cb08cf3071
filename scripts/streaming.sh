#!/usr/bin/env bash
# Run the streaming app (jobs/streaming/app.py) in the background: start | stop | status | logs.
# Log: var/log/streaming.log, pid: var/run/streaming.pid. Extra args after `start` go to the app.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PIDFILE=var/run/streaming.pid
LOG=var/log/streaming.log
say() { printf '[streaming] %s\n' "$*"; }
running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-}" in
  start)
    shift
    if running; then say "already running (pid $(cat "$PIDFILE"))"; exit 0; fi
    mkdir -p var/run var/log
    setsid nohup "$PY" jobs/streaming/app.py "$@" >>"$LOG" 2>&1 </dev/null &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 240); do
      grep -q "\[streaming\] started" <(tail -n 5 "$LOG") && { say "started (pid $(cat "$PIDFILE")), log $LOG"; exit 0; }
      running || { say "error: the app exited during start-up:"; tail -n 20 "$LOG" >&2; exit 1; }
      sleep 0.5
    done
    say "error: not started after 120 s, see $LOG"; exit 1 ;;
  stop)
    if ! running; then say "not running"; rm -f "$PIDFILE"; exit 0; fi
    pid=$(cat "$PIDFILE")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PIDFILE"; say "stopped" ;;
  status)
    if running; then say "running (pid $(cat "$PIDFILE")), log $LOG"; else say "not running"; exit 3; fi ;;
  logs) tail -n 50 "$LOG" ;;
  *) echo "usage: $0 start [app args]|stop|status|logs" >&2; exit 2 ;;
esac
