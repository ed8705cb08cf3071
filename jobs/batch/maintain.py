"""Delta table maintenance: compaction (OPTIMIZE) and retention (VACUUM) of every lake table.

Runs locally (`.venv/bin/python jobs/batch/maintain.py [--env local]`) and as a Dataproc Serverless batch
(`scripts/submit.sh batch maintain`); prints its figures as one JSON line. See docs/batch.md.
The retarget/* tables get their own retention, `retarget.history_retention_hours` (VACUUM and a cut of
their Delta log, so replaced subscriber lists and erased rows are physically gone; docs/retarget.md).
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit / gcloud): make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.batch import cli, stages  # noqa: E402

if __name__ == "__main__":
    args = cli.parser("maintain", __doc__.splitlines()[0]).parse_args()
    sys.exit(cli.main("maintain", stages.maintain, args))
