"""Train, backtest and register the product demand (units next 7 days) and sale probability models (MLflow).

Runs locally (`.venv/bin/python jobs/batch/train_demand.py [--env local]`) and as a Dataproc Serverless batch
(`scripts/submit.sh batch train_demand`); prints its figures as one JSON line. See docs/batch.md.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit / gcloud): make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.batch import cli, stages  # noqa: E402

if __name__ == "__main__":
    args = cli.parser("train_demand", __doc__.splitlines()[0]).parse_args()
    sys.exit(cli.main("train_demand", stages.train_demand, args))
