"""Raw source rows -> bronze: every message kept as it came, with its origin and ingest time."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

BRONZE_PARTITION = "ingest_date"


def with_bronze_columns(raw_df: DataFrame, ingest_time: Column | None = None) -> DataFrame:
    """``key, value, topic, partition, offset, timestamp`` -> the bronze schema (lib.schema).

    ``ingest_time`` defaults to the batch's current timestamp; tests pass a literal.
    """
    ingest = ingest_time if ingest_time is not None else F.current_timestamp()
    return raw_df.select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        F.col("topic").cast("string").alias("topic"),
        F.col("partition").cast("int").alias("partition"),
        F.col("offset").cast("long").alias("offset"),
        F.col("timestamp").cast("timestamp").alias("kafka_timestamp"),
        ingest.cast("timestamp").alias("ingest_time"),
    ).withColumn(BRONZE_PARTITION, F.to_date("ingest_time"))
