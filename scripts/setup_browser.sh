#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser tests (driven by Playwright through
# executable_path=/usr/bin/chromium; Playwright's own browser downloads are never used).
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (apt-get) otherwise.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
say() { printf '[browser] %s\n' "$*"; }

if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
  say "error: $CHROMIUM is missing; install it as root: sudo apt-get update && sudo apt-get install -y chromium" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "error: $CHROMIUM is missing and there is no apt-get here; install the distribution's chromium package" >&2
  exit 1
fi
say "installing chromium with apt-get (once)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
[[ -x "$CHROMIUM" ]] || { say "error: apt-get installed chromium but $CHROMIUM is not there" >&2; exit 1; }
say "$("$CHROMIUM" --version 2>/dev/null | head -n 1)"
