# Sourced by the service scripts (dashboard.sh, smtp.sh, streaming.sh): one background process in its
# own session and process group (setsid), tracked by a pid file, logging to a file.
# The caller sets PIDFILE and LOG and defines say().

# True while the process of $PIDFILE is alive.
svc_running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# svc_launch COMMAND...: start COMMAND detached, appending to $LOG; START_LINE = the log's lines before it.
svc_launch() {
  mkdir -p "$(dirname "$PIDFILE")" "$(dirname "$LOG")"
  : >>"$LOG"
  START_LINE=$(wc -l <"$LOG")
  setsid nohup "$@" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
}

# What this start wrote to the log so far.
svc_new_log() { tail -n +"$((START_LINE + 1))" "$LOG"; }

# svc_failed_start WHAT LINES: the process died while starting: say so, show its last LINES log lines.
svc_failed_start() {
  say "error: $1 exited during start-up:"
  svc_new_log | tail -n "$2" >&2
  rm -f "$PIDFILE"
  exit 1
}

# svc_stop [STEPS] [STEP_S]: TERM the process group, wait up to STEPS x STEP_S seconds, then KILL it.
svc_stop() {
  local steps=${1:-40} step=${2:-0.25} pid
  if ! svc_running; then say "not running"; rm -f "$PIDFILE"; return 0; fi
  pid=$(cat "$PIDFILE")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
  for _ in $(seq 1 "$steps"); do kill -0 "$pid" 2>/dev/null || break; sleep "$step"; done
  kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
  rm -f "$PIDFILE"
  say "stopped"
}

# svc_status DETAILS: "running (pid N)DETAILS", or "not running" with exit status 3.
svc_status() {
  if svc_running; then say "running (pid $(cat "$PIDFILE"))$1"; else say "not running"; return 3; fi
}
