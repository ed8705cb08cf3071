"""Starting the streaming queries of the one streaming app (each with its own checkpoint).

Jobs call :func:`start_queries`; each ``start_*`` function wires a source, a pure transformation
and a Delta sink, so the logic stays testable and the job stays thin.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from lib.config import Config
from lib.sources import read_events_stream
from lib.transforms.bronze import BRONZE_PARTITION, with_bronze_columns

QUERY_NAMES = ("bronze",)


@dataclass(frozen=True)
class Tables:
    """Where each table of the lake lives, for a config."""

    bronze: str

    @classmethod
    def of(cls, cfg: Config) -> "Tables":
        return cls(bronze=cfg.lake.table("bronze", "events"))


def start_bronze(spark: SparkSession, cfg: Config, raw_df: DataFrame | None = None) -> StreamingQuery:
    """Kafka -> bronze Delta table (append; exactly once through the checkpoint + Delta txn log)."""
    raw_df = raw_df if raw_df is not None else read_events_stream(spark, cfg)
    return (
        raw_df.transform(with_bronze_columns)
        .writeStream.format("delta")
        .queryName("bronze")
        .outputMode("append")
        .partitionBy(BRONZE_PARTITION)
        .option("checkpointLocation", cfg.lake.checkpoint("bronze"))
        .trigger(processingTime=f"{cfg.streaming.trigger_seconds} seconds")
        .start(Tables.of(cfg).bronze)
    )


STARTERS = {"bronze": start_bronze}


def start_queries(spark: SparkSession, cfg: Config, names: tuple[str, ...] = QUERY_NAMES) -> list[StreamingQuery]:
    return [STARTERS[name](spark, cfg) for name in names]
