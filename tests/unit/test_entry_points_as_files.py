"""Every entry point under jobs/ also runs as a file (``python jobs/ops/sql.py --help``, as ``spark-submit``
and ``gcloud dataproc jobs submit pyspark`` run their main file), from any folder: no ``ModuleNotFoundError``
for ``lib``, and no module of jobs/ shadowing the standard library's (jobs/ops/mailbox.py and ``mailbox``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINTS = sorted(p for p in (REPO / "jobs").glob("*/*.py") if '__name__ == "__main__"' in p.read_text())


def test_the_entry_points_are_found():
    names = {p.relative_to(REPO).as_posix() for p in ENTRY_POINTS}
    assert {"jobs/streaming/app.py", "jobs/streaming/dispatcher.py", "jobs/batch/run.py", "jobs/ops/mailbox.py",
            "jobs/ops/sql.py", "jobs/serving/dashboard.py"} <= names


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_an_entry_point_runs_as_a_file_from_another_folder(path, tmp_path):
    out = subprocess.run([sys.executable, str(path), "--help"], cwd=tmp_path, capture_output=True, text=True,  # noqa: S603
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() and "Traceback" not in out.stderr  # its help (argparse's, or run.py's own text)
