"""The ``score`` job: load each model's ``champion`` by alias, predict from the latest features and
replace the gold score tables (``lib.schema.SCORE_TABLE_DDL``) with the model versions that made them.

* ``gold/demand_forecast``: per panel product, units expected over the horizon and P(sale tomorrow),
  as of the last day of data, ranked by forecast (the "products to restock"). A champion is an
  MLlib pipeline (features of the last day) or a classical peer's pyfunc (the daily history).
* ``gold/customer_value``: CLV per customer with a value segment; ``gold/customer_segments``: the
  segments summed up.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import mlflow
from mlflow.exceptions import MlflowException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, StructType

from lib.config import Config
from lib.delta_io import replace_table
from lib.schema import SCORE_TABLE_DDL
from ml import registry
from ml.clv import RFM_COLUMNS, segment
from ml.errors import NoChampion
from ml.features import CUSTOMER_FEATURES, PANEL_FEATURES
from ml.sale_probability import probability

if TYPE_CHECKING:
    import pandas as pd


def _champion(name: str):
    try:
        return registry.champion(name)
    except MlflowException:
        raise NoChampion(f"no '{registry.CHAMPION}' version of model {name}: train it first (a model that does "
                         "not beat its baseline is registered without the alias)") from None


def _conform(df: DataFrame, table: str) -> DataFrame:
    schema = DataType.fromDDL(SCORE_TABLE_DDL[table])
    if not isinstance(schema, StructType):
        raise TypeError(f"{table}: its DDL is not a list of columns")
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def _series(panel: DataFrame):
    """The daily history a peer pyfunc forecasts from (``product_id, date, units``; date as text, as
    in its signature)."""
    return panel.select("product_id", F.col("date").cast("string").alias("date"),
                        F.col("units_1d").alias("units")).toPandas()


def predict_panel(spark: SparkSession, model_uri: str, panel: DataFrame, latest: DataFrame, output: str,
                  series=None) -> DataFrame:
    """``product_id, <output>`` for the products of ``latest`` (the panel's last day) from the model at
    ``model_uri``: an MLlib pipeline transforms the features (a regressor's prediction floored at 0,
    a classifier's P(class 1)); a peer pyfunc (:mod:`ml.peers`) forecasts from the daily history."""
    if registry.is_spark_model(model_uri):
        scored = mlflow.spark.load_model(model_uri).transform(latest.select("product_id", *PANEL_FEATURES))
        value = probability() if "probability" in scored.columns else F.greatest("prediction", F.lit(0.0))
        return scored.select("product_id", value.alias(output))
    pdf = mlflow.pyfunc.load_model(model_uri).predict(_series(panel) if series is None else series)
    return spark.createDataFrame(pdf.rename(columns={"prediction": output})[["product_id", output]])


def score_demand(spark: SparkSession, cfg: Config, scored_at: datetime) -> int:
    demand_name, sale_name = registry.model_name(cfg, "demand"), registry.model_name(cfg, "sale_probability")
    demand_v, sale_v = _champion(demand_name), _champion(sale_name)
    panel = spark.read.format("delta").load(cfg.lake.table("features", "product_daily"))
    latest = panel.where(F.col("date") == panel.agg(F.max("date")).collect()[0][0]).select(
        "product_id", "date", *PANEL_FEATURES)
    uris = registry.champion_uri(demand_name), registry.champion_uri(sale_name)
    series = None if all(registry.is_spark_model(u) for u in uris) else _series(panel)
    predicted = (latest.select("product_id", "date", "units_7d")
                 .join(predict_panel(spark, uris[0], panel, latest, "forecast_units", series), "product_id")
                 .join(predict_panel(spark, uris[1], panel, latest, "p_sale_tomorrow", series), "product_id"))
    products = (spark.read.format("delta").load(cfg.lake.table("silver", "events"))
                .groupBy("product_id").agg(F.max("brand").alias("brand"), F.max("category_code").alias("category_code")))
    rank = F.row_number().over(Window.orderBy(F.col("forecast_units").desc(), F.col("p_sale_tomorrow").desc(), "product_id"))
    out = predicted.join(products, "product_id", "left").select(
        "product_id", "brand", "category_code", F.col("date").alias("as_of_date"),
        F.lit(cfg.ml.demand_horizon_days).alias("horizon_days"), F.col("units_7d").alias("units_last_7d"),
        F.round("forecast_units", 3).alias("forecast_units"), F.round("p_sale_tomorrow", 4).alias("p_sale_tomorrow"),
        rank.alias("forecast_rank"),
        F.lit(demand_name).alias("demand_model"), F.lit(int(demand_v.version)).alias("demand_model_version"),
        F.lit(sale_name).alias("sale_model"), F.lit(int(sale_v.version)).alias("sale_model_version"),
        F.lit(scored_at).cast("timestamp").alias("scored_at"))
    out = _conform(out, "gold/demand_forecast").persist()
    replace_table(out, cfg.lake.table("gold", "demand_forecast"))
    n = out.count()
    out.unpersist()
    return n


def predict_clv(spark: SparkSession, model_uri: str, features_df: DataFrame) -> DataFrame:
    """``user_id, clv`` from the model at ``model_uri`` (Spark flavor: distributed transform;
    otherwise the pyfunc on the RFM columns collected to pandas)."""
    if registry.is_spark_model(model_uri):
        model = mlflow.spark.load_model(model_uri)
        return model.transform(features_df.select("user_id", *CUSTOMER_FEATURES)).select(
            "user_id", F.greatest("prediction", F.lit(0.0)).alias("clv"))
    model = mlflow.pyfunc.load_model(model_uri)
    pdf: pd.DataFrame = features_df.select("user_id", *RFM_COLUMNS).toPandas()
    pdf["clv"] = model.predict(pdf[list(RFM_COLUMNS)].astype(float))["prediction"].clip(lower=0).to_numpy()
    return spark.createDataFrame(pdf[["user_id", "clv"]])


def score_clv(spark: SparkSession, cfg: Config, scored_at: datetime) -> int:
    name = registry.model_name(cfg, "clv")
    version = _champion(name)
    uri = registry.champion_uri(name)
    flavor = "spark" if registry.is_spark_model(uri) else "pyfunc"
    feats = spark.read.format("delta").load(cfg.lake.table("features", "customer_current"))
    clv = predict_clv(spark, uri, feats)
    meta = [F.lit(cfg.ml.clv_horizon_days).alias("horizon_days"), F.lit(name).alias("model"),
            F.lit(int(version.version)).alias("model_version"), F.lit(scored_at).cast("timestamp").alias("scored_at")]
    customers = segment(clv.join(feats, "user_id").withColumn("clv", F.round("clv", 2))).select(
        "user_id", "clv", "value_segment", "orders", "total_spend", "days_since_last_visit",
        F.col("cutoff").alias("as_of"), *meta, F.lit(flavor).alias("model_flavor"))
    customers = _conform(customers, "gold/customer_value").persist()
    replace_table(customers, cfg.lake.table("gold", "customer_value"))
    total = F.sum("predicted_value").over(Window.partitionBy())
    segments = (customers.groupBy("value_segment", "as_of").agg(
        F.count(F.lit(1)).alias("customers"), F.round(F.sum("clv"), 2).alias("predicted_value"),
        F.round(F.avg("clv"), 2).alias("avg_clv"), F.round(F.avg("total_spend"), 2).alias("avg_total_spend"))
        .withColumn("share_of_predicted_value", F.round(F.col("predicted_value") / total, 4))
        .select("*", *meta))
    replace_table(_conform(segments, "gold/customer_segments"), cfg.lake.table("gold", "customer_segments"))
    n = customers.count()
    customers.unpersist()
    return n


def run(spark: SparkSession, cfg: Config) -> dict:
    mlflow.set_tracking_uri(registry.tracking_uri(cfg))
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    return {"demand_forecast_rows": score_demand(spark, cfg, now), "customer_value_rows": score_clv(spark, cfg, now)}
