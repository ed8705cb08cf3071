"""The ``gold`` job's work: analyst tables and the feature tables, recomputed from silver.

Feature tables (``features/``) for data scientists and the training jobs:
* ``product_daily``: the product x day panel (:func:`ml.demand.build_product_panel`);
* ``customer_calibration``: customer features at the CLV calibration cut-off with the label;
* ``customer_current``: the same features at the end of the data (what ``score`` predicts from).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib.batch.analyst import build_analyst_tables
from lib.batch.tables import register_tables, replace_table
from lib.config import Config


def silver(spark: SparkSession, cfg: Config) -> DataFrame:
    return spark.read.format("delta").load(cfg.lake.table("silver", "events"))


def write_analyst_tables(spark: SparkSession, cfg: Config) -> list[str]:
    names = []
    for name, df in build_analyst_tables(silver(spark, cfg), cfg.batch.cohort_weeks).items():
        replace_table(df, cfg.lake.table(*name.split("/")))
        names.append(name)
    return names


def feature_tables(spark: SparkSession, cfg: Config) -> dict[str, DataFrame]:
    from ml.clv import calibration_cutoff
    from ml.demand import build_product_panel
    from ml.features import customer_features

    events = silver(spark, cfg)
    h = cfg.ml.clv_horizon_days
    cutoff = calibration_cutoff(events, h)
    last = events.agg(F.max("event_date")).first()[0]
    now = datetime.combine(last + timedelta(days=1), time())
    return {
        "features/product_daily": build_product_panel(events, cfg),
        "features/customer_calibration": customer_features(events, cutoff, h).withColumn(
            "cutoff", F.lit(cutoff).cast("timestamp")),
        "features/customer_current": customer_features(events, now, h).drop("future_spend").withColumn(
            "cutoff", F.lit(now).cast("timestamp")),
    }


def write_feature_tables(spark: SparkSession, cfg: Config) -> list[str]:
    names = []
    for name, df in feature_tables(spark, cfg).items():
        replace_table(df, cfg.lake.table(*name.split("/")))
        names.append(name)
    return names


def run(spark: SparkSession, cfg: Config) -> dict:
    analyst = write_analyst_tables(spark, cfg)
    features = write_feature_tables(spark, cfg)
    registered = register_tables(spark, cfg)
    return {"analyst_tables": analyst, "feature_tables": features, "registered": len(registered)}
