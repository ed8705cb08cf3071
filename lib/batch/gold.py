"""The ``gold`` job's work: analyst tables and the feature tables, recomputed from silver.

``gold/product_catalogue`` (:mod:`lib.retarget.catalogue`): brand, category and current price per
product, robust to spoofed events — what the cart-recovery emails show about a product.

Feature tables (``features/``) for data scientists and the training jobs:
* ``product_daily``: the product x day panel (:func:`ml.demand.build_product_panel`);
* ``customer_calibration``: customer features at the CLV calibration cut-off with the label;
* ``customer_current``: the same features at the end of the data (what ``score`` predicts from).

The feature tables are built from the history :mod:`ml.history` accepts (one continuous, dense
stretch of silver); a lake that has none stops the stage before anything is written.
"""

from __future__ import annotations

import sys
from datetime import datetime, time, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib.batch.analyst import build_analyst_tables
from lib.batch.tables import register_tables
from lib.config import Config
from lib.delta_io import replace_table
from lib.retarget.catalogue import write_from_silver
from ml import history
from ml.clv import calibration_cutoff
from ml.demand import build_product_panel
from ml.features import customer_features

# the silver columns the gold, catalogue and feature builders read (not the origin columns)
GOLD_INPUT_COLUMNS = ["event_time", "event_date", "event_type", "product_id", "category_id", "category_code",
                      "brand", "price", "user_id", "user_session"]


def silver(spark: SparkSession, cfg: Config) -> DataFrame:
    return spark.read.format("delta").load(cfg.lake.table("silver", "events"))


def shared_silver(spark: SparkSession, cfg: Config) -> DataFrame:
    """Silver's ``GOLD_INPUT_COLUMNS``, cached (memory, spilling to disk): the ~15 aggregates of the
    stage read it once instead of scanning the table each (the caller unpersists it)."""
    return silver(spark, cfg).select(*GOLD_INPUT_COLUMNS).persist(StorageLevel.MEMORY_AND_DISK)


def write_analyst_tables(spark: SparkSession, cfg: Config, silver_df: DataFrame | None = None) -> list[str]:
    names = []
    source = silver_df if silver_df is not None else silver(spark, cfg)
    for name, df in build_analyst_tables(source, cfg.batch.cohort_weeks).items():
        replace_table(df, cfg.lake.table(*name.split("/")))
        names.append(name)
    return names


def learning_history(spark: SparkSession, cfg: Config, silver_df: DataFrame | None = None) -> tuple[DataFrame, dict]:
    """Silver limited to the history the models may learn from (:mod:`ml.history`: one continuous,
    dense stretch, within ``ml.history_from/until``), and what the check found. Raises
    ``InsufficientData`` (one line) for a split or hollow history."""
    events = history.restrict(silver_df if silver_df is not None else silver(spark, cfg), cfg)
    found = history.check(history.daily_counts(events), cfg)
    events = events.where(F.col("event_date").between(F.lit(found.first), F.lit(found.last)))
    print(f"[batch] learning from {found.first}..{found.last}: {found.events:,} silver events"
          + (f" ({found.left_out:,} on sparse days outside it left out)" if found.left_out else ""), file=sys.stderr)
    return events, found.as_dict()


def feature_tables(spark: SparkSession, cfg: Config, events: DataFrame | None = None) -> dict[str, DataFrame]:
    events = events if events is not None else learning_history(spark, cfg)[0]
    h = cfg.ml.clv_horizon_days
    cutoff = calibration_cutoff(events, h)
    last = events.agg(F.max("event_date")).collect()[0][0]
    now = datetime.combine(last + timedelta(days=1), time())
    return {
        "features/product_daily": build_product_panel(events, cfg),
        "features/customer_calibration": customer_features(events, cutoff, h).withColumn(
            "cutoff", F.lit(cutoff).cast("timestamp")),
        "features/customer_current": customer_features(events, now, h).drop("future_spend").withColumn(
            "cutoff", F.lit(now).cast("timestamp")),
    }


def write_feature_tables(spark: SparkSession, cfg: Config, events: DataFrame | None = None) -> list[str]:
    names = []
    for name, df in feature_tables(spark, cfg, events).items():
        replace_table(df, cfg.lake.table(*name.split("/")))
        names.append(name)
    return names


def run(spark: SparkSession, cfg: Config) -> dict:
    shared = shared_silver(spark, cfg)
    try:
        events, found = learning_history(spark, cfg, shared)  # first: a lake the models cannot learn from stops here
        catalogue = write_from_silver(spark, cfg, silver=shared)  # all of silver: the newest prices (emails)
        analyst = write_analyst_tables(spark, cfg, shared)
        features = write_feature_tables(spark, cfg, events)
    finally:
        shared.unpersist()
    registered = register_tables(spark, cfg)
    return {"history": found, "product_catalogue": catalogue, "analyst_tables": analyst, "feature_tables": features,
            "registered": len(registered)}
