"""Product demand: the product x day feature table, rolling-origin backtests, and the MLlib model
of units sold in the next ``ml.demand_horizon_days`` days (default 7).

Backtest: ``ml.backtest_folds`` consecutive test blocks of ``ml.test_block_days`` days end on the
last day whose label is complete. For a block starting on day ``s`` the model is trained on rows
dated ``<= s - horizon`` (their labels were known on day ``s``) and predicts every product on every
day of the block — each prediction uses only that day's as-of features. Metrics are pooled over
all blocks (the *holdout*) and also logged per block.

Baselines, with the same horizon ``h``:
* naive: ``h x`` units sold on the last day;
* seasonal naive (weekly season): units of the last 7 days, scaled to ``h`` (= the same weekdays
  of last week repeat).

The registered model is refit on the latest labelled rows (``ml.train_window_days``) and is what
``score`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib.config import Config
from ml import evaluation, registry
from ml.features import PANEL_FEATURES, daily_product_activity, product_day_panel, top_products, with_panel_features

MIN_TRAIN_DAYS = 21  # days of labelled history the first backtest fold needs


class InsufficientData(ValueError):
    """The lake holds too little history for the configured backtest; ``str(err)`` is one line."""


@dataclass(frozen=True)
class Fold:
    index: int
    test_start: date
    test_end: date


def backtest_folds(max_date: date, horizon: int, folds: int, block_days: int) -> list[Fold]:
    """Consecutive test blocks ending on the last date with a complete ``horizon``-day label."""
    last = max_date - timedelta(days=horizon)
    return [Fold(i, last - timedelta(days=(folds - i) * block_days - 1),
                 last - timedelta(days=(folds - 1 - i) * block_days)) for i in range(folds)]


def label(cfg: Config) -> str:
    return f"units_next_{cfg.ml.demand_horizon_days}d"


def build_product_panel(silver_df: DataFrame, cfg: Config) -> DataFrame:
    """The feature table ``features/product_daily``: the ``ml.max_products`` busiest products before
    the first backtest block, every day of the data, features and labels."""
    activity = daily_product_activity(silver_df).persist()
    bounds = activity.agg(F.min("date").alias("lo"), F.max("date").alias("hi")).first()
    if bounds["lo"] is None:
        raise InsufficientData("no silver events: run the backfill (or the streaming app) first")
    lo, hi = bounds["lo"], bounds["hi"]
    h = cfg.ml.demand_horizon_days
    folds = backtest_folds(hi, h, cfg.ml.backtest_folds, cfg.ml.test_block_days)
    first_train_end = folds[0].test_start - timedelta(days=h)
    if (first_train_end - lo).days + 1 < MIN_TRAIN_DAYS:
        need = MIN_TRAIN_DAYS + h + cfg.ml.backtest_folds * cfg.ml.test_block_days + h
        raise InsufficientData(f"demand: {(hi - lo).days + 1} days of events from {lo} to {hi}; the backtest "
                               f"needs at least {need} (ml.backtest_folds, ml.test_block_days, ml.demand_horizon_days)")
    products = top_products(activity, folds[0].test_start, cfg.ml.max_products)
    return with_panel_features(product_day_panel(activity, products, lo, hi), h)


def training_rows(panel_df: DataFrame, label_col: str, last: date, window_days: int) -> DataFrame:
    """Labelled rows dated ``<= last`` (and within the last ``window_days`` days when > 0)."""
    rows = panel_df.where((F.col("date") <= F.lit(last)) & F.col(label_col).isNotNull())
    if window_days:
        rows = rows.where(F.col("date") > F.lit(last - timedelta(days=window_days)))
    return rows


def regressor(cfg: Config, label_col: str):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import GBTRegressor

    return Pipeline(stages=[
        VectorAssembler(inputCols=list(PANEL_FEATURES), outputCol="features"),
        GBTRegressor(labelCol=label_col, featuresCol="features", maxIter=cfg.ml.gbt_max_iter,
                     maxDepth=cfg.ml.gbt_max_depth, stepSize=0.1, subsamplingRate=0.8, minInstancesPerNode=cfg.ml.gbt_min_instances_per_node,
                     seed=cfg.ml.seed),
    ])


def backtest_predictions(panel_df: DataFrame, cfg: Config) -> pd.DataFrame:
    """Out-of-sample predictions of every fold: ``fold, product_id, date, actual, model, naive, seasonal_naive``."""
    h, y = cfg.ml.demand_horizon_days, label(cfg)
    max_date = panel_df.agg(F.max("date")).first()[0]
    out = []
    for fold in backtest_folds(max_date, h, cfg.ml.backtest_folds, cfg.ml.test_block_days):
        train = training_rows(panel_df, y, fold.test_start - timedelta(days=h), cfg.ml.train_window_days)
        test = panel_df.where(F.col("date").between(F.lit(fold.test_start), F.lit(fold.test_end)))
        model = regressor(cfg, y).fit(train)
        pdf = model.transform(test).select(
            "product_id", "date", F.col(y).alias("actual"),
            F.greatest(F.col("prediction"), F.lit(0.0)).alias("model"),
            (F.col("units_1d") * h).cast("double").alias("naive"),
            (F.col("units_7d") * h / 7.0).alias("seasonal_naive"),
        ).toPandas()
        pdf.insert(0, "fold", fold.index)
        out.append(pdf)
    return pd.concat(out, ignore_index=True)


def _last_labelled(panel_df: DataFrame, label_col: str) -> date:
    return panel_df.where(F.col(label_col).isNotNull()).agg(F.max("date")).first()[0]


def metrics(pred: pd.DataFrame, k: int) -> dict[str, dict[str, float]]:
    """WAPE, RMSE and precision@k of the model and both baselines."""
    return {name: {**evaluation.regression_report(pred["actual"], pred[name]),
                   "precision_at_k": evaluation.precision_at_k(pred, "actual", name, k)}
            for name in ("model", "naive", "seasonal_naive")}


def train(spark: SparkSession, panel_df: DataFrame, cfg: Config) -> dict:
    """Backtest, refit on all labelled rows, log to MLflow, register; champion if it beats both
    baselines on WAPE. Returns the holdout metrics."""
    import mlflow

    panel_df = panel_df.persist()
    y = label(cfg)
    pred = backtest_predictions(panel_df, cfg)
    m = metrics(pred, cfg.ml.top_k)
    best_baseline = min(m["naive"]["wape"], m["seasonal_naive"]["wape"])
    beats = m["model"]["wape"] < best_baseline
    registry.start(cfg, "demand")
    with mlflow.start_run(run_name=f"demand-{pred['date'].max()}"):
        mlflow.log_params({"horizon_days": cfg.ml.demand_horizon_days, "folds": cfg.ml.backtest_folds,
                           "test_block_days": cfg.ml.test_block_days, "max_products": cfg.ml.max_products,
                           "top_k": cfg.ml.top_k, "gbt_max_iter": cfg.ml.gbt_max_iter,
                           "gbt_max_depth": cfg.ml.gbt_max_depth, "seed": cfg.ml.seed,
                           "features": ",".join(PANEL_FEATURES), "test_rows": len(pred)})
        for name, values in m.items():
            mlflow.log_metrics({f"holdout_{name}_{k}": v for k, v in values.items()})
        for fold, g in pred.groupby("fold"):
            mlflow.log_metrics({f"fold_{name}_wape": evaluation.wape(g["actual"], g[name])
                                for name in ("model", "naive", "seasonal_naive")}, step=int(fold))
        mlflow.log_figure(evaluation.actual_vs_predicted_plot(
            pred["actual"], {"model": pred["model"], "seasonal naive": pred["seasonal_naive"]},
            f"units next {cfg.ml.demand_horizon_days} days"), "plots/actual_vs_predicted.png")
        mlflow.log_text(pred.to_csv(index=False), "backtest/predictions.csv")
        model = regressor(cfg, y).fit(training_rows(panel_df, y, _last_labelled(panel_df, y), cfg.ml.train_window_days))
        example = panel_df.select(*PANEL_FEATURES).limit(5).toPandas()
        output = model.transform(spark.createDataFrame(example)).select("prediction").toPandas()
        reg = registry.log_spark_model(model, registry.model_name(cfg, "demand"), example, output)
        if beats:
            registry.crown(reg, f"holdout WAPE {m['model']['wape']:.4f} < best baseline {best_baseline:.4f}")
        mlflow.set_tag("champion", str(beats).lower())
    panel_df.unpersist()
    return {"model": m["model"], "naive": m["naive"], "seasonal_naive": m["seasonal_naive"],
            "champion": beats, "version": reg.version, "test_rows": len(pred)}
