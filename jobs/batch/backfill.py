"""Backfill historical event CSVs into bronze, then silver/quarantine/ops with the streaming cleaning code.

Runs locally (`.venv/bin/python jobs/batch/backfill.py --input var/data [--env local]`) and as a
Dataproc Serverless batch (`scripts/submit.sh batch backfill`, input defaults to `paths.data_dir`,
the landing folder); prints its figures as one JSON line. See docs/batch.md.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit / gcloud): make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.batch import cli, stages  # noqa: E402

if __name__ == "__main__":
    p = cli.parser("backfill", __doc__.splitlines()[0])
    p.add_argument("--input", help="a CSV file or a folder of them (default: paths.data_dir)")
    sys.exit(cli.main("backfill", stages.backfill, p.parse_args(), options=("input",)))
