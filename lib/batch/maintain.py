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

import logging
import time
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
    # beside the live stream: compactions retried after a commit conflict, and what stayed undone
    conflicts: int = 0
    error: str = ""

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _num_files(spark: SparkSession, location: str) -> int:
    return int(spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()["numFiles"])


# VACUUM lists the table's folders with this many tasks; Spark's default (10,000) costs minutes per
# table on a small machine, so the listing uses the cluster's parallelism instead
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


log = logging.getLogger("shop.maintain")

# the streaming app keeps writing while maintain runs (it MERGEs the gold tables every few seconds):
# a compaction that loses a commit race is simply tried again on the table's new version
OPTIMIZE_ATTEMPTS = 4


class MaintenanceError(RuntimeError):
    """One or more tables could not be maintained (the others were); ``str`` is one line."""


def _is_conflict(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return "DELTA_CONCURRENT" in text or "ConcurrentModification" in text or "Concurrent" in text and "Exception" in text


def _compact(spark: SparkSession, location: str) -> int:
    """OPTIMIZE (bin-packing), retried on a conflict with a concurrent writer; returns the conflicts seen.
    Raises the conflict after ``OPTIMIZE_ATTEMPTS``."""
    from delta.tables import DeltaTable

    for attempt in range(OPTIMIZE_ATTEMPTS):
        try:
            DeltaTable.forPath(spark, location).optimize().executeCompaction()
            return attempt
        except Exception as exc:  # noqa: BLE001 - only Delta's commit conflicts are retried
            if not _is_conflict(exc) or attempt == OPTIMIZE_ATTEMPTS - 1:
                raise
            log.warning("compaction of %s lost a commit race with the stream; retrying", location)
            time.sleep(0.5 * (attempt + 1))
    return OPTIMIZE_ATTEMPTS


def maintain(spark: SparkSession, cfg: Config) -> list[MaintenanceResult]:
    """Compact and vacuum every table, each on its own: a table that fails (or keeps losing commit races
    against the live stream) does not stop the others; :class:`MaintenanceError` at the end names it."""
    from delta.tables import DeltaTable

    out = []
    previous = spark.conf.get(LISTING_PARALLELISM, None)
    spark.conf.set(LISTING_PARALLELISM, str(max(spark.sparkContext.defaultParallelism, 1)))
    try:
        for name, location in lake_tables(spark, cfg).items():
            before, conflicts, compact = 0, 0, False
            try:
                before = _num_files(spark, location)
                compact = before >= cfg.batch.compact_min_files
                if compact:
                    conflicts = _compact(spark, location)
                DeltaTable.forPath(spark, location).vacuum(float(cfg.batch.vacuum_retention_hours))
                out.append(MaintenanceResult(name, before, _num_files(spark, location), compact, conflicts=conflicts))
            except Exception as exc:  # noqa: BLE001 - per-table isolation; reported below
                first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                log.error("maintain %s failed: %s", name, first)
                out.append(MaintenanceResult(name, before, before, False, conflicts=conflicts, error=first))
    finally:
        if previous is None:
            spark.conf.unset(LISTING_PARALLELISM)
        else:
            spark.conf.set(LISTING_PARALLELISM, previous)
    out += maintain_retarget(cfg)
    failed = [r for r in out if r.error]
    if failed:
        raise MaintenanceError(f"maintain: {len(failed)} of {len(out)} tables failed "
                               f"({', '.join(f'{r.table}: {r.error}' for r in failed)[:600]})")
    return out


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
