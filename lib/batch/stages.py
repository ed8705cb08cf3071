"""The batch stages, each ``(spark, cfg, **options) -> dict`` of figures: what the batch entry point
``jobs/batch/run.py <stage>`` runs, and what ``make batch`` (``jobs/ops/batch_chain.py``) runs one after the
other.

Their order, and the nightly chain on Google Cloud, come from one file: ``conf/batch_chain.yaml``
(``CHAIN`` and ``NIGHTLY`` of the light ``lib/batch/chain.py``; Terraform reads the same file).
Each stage imports its own pipeline when it runs: a one-stage run (``make uplift``, ``make maintain``,
a Dataproc backfill) does not load MLflow, XGBoost and the models (~5 s) it does not use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import SparkSession

from lib.batch.chain import CHAIN
from lib.config import Config
from lib.delta_io import spark_table_exists

# what writes each table a stage reads, for the one line that says what to run first
WRITTEN_BY = {
    "silver/events": "the backfill stage (make backfill) or the streaming app (make demo)",
    "features/product_daily": "the gold stage (make gold)",
    "features/customer_calibration": "the gold stage (make gold)",
    "features/customer_current": "the gold stage (make gold)",
}


class MissingInput(RuntimeError):
    """A table the stage reads is not in the lake yet; ``str(err)`` is one line naming it and what writes it."""


def require_tables(spark: SparkSession, cfg: Config, *tables: str) -> None:
    """Raise :class:`MissingInput` unless every table (``layer/name``) of ``tables`` is a Delta table in
    the lake: a stage run before the one that writes its input stops in one line, not in Spark's
    ``PATH_NOT_FOUND`` stack trace (locally and on ``gs://`` alike)."""
    missing = [t for t in tables if not spark_table_exists(spark, cfg.lake.table(*t.split("/")))]
    if missing:
        first = dict.fromkeys(WRITTEN_BY[t] for t in missing)
        raise MissingInput(f"no {', '.join(missing)} in the lake {cfg.lake.root}: run {' and '.join(first)} first")


def backfill(spark: SparkSession, cfg: Config, input: str | None = None) -> dict:
    from lib.batch import backfill as batch_backfill  # deferred: each stage loads its own pipeline (module doc)

    t0 = time.monotonic()
    files = batch_backfill.backfill(spark, cfg, batch_backfill.resolve_inputs(input or cfg.paths.data_dir))
    seconds = time.monotonic() - t0  # the Spark session is up: this is the stage's own work
    totals = {k: sum(getattr(f, k) for f in files) for k in ("bronze", "silver", "quarantined", "duplicates")}
    return {"files": [f.as_dict() for f in files], **totals,
            "seconds": round(seconds, 2), "rows_per_s": round(totals["bronze"] / seconds) if seconds > 0 else None}


def gold(spark: SparkSession, cfg: Config) -> dict:
    from lib.batch import gold as batch_gold  # deferred: each stage loads its own pipeline (module doc)

    require_tables(spark, cfg, "silver/events")
    return batch_gold.run(spark, cfg)


def train_demand(spark: SparkSession, cfg: Config) -> dict:
    """Product demand and sale probability (both learn from ``features/product_daily``).

    The peers' backtest (statsforecast, in its own processes: no Spark) runs in a thread beside the two
    models' Spark fits, which keep about one core busy (XGBoost trains with ``spark.task.cpus``
    threads); the evaluation, MLflow logging and registration follow once both are done."""
    from ml import demand, peers, sale_probability  # deferred: each stage loads its own pipeline (module doc)

    require_tables(spark, cfg, "features/product_daily")
    panel = spark.read.format("delta").load(cfg.lake.table("features", "product_daily")).persist()
    try:
        series = peer_pred = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="peers") as pool:
            pending = None
            if cfg.ml.peers:  # one peer backtest for both models (ETS alone costs minutes)
                series = demand.daily_series(panel)
                pending = pool.submit(peers.backtest, series, demand.peer_backtest_days(panel, cfg),
                                      cfg.ml.demand_horizon_days, tuple(cfg.ml.peers),
                                      n_jobs=peers.jobs(cfg.ml.peer_jobs))
            demand_fit, sale_fit = demand.fit(panel, cfg), sale_probability.fit(panel, cfg)
            peer_pred = pending.result() if pending is not None else None
        d = demand.train(spark, panel, cfg, series, peer_pred, demand_fit)
        peer = min(cfg.ml.peers, key=lambda n: d[n]["wape"]) if cfg.ml.peers else None
        return {"demand": d,
                "sale_probability": sale_probability.train(spark, panel, cfg, peer, series, peer_pred, sale_fit)}
    finally:
        panel.unpersist()


def train_clv(spark: SparkSession, cfg: Config) -> dict:
    from ml import clv  # deferred: each stage loads its own pipeline (module doc)

    require_tables(spark, cfg, "features/customer_calibration")
    features = spark.read.format("delta").load(cfg.lake.table("features", "customer_calibration"))
    return {"clv": clv.train(spark, features, cfg)}


def score(spark: SparkSession, cfg: Config) -> dict:
    from ml import scoring  # deferred: each stage loads its own pipeline (module doc)

    require_tables(spark, cfg, "silver/events", "features/product_daily", "features/customer_current")
    return scoring.run(spark, cfg)


def maintain(spark: SparkSession, cfg: Config) -> dict:
    from lib.batch import maintain as batch_maintain  # deferred: each stage loads its own pipeline (module doc)

    results = batch_maintain.maintain(spark, cfg)
    return {"tables": len(results), "compacted": [r.table for r in results if r.compacted],
            "conflicts_retried": sum(r.conflicts for r in results),
            "files_before": sum(r.files_before for r in results), "files_after": sum(r.files_after for r in results)}


def retarget_uplift(spark: SparkSession, cfg: Config, window_days: int = 7) -> dict:
    from lib.retarget import uplift  # deferred: each stage loads its own pipeline (module doc)

    return uplift.run(spark, cfg, window_days)


_FUNCTIONS: dict[str, Callable[..., dict]] = {"backfill": backfill, "gold": gold, "train_demand": train_demand, "train_clv": train_clv,
              "score": score, "retarget_uplift": retarget_uplift, "maintain": maintain}
STAGES = {name: _FUNCTIONS[name] for name in CHAIN}  # in chain order
