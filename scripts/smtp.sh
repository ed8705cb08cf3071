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
. scripts/service_lib.sh

case "${1:-}" in
  start)
    if svc_running; then say "already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT, Maildir $MAILDIR"; exit 0; fi
    svc_launch "$PY" scripts/smtp_server.py --port "$PORT" --maildir "$MAILDIR"
    for _ in $(seq 1 60); do
      if grep -q '^listening on' <(svc_new_log); then
        say "started (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT, mail stored in $MAILDIR/new"; exit 0
      fi
      svc_running || svc_failed_start "the SMTP server" 5
      sleep 0.25
    done
    say "error: not listening after 15 s, see $LOG"; exit 1 ;;
  stop) svc_stop 40 0.25 ;;
  status) svc_status " on 127.0.0.1:$PORT, Maildir $MAILDIR" ;;
  logs) tail -n 50 "$LOG" ;;
  *) echo "usage: $0 start|stop|status|logs" >&2; exit 2 ;;
esac
