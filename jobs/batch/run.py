"""The batch entry point: run one stage of the batch chain and print its figures as one JSON line.

    python jobs/batch/run.py <stage> [--env local] [stage options]

Stages (lib/batch/stages.py, in the order of conf/batch_chain.yaml): backfill [--input <csv|dir>],
gold, train_demand, train_clv, score, retarget_uplift [--window-days 7], maintain. The same file
runs locally (``make backfill``, ``make gold`` …) and as a Dataproc Serverless batch with the stage as
its first argument (``scripts/submit.sh batch <stage>``, the nightly Workflows chain, ``make
cloud-chain``). ``make batch`` runs every stage in one Spark session (jobs/ops/batch_chain.py).
Exit codes: 0 done, 2 a configuration or command-line mistake, 1 the data or the registry is not in a
state the stage can work from (one line saying which). See docs/batch.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit / gcloud): make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.batch import chain, cli  # noqa: E402

PROG = "run.py"
DESCRIPTIONS = {
    "backfill": "Backfill historical event CSVs into bronze, then silver/quarantine/ops with the streaming cleaning "
                "code.",
    "gold": "Gold analyst tables (daily sales, funnel, cart abandonment, cohorts) and feature tables from silver; "
            "registers the lake's tables for Spark SQL.",
    "train_demand": "Train, backtest and register the product demand (units next 7 days) and sale probability "
                    "models (MLflow).",
    "train_clv": "Train and register the customer lifetime value models: MLlib GBT and the BG/NBD + Gamma-Gamma "
                 "challenger (MLflow).",
    "score": "Score with each model's champion (by MLflow alias) into gold/demand_forecast, gold/customer_value, "
             "gold/customer_segments.",
    "retarget_uplift": "Mailed vs control uplift of the cart-recovery emails -> gold/retarget_uplift (overwrite).",
    "maintain": "Delta table maintenance: compaction (OPTIMIZE) and retention (VACUUM) of every lake table.",
}


def stage_parser(stage: str):
    """The stage's own parser (``--env`` and its options); errors are one line prefixed with the stage."""
    p = cli.parser(stage, DESCRIPTIONS[stage])
    if stage == "backfill":
        p.add_argument("--input", help="a CSV file or a folder of them (default: paths.data_dir)")
    elif stage == "retarget_uplift":
        p.add_argument("--window-days", type=int, default=7,
                       help="purchase window after the cart's expiry (default 7)")
    return p


OPTIONS = {"backfill": ("input",), "retarget_uplift": ("window_days",)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if not argv or argv[0] not in chain.CHAIN:
        got = f"unknown stage {argv[0]!r}" if argv else "a stage is required"
        print(f"{PROG}: {got}; choose from {','.join(chain.CHAIN)}", file=sys.stderr)
        return 2
    stage = argv[0]
    p = stage_parser(stage)
    args = p.parse_args(argv[1:])
    if stage == "retarget_uplift" and not 1 <= args.window_days <= 90:
        p.error(f"--window-days must be between 1 and 90, got {args.window_days}")
    return cli.main(stage, stage, args, options=OPTIONS.get(stage, ()))  # the stage's code loads once the config is right


if __name__ == "__main__":
    sys.exit(main())
