#!/usr/bin/env bash
# Create or refresh .venv-tools with the pinned infrastructure tools of requirements/tools.txt
# (checkov). Idempotent and quick when nothing changed: the sha256 of requirements/tools.txt and requirements/lock/tools.txt is kept
# in .venv-tools/.requirements.sha256 and compared first.
#
# Usage: scripts/setup_tools.sh [--force]      (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-tools"
REQ="$ROOT/requirements/tools.txt"
LOCK="$ROOT/requirements/lock/tools.txt"  # every transitive package pinned (scripts/lock.sh)
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"
FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  "") ;;
  -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "setup_tools: unknown argument $1" >&2; exit 2 ;;
esac

[[ -f "$REQ" ]] || { echo "setup_tools: missing $REQ" >&2; exit 2; }
# the recipe's name is part of the stamp: a venv installed before its modules were compiled is compiled once
want="$( { cat "$REQ" "$LOCK" "$ROOT/requirements/bootstrap.txt"; echo "uv+compileall"; } | sha256sum | cut -d' ' -f1)"

if [[ $FORCE -eq 0 && -x "$VENV/bin/checkov" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "setup_tools: .venv-tools is up to date"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade -r "$ROOT/requirements/bootstrap.txt"
"$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" -r "$REQ" -c "$LOCK"
# bytecode once, here: where PYTHONDONTWRITEBYTECODE is set, every checkov run would compile it again
"$VENV/bin/python" -m compileall -q -j 0 "$VENV/lib" >/dev/null
"$VENV/bin/checkov" --version >/dev/null
printf '%s\n' "$want" > "$STAMP"
echo "setup_tools: installed $(tr '\n' ' ' < <(grep -v '^\s*#' "$REQ" | grep -v '^\s*$')) into .venv-tools"
