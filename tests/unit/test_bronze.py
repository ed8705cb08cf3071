from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import functions as F

from lib.schema import spark_bronze_schema
from lib.transforms.bronze import with_bronze_columns

T = dt.datetime(2026, 11, 28, 12, 0, 0)


def test_bronze_keeps_the_raw_message_and_its_origin(spark):
    raw = spark.createDataFrame(
        [("42", '{"event_type":"view"}', "events", 0, 7, T),
         (None, "not json at all", "events", 3, 0, T)],
        "key string, value string, topic string, partition int, offset long, timestamp timestamp",
    )
    got = raw.transform(lambda df: with_bronze_columns(df, F.lit(T)))
    expected = spark.createDataFrame(
        [("42", '{"event_type":"view"}', "events", 0, 7, T, T, dt.date(2026, 11, 28)),
         (None, "not json at all", "events", 3, 0, T, T, dt.date(2026, 11, 28))],
        spark_bronze_schema(),
    )
    assert_df_equality(got, expected, ignore_nullable=True)
