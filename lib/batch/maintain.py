"""Table maintenance: compaction (OPTIMIZE) and retention (VACUUM) of every Delta table of the lake.

Streaming appends leave many small files (one per micro-batch and partition); a table with at least
``batch.compact_min_files`` live files is compacted (bin-packing; readers and the streaming writer
keep working, Delta resolves the concurrent appends). VACUUM then deletes files that no version
younger than ``batch.vacuum_retention_hours`` references — time travel keeps working inside that
window. The dashboard reads the parquet files named by the Delta log, so neither operation turns on
deletion vectors or column mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

from lib.batch.tables import lake_tables
from lib.config import Config


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    files_before: int
    files_after: int
    compacted: bool

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _num_files(spark: SparkSession, location: str) -> int:
    return int(spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()["numFiles"])


# VACUUM lists the table's folders with this many tasks; Spark's default (10,000) costs minutes per
# table on a small machine, so the listing uses the cluster's parallelism instead
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


def maintain(spark: SparkSession, cfg: Config) -> list[MaintenanceResult]:
    from delta.tables import DeltaTable

    out = []
    previous = spark.conf.get(LISTING_PARALLELISM, None)
    spark.conf.set(LISTING_PARALLELISM, str(max(spark.sparkContext.defaultParallelism, 1)))
    try:
        for name, location in lake_tables(spark, cfg).items():
            before = _num_files(spark, location)
            table = DeltaTable.forPath(spark, location)
            compact = before >= cfg.batch.compact_min_files
            if compact:
                table.optimize().executeCompaction()
            table.vacuum(float(cfg.batch.vacuum_retention_hours))
            out.append(MaintenanceResult(name, before, _num_files(spark, location), compact))
    finally:
        if previous is None:
            spark.conf.unset(LISTING_PARALLELISM)
        else:
            spark.conf.set(LISTING_PARALLELISM, previous)
    return out
