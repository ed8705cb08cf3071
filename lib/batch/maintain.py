"""Table maintenance: compaction (OPTIMIZE) and retention (VACUUM) of every Delta table of the lake.

Streaming appends leave many small files (one per micro-batch and partition); a table with at least
``batch.compact_min_files`` live files is compacted (bin-packing; readers and the streaming writer
keep working, Delta resolves the concurrent appends). VACUUM then deletes files that no version
younger than ``batch.vacuum_retention_hours`` references — time travel keeps working inside that
window. The dashboard reads the parquet files named by the Delta log, so neither operation turns on
deletion vectors or column mapping.

The ``retarget/*`` tables (written by the dispatcher, the sessions sink and the dashboard with
delta-rs; they hold subscriber addresses and per-user decisions) get their own retention,
``retarget.history_retention_hours``: VACUUM (full) and a cut of their Delta log at a fresh checkpoint
(``lib.retarget.personal_data.prune_history``), so a replaced subscriber list or an erased row is
physically gone — data files *and* log entries (statistics, predicates) — once that much time passed.
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
    # retarget/* only: files VACUUM deleted and Delta log files cut (history older than the retention)
    vacuumed_files: int = 0
    log_files_deleted: int = 0

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
    return out + maintain_retarget(cfg)


def maintain_retarget(cfg: Config, now: float | None = None) -> list[MaintenanceResult]:
    """Retention of the retarget tables' history (no Spark: delta-rs, local or gs://)."""
    from deltalake import DeltaTable

    from lib.retarget.personal_data import prune_history
    from lib.retarget.store import RetargetStore

    store = RetargetStore(cfg.lake.root)
    out = []
    for p in prune_history(store, cfg.retarget.history_retention_hours, now=now):
        if p.version is None:  # table not created yet
            continue
        live = len(DeltaTable(store.path(p.table)).file_uris())
        out.append(MaintenanceResult(p.table.replace("/", "."), live, live, False, p.files_deleted,
                                     p.log_files_deleted))
    return out
