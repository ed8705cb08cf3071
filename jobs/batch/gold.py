"""Gold analyst tables (daily sales, funnel, cart abandonment, cohorts) and feature tables from silver; registers the lake's tables for Spark SQL.

Runs locally (`.venv/bin/python jobs/batch/gold.py [--env local]`) and as a Dataproc Serverless batch
(`scripts/submit.sh batch gold`); prints its figures as one JSON line. See docs/batch.md.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit / gcloud): make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.batch import cli, stages  # noqa: E402

if __name__ == "__main__":
    args = cli.parser("gold", __doc__.splitlines()[0]).parse_args()
    sys.exit(cli.main("gold", stages.gold, args))
