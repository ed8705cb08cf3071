"""Mailed vs control uplift of the cart-recovery emails -> gold/retarget_uplift (overwrite).

Runs locally (`.venv/bin/python jobs/batch/retarget_uplift.py [--env local] [--window-days 7]`, or
`make uplift`), as a stage of `make batch` and of the nightly chain, and as a Dataproc Serverless batch
(`scripts/submit.sh batch retarget_uplift`); prints its figures as one JSON line. See docs/retarget.md.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit / gcloud): make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.batch import cli, stages  # noqa: E402

if __name__ == "__main__":
    p = cli.parser("retarget_uplift", __doc__.splitlines()[0])
    p.add_argument("--window-days", type=int, default=7, help="purchase window after the cart's expiry (default 7)")
    args = p.parse_args()
    if not 1 <= args.window_days <= 90:
        p.error(f"--window-days must be between 1 and 90, got {args.window_days}")
    sys.exit(cli.main("retarget_uplift", stages.retarget_uplift, args, options=("window_days",)))
