"""Customer lifetime value: spend over the next ``ml.clv_horizon_days`` (default 90) days.

Calibration cut-off = the end of the data minus the horizon. Features come from events before the
cut-off (:func:`ml.features.customer_features`), the label from the horizon after it. A seeded
share of customers (``ml.clv_holdout_share``, by a hash of the user id) is held out: the models
never see their labels, and every metric is computed on them only. (The five months of the real
data cannot hold two non-overlapping 90-day windows plus a calibration period, so the model is not
trained on an earlier cut-off; the customer split keeps the evaluation out of sample.)

Candidates, compared on the same holdout against two baselines: the naive forecast (spend of the last
``horizon`` days before the cut-off repeats) and the mean (every customer gets the training
customers' mean spend):
* ``mllib_gbt``: an MLlib gradient-boosted regressor on RFM + behaviour features;
* ``bgnbd_gg``: BG/NBD (purchases) x Gamma-Gamma (spend per order) from pymc-marketing, MAP fit on
  the Spark-built RFM summary of the training customers (no labels involved).
The best by RMSE becomes ``champion`` when it beats the naive baseline on RMSE and MAE and the mean on
RMSE (a model that does not is no better than one number for everyone: trained on features shuffled
across customers, a CLV still beats the naive forecast; see tests/integration/test_clv_quality.py).
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, time, timedelta
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from pyspark.ml.regression import GBTRegressor
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lib.config import Config
from ml import evaluation, registry
from ml.demand import InsufficientData
from ml.features import CUSTOMER_FEATURES
from ml.learners import gbt_pipeline

LABEL = "future_spend"
RFM_COLUMNS = ("frequency", "recency", "T", "monetary_value")
SEGMENTS = (("high", 0.10), ("medium", 0.40), ("low", 1.0))  # by predicted CLV rank: top 10 %, next 30 %, rest


def in_holdout(cfg: Config):
    """Deterministic customer split: True for the held-out share."""
    bucket = F.pmod(F.xxhash64(F.col("user_id"), F.lit(cfg.ml.seed)), F.lit(10_000))
    return bucket < F.lit(int(cfg.ml.clv_holdout_share * 10_000))


def regressor(cfg: Config):
    return gbt_pipeline(GBTRegressor, CUSTOMER_FEATURES, LABEL, cfg)


# -- the probabilistic challenger ---------------------------------------------------------------------
def fit_bgnbd_gg(rfm: pd.DataFrame):
    """MAP fits of BG/NBD on every training customer and Gamma-Gamma on the repeat buyers."""
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel  # deferred: ~9 s to import; only fitting needs it

    data = rfm.rename(columns={"user_id": "customer_id"})[["customer_id", *RFM_COLUMNS]]
    # data passed to fit(), not to the constructor: pymc-marketing 0.19 deprecates Model(data), 1.0 drops it
    bg = BetaGeoModel()
    bg.fit(data[["customer_id", "frequency", "recency", "T"]], method="map", progressbar=False)
    repeat = data[(data["frequency"] > 0) & (data["monetary_value"] > 0)]
    gg = GammaGammaModel()
    gg.fit(repeat[["customer_id", "frequency", "monetary_value"]], method="map", progressbar=False)
    return bg, gg


def bgnbd_gg_predict(bg, gg, rfm: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """E[orders in the horizon] x E[spend per order], per row of ``rfm`` (library formulas)."""
    data = rfm.rename(columns={"user_id": "customer_id"}).reset_index(drop=True)
    data = data.assign(customer_id=np.arange(len(data)))  # positional ids: duplicates impossible
    purchases = bg.expected_purchases(data=data[["customer_id", "frequency", "recency", "T"]], future_t=horizon_days)
    spend = gg.expected_customer_spend(data=data[["customer_id", "frequency", "monetary_value"]])
    return np.asarray((purchases * spend).mean(dim=[d for d in ("chain", "draw") if d in purchases.dims]))


def _load(model_class, path: str):
    """``model_class.load(path)``, then build the PyMC graph the predictions need (pymc-marketing
    0.19's ``load`` restores the fit but leaves ``.model`` unbuilt on the returned instance)."""
    model = model_class.load(path)
    if not hasattr(model, "model"):
        model.build_model()
    return model


class BgNbdGammaGamma:
    """MLflow pyfunc wrapper."""

    @staticmethod
    def model_class():
        class _Model(mlflow.pyfunc.PythonModel):
            def load_context(self, context):
                from pymc_marketing.clv import BetaGeoModel, GammaGammaModel  # deferred: ~9 s to import

                self.bg = _load(BetaGeoModel, context.artifacts["bgnbd"])
                self.gg = _load(GammaGammaModel, context.artifacts["gamma_gamma"])
                self.horizon = json.loads(Path(context.artifacts["config"]).read_text())["horizon_days"]

            def predict(self, context, model_input: pd.DataFrame, params=None):
                rfm = model_input[list(RFM_COLUMNS)].astype(float)
                return pd.DataFrame({"prediction": bgnbd_gg_predict(self.bg, self.gg, rfm, self.horizon)})

        return _Model()


# -- training -------------------------------------------------------------------------------------------
def calibration_cutoff(silver_df: DataFrame, horizon_days: int):
    """Midnight after the last event, minus the horizon."""
    last = silver_df.agg(F.max("event_date")).collect()[0][0]
    if last is None:
        raise InsufficientData("clv: no silver events: run the backfill first")
    return datetime.combine(last + timedelta(days=1), time()) - timedelta(days=horizon_days)


def train(spark: SparkSession, features_df: DataFrame, cfg: Config) -> dict:
    """``features_df``: ``features/customer_calibration`` (features at the cut-off + label)."""
    df = features_df.withColumn("_holdout", in_holdout(cfg)).persist()
    train_df, test_df = df.where(~F.col("_holdout")), df.where(F.col("_holdout"))
    n_train, n_test = train_df.count(), test_df.count()
    if n_train < 50 or n_test < 20:
        raise InsufficientData(f"clv: too few customers with an order before the cut-off ({n_train + n_test}); "
                         "more history or a shorter ml.clv_horizon_days is needed")
    gbt = regressor(cfg).fit(train_df)
    test = gbt.transform(test_df).select(
        "user_id", *RFM_COLUMNS, LABEL, "naive_spend",
        F.greatest(F.col("prediction"), F.lit(0.0)).alias("mllib_gbt")).toPandas()
    test["mean"] = float(train_df.agg(F.avg(LABEL)).collect()[0][0])
    rfm_train = train_df.select("user_id", *RFM_COLUMNS).toPandas()
    bg, gg = fit_bgnbd_gg(rfm_train)
    test["bgnbd_gg"] = bgnbd_gg_predict(bg, gg, test[list(RFM_COLUMNS)], cfg.ml.clv_horizon_days)
    m = {name: evaluation.clv_report(test[LABEL], test[col])
         for name, col in (("mllib_gbt", "mllib_gbt"), ("bgnbd_gg", "bgnbd_gg"), ("naive", "naive_spend"),
                           ("mean", "mean"))}
    beating = [c for c in ("mllib_gbt", "bgnbd_gg")
               if m[c]["rmse"] < m["naive"]["rmse"] and m[c]["mae"] < m["naive"]["mae"]
               and m[c]["rmse"] < m["mean"]["rmse"]]
    best = min(beating, key=lambda c: m[c]["rmse"]) if beating else None

    registry.start(cfg, "clv")
    name = registry.model_name(cfg, "clv")
    common = {"horizon_days": cfg.ml.clv_horizon_days, "holdout_share": cfg.ml.clv_holdout_share,
              "train_customers": n_train, "holdout_customers": n_test, "seed": cfg.ml.seed}
    versions = {}
    with mlflow.start_run(run_name="clv-mllib-gbt"):
        mlflow.log_params({**common, "gbt_max_iter": cfg.ml.gbt_max_iter, "gbt_max_depth": cfg.ml.gbt_max_depth,
                           "features": ",".join(CUSTOMER_FEATURES)})
        _log_metrics(m, "mllib_gbt")
        mlflow.log_figure(evaluation.lift_plot(test[LABEL], {"MLlib GBT": test["mllib_gbt"], "naive": test["naive_spend"]}),
                          "plots/lift.png")
        example = df.select(*CUSTOMER_FEATURES).limit(5).toPandas()
        output = gbt.transform(spark.createDataFrame(example)).select("prediction").toPandas()
        versions["mllib_gbt"] = registry.log_spark_model(gbt, name, example, output)
    with mlflow.start_run(run_name="clv-bgnbd-gamma-gamma"):
        mlflow.log_params({**common, "fit": "MAP", "library": "pymc-marketing"})
        _log_metrics(m, "bgnbd_gg")
        mlflow.log_figure(evaluation.lift_plot(test[LABEL], {"BG/NBD x Gamma-Gamma": test["bgnbd_gg"],
                                                             "naive": test["naive_spend"]}), "plots/lift.png")
        with tempfile.TemporaryDirectory() as tmp:
            bg.save(f"{tmp}/bgnbd.nc")
            gg.save(f"{tmp}/gamma_gamma.nc")
            Path(f"{tmp}/config.json").write_text(json.dumps({"horizon_days": cfg.ml.clv_horizon_days}))
            example = test[list(RFM_COLUMNS)].head(5).astype(float).reset_index(drop=True)
            output = pd.DataFrame({"prediction": bgnbd_gg_predict(bg, gg, example, cfg.ml.clv_horizon_days)})
            versions["bgnbd_gg"] = registry.log_python_model(
                BgNbdGammaGamma.model_class(), name,
                {"bgnbd": f"{tmp}/bgnbd.nc", "gamma_gamma": f"{tmp}/gamma_gamma.nc", "config": f"{tmp}/config.json"},
                example, output, ("pymc-marketing", "pymc", "pytensor", "pandas", "numpy"))
    if best:
        registry.crown(versions[best], f"holdout RMSE {m[best]['rmse']:.4f} best of {sorted(m)}, naive "
                                       f"{m['naive']['rmse']:.4f}, mean {m['mean']['rmse']:.4f}")
    df.unpersist()
    return {**m, "champion": best, "versions": {k: v.version for k, v in versions.items()},
            "holdout_customers": n_test}


def _log_metrics(m: dict, candidate: str) -> None:
    mlflow.log_metrics({f"holdout_model_{k}": v for k, v in m[candidate].items() if np.isfinite(v)})
    mlflow.log_metrics({f"holdout_naive_{k}": v for k, v in m["naive"].items() if np.isfinite(v)})
    mlflow.log_metrics({f"holdout_mean_{k}": v for k, v in m["mean"].items() if np.isfinite(v)})


def segment(clv_df: DataFrame, col: str = "clv") -> DataFrame:
    """``value_segment`` by rank of predicted CLV: high (top 10 %), medium (next 30 %), low (rest)."""
    share = F.percent_rank().over(Window.orderBy(F.col(col).desc(), "user_id"))
    expr = F.when(share < SEGMENTS[0][1], SEGMENTS[0][0]).when(share < SEGMENTS[1][1], SEGMENTS[1][0]).otherwise(SEGMENTS[2][0])
    return clv_df.withColumn("value_segment", expr)
