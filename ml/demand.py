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

Peers (``ml.peers``, :mod:`ml.peers`): the classical intermittent-demand methods and an ETS, on the
same test rows. The champion is chosen among all *candidates* — the MLlib model and the peers — by
WAPE, and crowned only if it beats the best naive baseline too. A peer champion is registered as an
MLflow pyfunc (:class:`ml.peers.PeerForecaster`); the MLlib model is refit on the latest labelled
rows (``ml.train_window_days``) and registered on every run, crowned when it wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import mlflow
import pandas as pd
from pyspark.ml.regression import GBTRegressor
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from xgboost.spark import SparkXGBRegressor

from lib.config import Config
from ml import evaluation, peers, registry
from ml.errors import InsufficientData
from ml.features import PANEL_FEATURES, daily_product_activity, product_day_panel, top_products, with_panel_features
from ml.learners import XGB_PACKAGES, gbt_pipeline, xgb_pipeline

MIN_TRAIN_DAYS = 21  # days of labelled history the first backtest fold needs


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


def panel_folds(panel_df: DataFrame, cfg: Config) -> list[Fold]:
    """:func:`backtest_folds` of the panel (its last day, ``ml`` settings): the folds of both models."""
    max_date = panel_df.agg(F.max("date")).collect()[0][0]
    return backtest_folds(max_date, cfg.ml.demand_horizon_days, cfg.ml.backtest_folds, cfg.ml.test_block_days)


def label(cfg: Config) -> str:
    return f"units_next_{cfg.ml.demand_horizon_days}d"


def build_product_panel(silver_df: DataFrame, cfg: Config) -> DataFrame:
    """The feature table ``features/product_daily``: the ``ml.max_products`` busiest products before
    the first backtest block, every day of the data, features and labels."""
    activity = daily_product_activity(silver_df).persist()
    bounds = activity.agg(F.min("date").alias("lo"), F.max("date").alias("hi")).collect()[0]
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
    """The demand model: a Spark ML pipeline. ``ml.demand_learner`` ``xgboost`` is XGBoost's Spark
    estimator (``xgboost.spark``) with a Poisson objective (counts); ``mllib_gbt`` is MLlib's
    ``GBTRegressor`` with the ``ml.gbt_loss`` loss."""
    if cfg.ml.demand_learner == "xgboost":
        return xgb_pipeline(SparkXGBRegressor, PANEL_FEATURES, label_col, cfg, objective="count:poisson")
    return gbt_pipeline(GBTRegressor, PANEL_FEATURES, label_col, cfg, lossType=cfg.ml.gbt_loss)


BASELINES = ("naive", "seasonal_naive")


def daily_series(panel_df: DataFrame) -> pd.DataFrame:
    """``product_id, date, units``: every day of every panel product (what the peers fit on)."""
    return panel_df.select("product_id", "date", F.col("units_1d").alias("units")).toPandas()


def peer_predictions(series: pd.DataFrame, test_dates, cfg: Config) -> pd.DataFrame:
    """``product_id, date, <peer>...`` on the test days (:func:`ml.peers.backtest`)."""
    return peers.backtest(series, list(test_dates), cfg.ml.demand_horizon_days, tuple(cfg.ml.peers),
                          n_jobs=peers.jobs(cfg.ml.peer_jobs))


def peer_backtest_days(panel_df: DataFrame, cfg: Config) -> list[date]:
    """The days both backtests need a peer forecast for: the demand folds' test days and, before
    them, the ``test_block_days`` on which the sale probability recalibrates a peer
    (:func:`ml.sale_probability.peer_probabilities`). A forecast made at a day depends on the history
    up to that day only, so one backtest over these days serves both (ETS, the slow peer, once)."""
    folds = panel_folds(panel_df, cfg)
    first = folds[0].test_start - timedelta(days=cfg.ml.test_block_days)
    return [first + timedelta(days=i) for i in range((folds[-1].test_end - first).days + 1)]


def model_backtest(panel_df: DataFrame, cfg: Config) -> pd.DataFrame:
    """The model's out-of-sample predictions of every fold, with the naive baselines: ``fold,
    product_id, date, actual, model, naive, seasonal_naive`` (Spark: one fit per fold)."""
    h, y = cfg.ml.demand_horizon_days, label(cfg)
    out = []
    for fold in panel_folds(panel_df, cfg):
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


def with_peers(pred: pd.DataFrame, panel_df: DataFrame, cfg: Config, series: pd.DataFrame | None = None,
               peer_pred: pd.DataFrame | None = None) -> pd.DataFrame:
    """``pred`` (:func:`model_backtest`) with one column per peer of ``ml.peers`` (``peer_pred``: the
    peers' backtest, already made over at least the test days; made here when not given)."""
    if not cfg.ml.peers:
        return pred
    if peer_pred is None:
        series = daily_series(panel_df) if series is None else series
        peer_pred = peer_predictions(series, sorted(pred["date"].unique()), cfg)
    pred = pred.merge(peer_pred[["product_id", "date", *cfg.ml.peers]],
                      on=["product_id", "date"], how="left", validate="one_to_one")
    missing = pred[list(cfg.ml.peers)].isna().any(axis=1).sum()
    if missing:
        raise RuntimeError(f"demand backtest: {missing} test rows without a peer forecast")
    return pred


def backtest_predictions(panel_df: DataFrame, cfg: Config, series: pd.DataFrame | None = None,
                         peer_pred: pd.DataFrame | None = None) -> pd.DataFrame:
    """Out-of-sample predictions of every fold: ``fold, product_id, date, actual, model, naive,
    seasonal_naive`` and one column per peer of ``ml.peers`` (:func:`model_backtest`, :func:`with_peers`)."""
    return with_peers(model_backtest(panel_df, cfg), panel_df, cfg, series, peer_pred)


@dataclass(frozen=True)
class Fitted:
    """The Spark part of :func:`train`: the backtest's model predictions (:func:`model_backtest`) and
    the model refit on the latest labelled rows. :func:`fit` makes it; ``lib.batch.stages.train_demand``
    runs it beside the peers' backtest, which needs no Spark."""
    pred: pd.DataFrame
    model: Any  # a fitted Spark ML PipelineModel


def fit(panel_df: DataFrame, cfg: Config) -> Fitted:
    y = label(cfg)
    pred = model_backtest(panel_df, cfg)
    return Fitted(pred, regressor(cfg, y).fit(
        training_rows(panel_df, y, last_labelled(panel_df, y), cfg.ml.train_window_days)))


def last_labelled(panel_df: DataFrame, label_col: str) -> date:
    """The last day of the panel whose ``label_col`` is known (what a refit trains up to)."""
    return panel_df.where(F.col(label_col).isNotNull()).agg(F.max("date")).collect()[0][0]


def candidates(cfg: Config) -> tuple[str, ...]:
    """What may become champion: the MLlib model and the peers."""
    return ("model", *cfg.ml.peers)


def metrics(pred: pd.DataFrame, k: int, names: tuple[str, ...] = ("model", *BASELINES)) -> dict[str, dict[str, float]]:
    """WAPE, RMSE and precision@k of each prediction column in ``names``."""
    return {name: {**evaluation.regression_report(pred["actual"], pred[name]),
                   "precision_at_k": evaluation.precision_at_k(pred, "actual", name, k)}
            for name in names}


def fold_metrics(pred: pd.DataFrame, k: int, names: tuple[str, ...]) -> list[dict]:
    """:func:`metrics` per backtest fold: ``[{"fold": i, "<name>": {...}}, ...]``."""
    return [{"fold": int(fold), **metrics(g, k, names)} for fold, g in pred.groupby("fold")]


def choose_champion(m: dict[str, dict[str, float]], names: tuple[str, ...]) -> tuple[str, bool]:
    """The candidate with the lowest WAPE (ties: the earlier name), and whether it beats the best
    naive baseline: only then is it crowned."""
    best = min(names, key=lambda n: (m[n]["wape"], names.index(n)))
    return best, m[best]["wape"] < min(m[b]["wape"] for b in BASELINES)


def train(spark: SparkSession, panel_df: DataFrame, cfg: Config, series: pd.DataFrame | None = None,
          peer_pred: pd.DataFrame | None = None, fitted: Fitted | None = None) -> dict:
    """Backtest the model, the peers and the baselines; log all to MLflow; register the refit MLlib
    model, and the winning peer as a pyfunc when a peer wins; crown the champion (see module doc).
    Returns the holdout metrics of every candidate and baseline, per fold too. ``fitted``: the
    model's Spark work (:func:`fit`), already done. The caller caches ``panel_df`` (it is read often)."""
    if series is None and cfg.ml.peers:
        series = daily_series(panel_df)
    fitted = fitted or fit(panel_df, cfg)
    pred = with_peers(fitted.pred, panel_df, cfg, series, peer_pred)
    names = candidates(cfg)
    m = metrics(pred, cfg.ml.top_k, (*names, *BASELINES))
    folds = fold_metrics(pred, cfg.ml.top_k, (*names, *BASELINES))
    best, crowned = choose_champion(m, names)
    best_baseline = min(BASELINES, key=lambda b: m[b]["wape"])
    registry.start(cfg, "demand")
    with mlflow.start_run(run_name=f"demand-{pred['date'].max()}"):
        mlflow.log_params({"horizon_days": cfg.ml.demand_horizon_days, "folds": cfg.ml.backtest_folds,
                           "test_block_days": cfg.ml.test_block_days, "max_products": cfg.ml.max_products,
                           "top_k": cfg.ml.top_k, "gbt_max_iter": cfg.ml.gbt_max_iter,
                           "gbt_max_depth": cfg.ml.gbt_max_depth, "gbt_loss": cfg.ml.gbt_loss, "seed": cfg.ml.seed,
                           "learner": cfg.ml.demand_learner, "xgb_rounds": cfg.ml.xgb_rounds,
                           "peers": ",".join(cfg.ml.peers), "features": ",".join(PANEL_FEATURES),
                           "test_rows": len(pred)})
        for name, values in m.items():
            mlflow.log_metrics({f"holdout_{name}_{k}": v for k, v in values.items()})
        for f in folds:
            mlflow.log_metrics({f"fold_{name}_{k}": v for name in (*names, *BASELINES) for k, v in f[name].items()},
                               step=f["fold"])
        plotted = {"model": pred["model"], "seasonal naive": pred["seasonal_naive"]}
        if best != "model":
            plotted[best] = pred[best]
        mlflow.log_figure(evaluation.actual_vs_predicted_plot(
            pred["actual"], plotted, f"units next {cfg.ml.demand_horizon_days} days"), "plots/actual_vs_predicted.png")
        mlflow.log_text(pred.to_csv(index=False), "backtest/predictions.csv")
        model = fitted.model
        example = panel_df.select(*PANEL_FEATURES).limit(5).toPandas()
        output = model.transform(spark.createDataFrame(example)).select("prediction").toPandas()
        name = registry.model_name(cfg, "demand")
        versions = {"model": registry.log_spark_model(
            model, name, example, output, XGB_PACKAGES if cfg.ml.demand_learner == "xgboost" else ())}
        if best != "model":  # a peer won the backtest: it serves, as a pyfunc over the daily history
            versions[best] = peers.register(peers.PeerForecaster(best, cfg.ml.demand_horizon_days), name, series)
        reason = (f"holdout WAPE {m[best]['wape']:.4f}: best of {', '.join(names)}, and < best baseline "
                  f"{best_baseline} {m[best_baseline]['wape']:.4f}")
        if crowned:
            registry.crown(versions[best], reason)
        mlflow.set_tag("champion", best if crowned else "none")
    return {**m, "candidates": list(names), "best": best, "champion": crowned,
            "champion_name": best if crowned else None, "version": versions[best].version,
            "versions": {k: v.version for k, v in versions.items()}, "folds": folds, "test_rows": len(pred)}

