"""The one batch entry point, ``jobs/batch/run.py <stage>``: a missing or unknown stage and a stage's
bad option are one line on stderr and exit 2, before any Spark session starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lib.batch.stages import STAGES
from lib.config import PROJECT_ROOT

RUN = PROJECT_ROOT / "jobs" / "batch" / "run.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "message"), [
    ((), "run.py: a stage is required; choose from " + ",".join(STAGES)),
    (("nope",), "run.py: unknown stage 'nope'; choose from " + ",".join(STAGES)),
    (("retarget_uplift", "--window-days", "0"), "retarget_uplift: --window-days must be between 1 and 90, got 0"),
    (("gold", "--input", "x.csv"), "gold: unrecognized arguments: --input x.csv"),
])
def test_mistakes_are_one_line_and_exit_2(args, message):
    proc = _run(*args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", message + "\n")


def test_help_lists_the_stages():
    proc = _run("--help")
    assert proc.returncode == 0
    assert all(stage in proc.stdout for stage in STAGES)
