"""Table maintenance: compaction (OPTIMIZE) and retention (VACUUM) of every Delta table of the lake.

Streaming appends leave many small files (one per micro-batch and partition); a table with at least
``batch.compact_min_files`` live files is compacted — Spark's OPTIMIZE (bin-packing), limited to the
partitions that hold two files or more (readers and the streaming writer keep working, Delta resolves
the concurrent appends). VACUUM then deletes files that no version younger than
``batch.vacuum_retention_hours`` references — time travel keeps working inside that window. Counting
files and VACUUM use delta-rs (the log and one listing: milliseconds per small table, where a Spark
job costs ~2 s each); only compaction, which reads and writes data, runs in Spark. The dashboard
reads the parquet files named by the Delta log, so neither operation turns on deletion vectors or
column mapping.

The ``retarget/*`` tables (written by the dispatcher, the sessions sink and the dashboard with
delta-rs; they hold subscriber addresses and per-user decisions) get their own retention,
``retarget.history_retention_hours``: VACUUM (full) and a cut of their Delta log at a fresh checkpoint
(``lib.retarget.personal_data.prune_history``), so a replaced subscriber list or an erased row is
physically gone — data files *and* log entries (statistics, predicates) — once that much time passed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow.compute as pc
from pyspark.sql import SparkSession
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_incrementing

from lib import delta_io
from lib.batch.tables import lake_tables
from lib.config import Config
from lib.retarget.personal_data import prune_history
from lib.retarget.store import RetargetStore


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    files_before: int
    files_after: int
    compacted: bool
    # files VACUUM deleted; retarget/* only: Delta log files cut (history older than the retention)
    vacuumed_files: int = 0
    log_files_deleted: int = 0
    # beside the live stream: compactions retried after a commit conflict, and what stayed undone
    conflicts: int = 0
    error: str = ""

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _num_files(location: str) -> int:
    """Live files of the table, from its log (delta-rs: no Spark job; a broken log raises one line)."""
    dt = delta_io.open_table_or_none(location)
    return len(dt.file_uris()) if dt is not None else 0


def _vacuum(location: str, retention_hours: int) -> int:
    """VACUUM with delta-rs: the same rule as Delta's (files no version younger than the retention
    references; a retention below the table's ``delta.deletedFileRetentionDuration`` is refused), at
    the cost of one listing — Spark's VACUUM is a Spark job of ~2 s even on an empty table. Commits
    VACUUM START/END only when it deletes something. Returns the files deleted."""
    dt = delta_io.open_table_or_none(location)
    if dt is None:
        return 0
    return len(dt.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=True))


log = logging.getLogger("shop.maintain")

# the streaming app keeps writing while maintain runs (it MERGEs the gold tables every few seconds):
# a compaction that loses a commit race is simply tried again on the table's new version
OPTIMIZE_ATTEMPTS = 4


class MaintenanceError(RuntimeError):
    """One or more tables could not be maintained (the others were); ``str`` is one line."""


def _is_conflict(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return "DELTA_CONCURRENT" in text or "ConcurrentModification" in text or "Concurrent" in text and "Exception" in text


def compaction_scope(dt, min_files: int, small_bytes: int) -> tuple[bool, str | None]:
    """Whether the table needs a compaction, and where. Only *small* files (below ``small_bytes``)
    count, as only they are packed (:func:`_compact`): ``(False, None)`` below ``min_files`` small
    files or when no partition holds two (bin-packing works per partition: a table of one file per day
    has nothing to pack); else ``(True, predicate)`` naming just the partitions with two small files or
    more (``None``: the whole table, unpartitioned). ``dt``: the table (delta-rs), None if there is none."""
    if dt is None:
        return False, None
    adds = delta_io.add_actions(dt)
    adds = adds.filter(pc.less(adds["size_bytes"], small_bytes))
    if adds.num_rows < min_files:
        return False, None
    parts = list(dt.metadata().partition_columns)
    if not parts:
        return True, None
    counts = adds.group_by([f"partition.{c}" for c in parts]).aggregate([("path", "count")]).to_pylist()
    crowded = [row for row in counts if row["path_count"] >= 2]
    if not crowded:
        return False, None

    def literal(v) -> str:
        return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"

    def equals(c: str, v) -> str:
        return f"`{c}` IS NULL" if v is None else f"`{c}` = {literal(v)}"
    if len(parts) == 1:
        values = [row[f"partition.{parts[0]}"] for row in crowded]
        named = ", ".join(literal(v) for v in values if v is not None)
        terms = ([f"`{parts[0]}` IN ({named})"] if named else []) + (
            [f"`{parts[0]}` IS NULL"] if None in values else [])
        return True, " OR ".join(terms)
    return True, " OR ".join("(" + " AND ".join(equals(c, row[f"partition.{c}"]) for c in parts) + ")"
                             for row in crowded)


def _compact(spark: SparkSession, location: str, where: str | None = None, small_bytes: int | None = None) -> int:
    """OPTIMIZE (bin-packing of the files below ``small_bytes``) of the table or of the partitions
    ``where`` names, retried on a conflict with a concurrent writer; returns the conflicts seen. Raises
    the conflict after ``OPTIMIZE_ATTEMPTS``."""
    def lost_a_race(_state) -> None:
        log.warning("compaction of %s lost a commit race with the stream; retrying", location)

    # only Delta's commit conflicts are retried, after 0.5 s, 1 s, 1.5 s, ...; the last one raises
    for attempt in Retrying(stop=stop_after_attempt(OPTIMIZE_ATTEMPTS), wait=wait_incrementing(0.5, 0.5),
                            retry=retry_if_exception(_is_conflict), before_sleep=lost_a_race, reraise=True):
        with attempt:
            delta_io.compact(spark, location, where, min_file_bytes=small_bytes)
    return attempt.retry_state.attempt_number - 1


def maintain(spark: SparkSession, cfg: Config) -> list[MaintenanceResult]:
    """Compact and vacuum every table, each on its own: a table that fails (or keeps losing commit races
    against the live stream) does not stop the others; :class:`MaintenanceError` at the end names it."""
    out = []
    small = cfg.batch.compact_small_file_mb * 2**20
    for name, location in lake_tables(spark, cfg).items():
        before, conflicts, compact, vacuumed = 0, 0, False, 0
        try:
            table = delta_io.open_table_or_none(location)  # its log is read once for the count and the scope
            before = len(table.file_uris()) if table is not None else 0
            compact, where = compaction_scope(table, cfg.batch.compact_min_files, small)
            if compact:  # the only part that reads and writes data: Spark's OPTIMIZE
                conflicts = _compact(spark, location, where, small)
            vacuumed = _vacuum(location, cfg.batch.vacuum_retention_hours)
            out.append(MaintenanceResult(name, before, _num_files(location), compact, vacuumed_files=vacuumed,
                                         conflicts=conflicts))
        except Exception as exc:  # noqa: BLE001 - per-table isolation; reported below
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            log.error("maintain %s failed: %s", name, first)
            out.append(MaintenanceResult(name, before, before, False, conflicts=conflicts, error=first))
    out += maintain_retarget(cfg)
    failed = [r for r in out if r.error]
    if failed:
        raise MaintenanceError(f"maintain: {len(failed)} of {len(out)} tables failed "
                               f"({', '.join(f'{r.table}: {r.error}' for r in failed)[:600]})")
    return out


def maintain_retarget(cfg: Config, now: float | None = None) -> list[MaintenanceResult]:
    """Retention of the retarget tables' history (no Spark: delta-rs, local or gs://)."""
    store = RetargetStore(cfg.lake.root)
    out = []
    for p in prune_history(store, cfg.retarget.history_retention_hours, now=now):
        if p.version is None:  # table not created yet
            continue
        live = len(delta_io.open_table(store.path(p.table)).file_uris())
        out.append(MaintenanceResult(p.table.replace("/", "."), live, live, False, p.files_deleted,
                                     p.log_files_deleted))
    return out
