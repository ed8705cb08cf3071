"""Sale probability: P(a product sells at least one unit tomorrow), a classifier on the product x day
feature table (``features/product_daily``, label ``sold_next_1d``): XGBoost's Spark estimator
(``binary:logistic``) or, with ``ml.sale_learner: mllib_gbt``, MLlib's ``GBTClassifier``.

Same rolling-origin backtest blocks as :mod:`ml.demand`; for a block starting on day ``s`` the
classifier is trained on rows dated ``<= s - 1`` (their label is day ``s``, known when the block's
first prediction is made at the end of day ``s``). Baseline: the frequency of sale days over the last 28 days. Metrics: PR-AUC (average
precision), Brier score, a calibration (reliability) plot.

Peer: the best demand peer (:mod:`ml.peers`) turned into a probability — ``1 - exp(-rate)`` of its
daily rate — and recalibrated (isotonic) on the ``test_block_days`` days before each block. The
champion is the candidate (model or peer) with the higher PR-AUC, crowned if it beats the baseline
on PR-AUC and Brier; a peer champion is registered as a pyfunc (:class:`ml.peers.PeerSaleProbability`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import mlflow
import pandas as pd
from pyspark.ml.classification import GBTClassifier
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from xgboost.spark import SparkXGBClassifier

from lib.config import Config
from ml import evaluation, peers, registry
from ml.demand import daily_series, last_labelled, panel_folds, training_rows
from ml.features import PANEL_FEATURES
from ml.learners import XGB_PACKAGES, gbt_pipeline, xgb_pipeline

LABEL = "sold_next_1d"


def classifier(cfg: Config):
    """The classifier pipeline of ``ml.sale_learner``; both give P(class 1) in ``probability``."""
    if cfg.ml.sale_learner == "xgboost":
        return xgb_pipeline(SparkXGBClassifier, PANEL_FEATURES, LABEL, cfg)
    return gbt_pipeline(GBTClassifier, PANEL_FEATURES, LABEL, cfg)


def probability(col: str = "probability"):
    """P(class 1) out of MLlib's probability vector."""
    return vector_to_array(F.col(col))[1]


def peer_probabilities(series: pd.DataFrame, actuals: pd.DataFrame, folds, peer: str, cfg: Config,
                       peer_pred: pd.DataFrame | None = None) -> tuple[pd.DataFrame, peers.Calibrator]:
    """``product_id, date, peer`` for the test days of ``folds``: the peer's Poisson probability,
    recalibrated per fold on the ``test_block_days`` days before it (labels known by then); and the
    calibrator fitted on every backtest day, for serving. ``peer_pred``: the peer's backtest
    (``product_id, date, <peer>``) already made over those days (:func:`ml.demand.peer_backtest_days`)."""
    h, block = cfg.ml.demand_horizon_days, cfg.ml.test_block_days
    first = folds[0].test_start - timedelta(days=block)
    days = [first + timedelta(days=i) for i in range((folds[-1].test_end - first).days + 1)]
    if peer_pred is None:
        peer_pred = peers.backtest(series, days, h, (peer,), n_jobs=peers.jobs(cfg.ml.peer_jobs))
    else:
        peer_pred = peer_pred[peer_pred["date"].between(days[0], days[-1])][["product_id", "date", peer]]
    raw = peer_pred.merge(actuals, on=["product_id", "date"])
    raw["p"] = peers.poisson_sale_probability(raw[peer], h)
    out = []
    for fold in folds:
        past = raw[(raw["date"] >= fold.test_start - timedelta(days=block)) & (raw["date"] < fold.test_start)]
        test = raw[raw["date"].between(fold.test_start, fold.test_end)]
        out.append(test.assign(peer=peers.Calibrator.fit(past["p"], past["actual"])(test["p"]))[
            ["product_id", "date", "peer"]])
    return pd.concat(out, ignore_index=True), peers.Calibrator.fit(raw["p"], raw["actual"])


def model_backtest(panel_df: DataFrame, cfg: Config) -> pd.DataFrame:
    """The classifier's out-of-sample ``fold, product_id, date, actual, model, frequency`` (Spark: one
    fit per fold)."""
    out = []
    for fold in panel_folds(panel_df, cfg):
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


def with_peer(pred: pd.DataFrame, panel_df: DataFrame, cfg: Config, peer: str | None = None,
              series: pd.DataFrame | None = None, peer_pred: pd.DataFrame | None = None,
              ) -> tuple[pd.DataFrame, peers.Calibrator | None]:
    """``pred`` (:func:`model_backtest`) with the ``peer`` column when a peer is given, and the
    peer's serving calibrator (:func:`peer_probabilities`)."""
    if peer is None:
        return pred, None
    folds = panel_folds(panel_df, cfg)
    series = daily_series(panel_df) if series is None else series
    actuals = panel_df.where(F.col(LABEL).isNotNull()).select(
        "product_id", "date", F.col(LABEL).alias("actual")).toPandas()
    probabilities, calibrator = peer_probabilities(series, actuals, folds, peer, cfg, peer_pred)
    return pred.merge(probabilities, on=["product_id", "date"], how="left", validate="one_to_one"), calibrator


def backtest_predictions(panel_df: DataFrame, cfg: Config, peer: str | None = None,
                         series: pd.DataFrame | None = None, peer_pred: pd.DataFrame | None = None,
                         ) -> tuple[pd.DataFrame, peers.Calibrator | None]:
    """Out-of-sample ``fold, product_id, date, actual, model, frequency`` (and ``peer`` when one is
    given), with the peer's serving calibrator (:func:`model_backtest`, :func:`with_peer`)."""
    return with_peer(model_backtest(panel_df, cfg), panel_df, cfg, peer, series, peer_pred)


@dataclass(frozen=True)
class Fitted:
    """The Spark part of :func:`train`: the backtest's model predictions (:func:`model_backtest`) and
    the classifier refit on the latest labelled rows (see :class:`ml.demand.Fitted`)."""
    pred: pd.DataFrame
    model: Any  # a fitted Spark ML PipelineModel


def fit(panel_df: DataFrame, cfg: Config) -> Fitted:
    pred = model_backtest(panel_df, cfg)
    return Fitted(pred, classifier(cfg).fit(
        training_rows(panel_df, LABEL, last_labelled(panel_df, LABEL), cfg.ml.train_window_days)))


def metrics(pred: pd.DataFrame, names: tuple[str, ...] = ("model", "frequency")) -> dict[str, dict[str, float]]:
    return {name: {"pr_auc": evaluation.pr_auc(pred["actual"], pred[name]),
                   "brier": evaluation.brier(pred["actual"], pred[name])}
            for name in names}


def train(spark: SparkSession, panel_df: DataFrame, cfg: Config, peer: str | None = None,
          series: pd.DataFrame | None = None, peer_pred: pd.DataFrame | None = None,
          fitted: Fitted | None = None) -> dict:
    """Backtest the classifier (and ``peer``, a statsforecast method of :mod:`ml.peers`), log to
    MLflow, register, crown the better candidate if it beats the frequency baseline on both metrics.
    ``fitted``: the classifier's Spark work (:func:`fit`), already done. The caller caches ``panel_df``."""
    if series is None and peer:
        series = daily_series(panel_df)
    fitted = fitted or fit(panel_df, cfg)
    pred, calibrator = with_peer(fitted.pred, panel_df, cfg, peer, series, peer_pred)
    names = ("model", "peer") if peer else ("model",)
    m = metrics(pred, (*names, "frequency"))
    best = max(names, key=lambda n: (m[n]["pr_auc"], -names.index(n)))
    crowned = m[best]["pr_auc"] > m["frequency"]["pr_auc"] and m[best]["brier"] < m["frequency"]["brier"]
    registry.start(cfg, "sale_probability")
    with mlflow.start_run(run_name=f"sale-probability-{pred['date'].max()}"):
        mlflow.log_params({"folds": cfg.ml.backtest_folds, "test_block_days": cfg.ml.test_block_days,
                           "max_products": cfg.ml.max_products, "gbt_max_iter": cfg.ml.gbt_max_iter,
                           "gbt_max_depth": cfg.ml.gbt_max_depth, "seed": cfg.ml.seed, "peer": peer or "",
                           "learner": cfg.ml.sale_learner, "xgb_rounds": cfg.ml.xgb_rounds,
                           "features": ",".join(PANEL_FEATURES), "test_rows": len(pred),
                           "positive_share": round(float(pred["actual"].mean()), 4)})
        for name, values in m.items():
            mlflow.log_metrics({f"holdout_{name}_{k}": v for k, v in values.items()})
        curves = {"model": pred["model"], "28-day frequency": pred["frequency"]}
        if peer:
            curves[f"{peer} (Poisson, isotonic)"] = pred["peer"]
        mlflow.log_figure(evaluation.calibration_plot(pred["actual"], curves), "plots/calibration.png")
        for name in names:
            mlflow.log_text(evaluation.calibration_table(pred["actual"], pred[name]).to_csv(index=False),
                            f"backtest/calibration_{name}.csv")
        model = fitted.model
        example = panel_df.select(*PANEL_FEATURES).limit(5).toPandas()
        output = model.transform(spark.createDataFrame(example)).select("prediction").toPandas()
        name = registry.model_name(cfg, "sale_probability")
        versions = {"model": registry.log_spark_model(
            model, name, example, output, XGB_PACKAGES if cfg.ml.sale_learner == "xgboost" else ())}
        if best == "peer" and peer and calibrator is not None:  # both are set whenever a peer ran
            versions["peer"] = peers.register(peers.PeerSaleProbability(peer, cfg.ml.demand_horizon_days, calibrator),
                                              name, series)
        if crowned:
            registry.crown(versions[best], f"holdout PR-AUC {m[best]['pr_auc']:.4f} > {m['frequency']['pr_auc']:.4f} "
                                           f"and Brier {m[best]['brier']:.4f} < {m['frequency']['brier']:.4f} "
                                           f"({best}{f': {peer}' if best == 'peer' else ''})")
        mlflow.set_tag("champion", best if crowned else "none")
    return {**m, "peer_name": peer, "best": best, "champion": crowned,
            "champion_name": (peer if best == "peer" else "model") if crowned else None,
            "version": versions[best].version, "versions": {k: v.version for k, v in versions.items()},
            "test_rows": len(pred)}
