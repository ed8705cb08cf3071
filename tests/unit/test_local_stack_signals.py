"""Tools that start services (benchmarks through tools.local_stack.Stack) stop them on SIGTERM as on
Ctrl-C: SIGTERM unwinds through the caller's ``finally``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from lib.config import PROJECT_ROOT

PROGRAM = """
import sys, time
from tools.local_stack import sigterm_as_ctrl_c
sigterm_as_ctrl_c()
try:
    print("ready", flush=True)
    time.sleep(60)
finally:
    print("stopped the services", flush=True)
"""


def test_sigterm_unwinds_through_finally_like_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert "stopped the services" in out, err
    assert time.monotonic() - t0 < 10
    assert "KeyboardInterrupt" in err  # unwound as Ctrl-C would


def test_a_handler_the_program_installed_is_kept():
    from tools.local_stack import sigterm_as_ctrl_c

    def mine(signum, frame):
        pass

    old = signal.signal(signal.SIGTERM, mine)
    try:
        sigterm_as_ctrl_c()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, old)
