"""Sale probability: P(a product sells at least one unit tomorrow), an MLlib classifier on the
product x day feature table (``features/product_daily``, label ``sold_next_1d``).

Same rolling-origin backtest blocks as :mod:`ml.demand`; for a block starting on day ``s`` the
classifier is trained on rows dated ``<= s - 1`` (their label is day ``s``, known when the block's
first prediction is made at the end of day ``s``). Baseline: the frequency of sale days over the last 28 days. Metrics: PR-AUC (average
precision), Brier score, a calibration plot; champion if the model beats the baseline on both.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lib.config import Config
from ml import evaluation, registry
from ml.demand import backtest_folds, training_rows
from ml.features import PANEL_FEATURES

LABEL = "sold_next_1d"


def classifier(cfg: Config):
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.feature import VectorAssembler

    return Pipeline(stages=[
        VectorAssembler(inputCols=list(PANEL_FEATURES), outputCol="features"),
        GBTClassifier(labelCol=LABEL, featuresCol="features", maxIter=cfg.ml.gbt_max_iter,
                      maxDepth=cfg.ml.gbt_max_depth, stepSize=0.1, subsamplingRate=0.8, minInstancesPerNode=cfg.ml.gbt_min_instances_per_node,
                     seed=cfg.ml.seed),
    ])


def probability(col: str = "probability"):
    """P(class 1) out of MLlib's probability vector."""
    from pyspark.ml.functions import vector_to_array

    return vector_to_array(F.col(col))[1]


def backtest_predictions(panel_df: DataFrame, cfg: Config) -> pd.DataFrame:
    max_date = panel_df.agg(F.max("date")).first()[0]
    out = []
    for fold in backtest_folds(max_date, cfg.ml.demand_horizon_days, cfg.ml.backtest_folds, cfg.ml.test_block_days):
        train = training_rows(panel_df, LABEL, fold.test_start - timedelta(days=1), cfg.ml.train_window_days)
        test = panel_df.where(F.col("date").between(F.lit(fold.test_start), F.lit(fold.test_end)))
        model = classifier(cfg).fit(train)
        pdf = model.transform(test).select(
            "product_id", "date", F.col(LABEL).alias("actual"), probability().alias("model"),
            (F.col("sale_days_28d") / 28.0).alias("frequency"),
        ).toPandas()
        pdf.insert(0, "fold", fold.index)
        out.append(pdf)
    return pd.concat(out, ignore_index=True)


def metrics(pred: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {name: {"pr_auc": evaluation.pr_auc(pred["actual"], pred[name]),
                   "brier": evaluation.brier(pred["actual"], pred[name])}
            for name in ("model", "frequency")}


def train(spark: SparkSession, panel_df: DataFrame, cfg: Config) -> dict:
    import mlflow

    panel_df = panel_df.persist()
    pred = backtest_predictions(panel_df, cfg)
    m = metrics(pred)
    beats = m["model"]["pr_auc"] > m["frequency"]["pr_auc"] and m["model"]["brier"] < m["frequency"]["brier"]
    registry.start(cfg, "sale_probability")
    with mlflow.start_run(run_name=f"sale-probability-{pred['date'].max()}"):
        mlflow.log_params({"folds": cfg.ml.backtest_folds, "test_block_days": cfg.ml.test_block_days,
                           "max_products": cfg.ml.max_products, "gbt_max_iter": cfg.ml.gbt_max_iter,
                           "gbt_max_depth": cfg.ml.gbt_max_depth, "seed": cfg.ml.seed,
                           "features": ",".join(PANEL_FEATURES), "test_rows": len(pred),
                           "positive_share": round(float(pred["actual"].mean()), 4)})
        for name, values in m.items():
            mlflow.log_metrics({f"holdout_{name}_{k}": v for k, v in values.items()})
        mlflow.log_figure(evaluation.calibration_plot(
            pred["actual"], {"model": pred["model"], "28-day frequency": pred["frequency"]}), "plots/calibration.png")
        mlflow.log_text(evaluation.calibration_table(pred["actual"], pred["model"]).to_csv(index=False),
                        "backtest/calibration.csv")
        last = panel_df.where(F.col(LABEL).isNotNull()).agg(F.max("date")).first()[0]
        model = classifier(cfg).fit(training_rows(panel_df, LABEL, last, cfg.ml.train_window_days))
        example = panel_df.select(*PANEL_FEATURES).limit(5).toPandas()
        output = model.transform(spark.createDataFrame(example)).select("prediction").toPandas()
        reg = registry.log_spark_model(model, registry.model_name(cfg, "sale_probability"), example, output)
        if beats:
            registry.crown(reg, f"holdout PR-AUC {m['model']['pr_auc']:.4f} > {m['frequency']['pr_auc']:.4f} and "
                                f"Brier {m['model']['brier']:.4f} < {m['frequency']['brier']:.4f}")
        mlflow.set_tag("champion", str(beats).lower())
    panel_df.unpersist()
    return {"model": m["model"], "frequency": m["frequency"], "champion": beats, "version": reg.version,
            "test_rows": len(pred)}
