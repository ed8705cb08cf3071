#!/usr/bin/env bash
# A real local SMTP server (aiosmtpd, scripts/smtp_server.py) storing every message in a Maildir:
# start | stop | status | logs. 127.0.0.1 only.
# Environment: SMTP_PORT (8025), MAILDIR (var/mail), SMTP_STATE (var: pid in $SMTP_STATE/run, log in $SMTP_STATE/log).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PORT=${SMTP_PORT:-8025}
MAILDIR=${MAILDIR:-var/mail}
STATE=${SMTP_STATE:-var}
PIDFILE=$STATE/run/smtp.pid
LOG=$STATE/log/smtp.log
say() { printf '[smtp] %s\n' "$*"; }
running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT, Maildir $MAILDIR"; exit 0; fi
    mkdir -p "$STATE/run" "$STATE/log"
    : >>"$LOG"
    start_line=$(wc -l <"$LOG")
    setsid nohup "$PY" scripts/smtp_server.py --port "$PORT" --maildir "$MAILDIR" >>"$LOG" 2>&1 </dev/null &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 60); do
      if tail -n +"$((start_line + 1))" "$LOG" | grep -q '^listening on'; then
        say "started (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT, mail stored in $MAILDIR/new"; exit 0
      fi
      running || { say "error: the SMTP server exited during start-up:"; tail -n +"$((start_line + 1))" "$LOG" | tail -n 5 >&2; rm -f "$PIDFILE"; exit 1; }
      sleep 0.25
    done
    say "error: not listening after 15 s, see $LOG"; exit 1 ;;
  stop)
    if ! running; then say "not running"; rm -f "$PIDFILE"; exit 0; fi
    pid=$(cat "$PIDFILE")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
    rm -f "$PIDFILE"; say "stopped" ;;
  status)
    if running; then say "running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT, Maildir $MAILDIR"; else say "not running"; exit 3; fi ;;
  logs) tail -n 50 "$LOG" ;;
  *) echo "usage: $0 start|stop|status|logs" >&2; exit 2 ;;
esac
