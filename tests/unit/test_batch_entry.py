"""The one batch entry point, ``jobs/batch/run.py <stage>``: a missing or unknown stage and a stage's
bad option are one line on stderr and exit 2, before any Spark session starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lib.batch.chain import CHAIN
from lib.config import PROJECT_ROOT

RUN = PROJECT_ROOT / "jobs" / "batch" / "run.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "message"), [
    ((), "run.py: a stage is required; choose from " + ",".join(CHAIN)),
    (("nope",), "run.py: unknown stage 'nope'; choose from " + ",".join(CHAIN)),
    (("retarget_uplift", "--window-days", "0"), "retarget_uplift: --window-days must be between 1 and 90, got 0"),
    (("gold", "--input", "x.csv"), "gold: unrecognized arguments: --input x.csv"),
])
def test_mistakes_are_one_line_and_exit_2(args, message):
    proc = _run(*args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", message + "\n")


def test_help_lists_the_stages():
    proc = _run("--help")
    assert proc.returncode == 0
    assert all(stage in proc.stdout for stage in CHAIN)


HEAVY = ("pyspark", "mlflow", "xgboost", "sklearn", "ml.demand")


@pytest.mark.parametrize(("module", "args"), [
    ("jobs.batch.run", ["nope"]),
    ("jobs.batch.run", ["retarget_uplift", "--window-days", "0"]),
    ("jobs.batch.run", ["gold", "--env", "nope"]),  # a config mistake too
    ("jobs.ops.batch_chain", ["--stages", "gold,nope"]),
    ("jobs.ops.batch_chain", ["--env", "nope"]),
])
def test_a_mistake_is_answered_before_spark_and_the_models_load(module, args):
    """A typo must not cost the ~15 s of importing pyspark, MLflow and the models (nor a Dataproc batch's
    start-up): the entry points check the command line against the light lib/batch/chain.py, and the config, first."""
    probe = (f"import sys, {module} as m\n"
             f"try:\n    rc = m.main({args!r})\nexcept SystemExit as e:\n    rc = e.code\n"
             f"print(rc, sorted(h for h in {HEAVY!r} if h in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          cwd=PROJECT_ROOT)
    assert proc.stdout.split(None, 1) == ["2", "[]\n"], proc.stdout + proc.stderr
