"""Score with each model's champion (by MLflow alias) into gold/demand_forecast, gold/customer_value, gold/customer_segments.

Runs locally (`.venv/bin/python jobs/batch/score.py [--env local]`) and as a Dataproc Serverless batch
(`scripts/submit.sh batch score`); prints its figures as one JSON line. See docs/batch.md.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit / gcloud): make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.batch import cli, stages  # noqa: E402

if __name__ == "__main__":
    args = cli.parser("score", __doc__.splitlines()[0]).parse_args()
    sys.exit(cli.main("score", stages.score, args))
