#!/usr/bin/env bash
# Regenerate requirements/lock/{app,tools}.txt: resolve requirements/dev.txt and requirements/tools.txt
# afresh (newest versions their pins allow) in throwaway virtualenvs and freeze the result. Run it after
# changing a pin in requirements/*.txt, then `make setup` and `make test` before committing the locks.
#
# Usage: scripts/lock.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

lock() {  # lock NAME REQUIREMENTS HEADER
  local name=$1 req=$2 header=$3 venv=$work/$1
  "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade -r requirements/bootstrap.txt
  "$venv/bin/uv" pip install -q --python "$venv/bin/python" -r "$req"
  { printf '%s\n' "$header"
    "$venv/bin/python" -m pip freeze --all --disable-pip-version-check \
      | grep -v -E '^(pip|setuptools|wheel)==' | sort -f
  } > "requirements/lock/$name.txt"
  echo "[lock] requirements/lock/$name.txt: $(grep -c '==' "requirements/lock/$name.txt") packages"
}
mkdir -p requirements/lock
lock app requirements/dev.txt "# The whole .venv, every package pinned (the top-level pins are in requirements/*.txt).
# make setup installs with this as constraints (uv); regenerate with scripts/lock.sh after changing a pin."
lock tools requirements/tools.txt "# The whole .venv-tools, every package pinned (checkov's own pin: requirements/tools.txt).
# scripts/setup_tools.sh installs with this as constraints (uv); regenerate with scripts/lock.sh."
