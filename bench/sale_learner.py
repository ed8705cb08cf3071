"""The sale-probability classifier's learners side by side: MLlib's ``GBTClassifier`` and XGBoost's Spark
estimator (``ml.sale_learner``), on the same backtest of the same lake.

Reads ``features/product_daily`` of a lake the batch chain has built (``make batch``, or ``make
bench-batch``'s lake under ``var/bench/``), runs :func:`ml.sale_probability.backtest_predictions` (the
rolling-origin folds the chain evaluates; no peer, no MLflow) once per learner and reports the holdout
PR-AUC and Brier score of each against the 28-day frequency baseline, and the seconds each backtest took
(one fit per fold; the chain adds one refit on the latest rows).

Run: ``.venv/bin/python -m bench.sale_learner --lake var/bench/batch_1000000/lake [--learners mllib_gbt,xgboost]``.
Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import get_args

from lib.config import MlConfig, load_config
from lib.spark import build_session
from ml import sale_probability

LEARNERS = get_args(MlConfig.model_fields["sale_learner"].annotation)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lake", required=True, help="lake root holding features/product_daily")
    ap.add_argument("--learners", default=",".join(LEARNERS), help=f"comma-separated, of {', '.join(LEARNERS)}")
    args = ap.parse_args(argv)
    learners = [x for x in args.learners.split(",") if x]
    if bad := [x for x in learners if x not in LEARNERS]:
        ap.error(f"unknown learner {bad[0]!r}: choose from {', '.join(LEARNERS)}")
    lake = Path(args.lake).resolve()
    if not (lake / "features" / "product_daily" / "_delta_log").is_dir():
        ap.error(f"{lake}/features/product_daily is not a Delta table: run the batch chain on that lake first")
    cfg = load_config("local", environ={**os.environ, "SHOP__LAKE__ROOT": str(lake)})
    spark = build_session(cfg, "bench-sale-learner", batch=True)
    panel = spark.read.format("delta").load(cfg.lake.table("features", "product_daily")).persist()
    rows = panel.count()
    out: dict = {"lake": str(lake), "panel_rows": rows}
    for learner in learners:
        run_cfg = cfg.model_copy(update={"ml": cfg.ml.model_copy(update={"sale_learner": learner})})
        t0 = time.monotonic()
        pred, _ = sale_probability.backtest_predictions(panel, run_cfg)
        seconds = round(time.monotonic() - t0, 1)
        m = sale_probability.metrics(pred)
        out[learner] = {"backtest_s": seconds, "fits": run_cfg.ml.backtest_folds, "test_rows": len(pred),
                        **{k: round(v, 4) for k, v in m["model"].items()}}
        out["frequency"] = {k: round(v, 4) for k, v in m["frequency"].items()}  # the same rows for every learner
        print(f"[sale_learner] {learner}: {out[learner]}; frequency {out['frequency']}", file=sys.stderr, flush=True)
    spark.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
