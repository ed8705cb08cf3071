"""A small reader layer over the ``deltalake`` package: the dashboard reads Delta tables without Spark.

* :class:`LakeReader` keeps one open ``DeltaTable`` per table. Each read first calls
  ``update_incremental()`` (well under a millisecond locally: it only lists new commit files) and
  drops that table's cached results when the version changed, so repeated requests between two
  commits of the streaming app are answered from memory.
* Reads push the column list and a small ``where`` filter down to deltalake's own query engine
  (:func:`lib.delta_io.select`: ``QueryBuilder``, DataFusion), which prunes files by the partition values
  and min/max statistics of the Delta log, so a time filter such as ``window_start >= now - 60 min``
  skips old files without opening them. (Measured against the file list this module used to build by
  hand and against ``DeltaTable.to_pyarrow_dataset()``: docs/decisions.md.)
* Results are normalised to the table contract in :data:`SCHEMAS`: timestamps become
  ``timestamp[us, UTC]`` whether the writer stored them tz-aware (Spark's ``TIMESTAMP``) or naive
  (``TIMESTAMP_NTZ``), decimals become doubles, missing columns are filled with nulls.
* A table that does not exist yet (fresh lake) reads as ``None``; callers turn that into empty data.

The reader never writes. A table that exists but cannot be read raises :class:`TableReadError` with
deltalake's reason.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from lib.delta_io import Where, add_actions, open_table_or_none, select
from lib.schema import arrow_schema

log = logging.getLogger("lib.dashboard.tables")

T = TypeVar("T")
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableRef:
    """A table of the lake: ``<lake root>/<layer>/<name>``."""

    layer: str
    name: str

    def __str__(self) -> str:
        return f"{self.layer}/{self.name}"


SALES_PER_MINUTE = TableRef("gold", "sales_per_minute")
SALES_DAILY = TableRef("gold", "sales_daily")
REVENUE_PER_MINUTE = TableRef("gold", "revenue_per_minute")
TOP_PRODUCTS = TableRef("gold", "top_products")
QUALITY_BATCHES = TableRef("ops", "quality_batches")
QUARANTINE_EVENTS = TableRef("quarantine", "events")
RETARGET_DECISIONS = TableRef("retarget", "decisions")
RETARGET_UPLIFT = TableRef("gold", "retarget_uplift")
SESSION_BATCHES = TableRef("ops", "session_batches")

# The contract of the tables the dashboard reads (written by the streaming app, lib/lakehouse.py; declared
# in lib/schema.py). Reads are cast to these types; a column the writer has not (yet) produced comes back as
# nulls, so the optional columns (load_id: "<app id>:<batch id>" of the writer) may be absent.
SCHEMAS: dict[TableRef, pa.Schema] = {
    ref: arrow_schema(str(ref))
    for ref in (SALES_PER_MINUTE, SALES_DAILY, REVENUE_PER_MINUTE, TOP_PRODUCTS, QUALITY_BATCHES, QUARANTINE_EVENTS,
                RETARGET_DECISIONS, RETARGET_UPLIFT, SESSION_BATCHES)
}
SCHEMAS[QUARANTINE_EVENTS] = SCHEMAS[QUARANTINE_EVENTS].append(pa.field("batch_id", pa.int64()))  # older layout
KNOWN_TABLES: tuple[TableRef, ...] = tuple(SCHEMAS)

# Score tables of the nightly batch chain (jobs/batch/run.py score, lib.schema.SCORE_TABLE_DDL): replaced
# whole by each scoring run, absent until the first one. Not part of the live health list.
DEMAND_FORECAST = TableRef("gold", "demand_forecast")
CUSTOMER_SEGMENTS = TableRef("gold", "customer_segments")
BATCH_SCHEMAS: dict[TableRef, pa.Schema] = {ref: arrow_schema(str(ref)) for ref in (DEMAND_FORECAST, CUSTOMER_SEGMENTS)}

class TableReadError(RuntimeError):
    """A table exists but cannot be read; ``str(err)`` is meant for the API's error body."""


@dataclass(frozen=True)
class TableInfo:
    table: str
    exists: bool
    version: int | None


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken to be UTC already)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _cast_column(col: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    if col.type == target:
        return col
    if pa.types.is_timestamp(col.type) and pa.types.is_timestamp(target):
        # naive (NTZ) values are UTC wall-clock values: relabel, then convert the unit
        if col.type.tz is None:
            col = col.cast(pa.timestamp(col.type.unit, tz="UTC"))
        return col.cast(target, safe=False)
    try:
        return col.cast(target, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return col


def normalize(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """Cast ``table`` to the contract ``schema`` (for the columns it names); fill missing ones with nulls."""
    if schema is None:
        return table
    columns, fields = [], []
    for name in table.column_names:
        col = table.column(name)
        if name in schema.names:
            col = _cast_column(col, schema.field(name).type)
        elif pa.types.is_decimal(col.type):
            col = col.cast(pa.float64())
        columns.append(col)
        fields.append(pa.field(name, col.type))
    return pa.table(columns, schema=pa.schema(fields))


class _Entry:
    __slots__ = ("lock", "dt", "version", "results", "checked_at")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.dt: Any = None  # deltalake.DeltaTable, opened lazily
        self.version: int | None = None
        self.results: OrderedDict[Hashable, Any] = OrderedDict()
        self.checked_at = 0.0


class LakeReader:
    """Read the lake's Delta tables, caching results per table version.

    ``lake_root`` is a local folder or an object-store URI (``gs://...``; credentials come from the
    environment as deltalake/object_store resolve them, e.g. Application Default Credentials).
    """

    def __init__(self, lake_root: str, *, storage_options: dict[str, str] | None = None,
                 max_results_per_table: int = 64, remote_refresh_seconds: float = 1.0) -> None:
        self.lake_root = lake_root.rstrip("/")
        self.remote = "://" in lake_root
        self.storage_options = storage_options
        self.max_results_per_table = max_results_per_table
        # remote lakes: look for new commits at most this often per table (listing a bucket costs)
        self.remote_refresh_seconds = remote_refresh_seconds
        self._entries: dict[TableRef, _Entry] = {}
        self._lock = threading.Lock()
        # diagnostics (tests check that a repeated request does not scan again)
        self.scans = 0

    # -- table handles -------------------------------------------------------------------------------------------
    def path(self, ref: TableRef) -> str:
        return f"{self.lake_root}/{ref.layer}/{ref.name}"

    def _entry(self, ref: TableRef) -> _Entry:
        with self._lock:
            return self._entries.setdefault(ref, _Entry())

    def _reset(self, entry: _Entry) -> None:
        entry.dt, entry.version = None, None
        entry.results.clear()

    def _refresh(self, ref: TableRef, entry: _Entry) -> Any:
        """The table at its latest version, or None if it does not exist (call with entry.lock held)."""
        path = self.path(ref)
        if not self.remote:
            log_dir = os.path.join(path, "_delta_log")
            if not os.path.isdir(log_dir):
                self._reset(entry)
                return None
            if entry.dt is not None and entry.version is not None:
                # a table deleted and re-created under us starts again at version 0: start over too
                if not os.path.exists(os.path.join(log_dir, f"{entry.version:020d}.json")):
                    self._reset(entry)
                # no next commit file: nothing new (one stat instead of listing the log)
                elif not os.path.exists(os.path.join(log_dir, f"{entry.version + 1:020d}.json")):
                    return entry.dt
        elif time.monotonic() - entry.checked_at < self.remote_refresh_seconds:
            return entry.dt  # None: the table was not there at the last look
        entry.checked_at = time.monotonic()
        try:
            if entry.dt is None:
                entry.dt = open_table_or_none(self.path(ref), self.storage_options)
                if entry.dt is None:
                    return None
            else:
                entry.dt.update_incremental()
            version = entry.dt.version()
        except Exception as exc:  # noqa: BLE001 - a half-written or vanished log: try again next request
            log.warning("cannot load %s: %s", ref, exc)
            self._reset(entry)
            return None
        if version != entry.version:
            entry.results.clear()
            entry.version = version
        return entry.dt

    # -- cached computations -------------------------------------------------------------------------------------
    def memo(self, ref: TableRef, key: Hashable, compute: Callable[[Any], T]) -> T | None:
        """``compute(delta_table)`` once per table version and ``key``; None if the table does not exist."""
        entry = self._entry(ref)
        with entry.lock:
            dt = self._refresh(ref, entry)
            if dt is None:
                return None
            if key in entry.results:
                entry.results.move_to_end(key)
                return entry.results[key]
            try:
                value = compute(dt)
            except TableReadError:
                raise
            except Exception as exc:
                self._reset(entry)
                raise TableReadError(f"{ref}: {_explain(exc)}") from exc
            entry.results[key] = value
            while len(entry.results) > self.max_results_per_table:
                entry.results.popitem(last=False)
            return value

    def version(self, ref: TableRef) -> int | None:
        entry = self._entry(ref)
        with entry.lock:
            return None if self._refresh(ref, entry) is None else entry.version

    def read(self, ref: TableRef, *, columns: Iterable[str] | None = None, where: Where | None = None) -> pa.Table | None:
        """Rows of ``ref`` (only ``columns``, only rows matching ``where``), normalised; None if no table.

        Cached per table version and arguments: build ``where`` from values that repeat between
        requests (e.g. a cut-off time rounded to the minute) so the cache is hit.
        """
        cols = tuple(columns) if columns is not None else None
        key = ("read", cols, tuple((c, op, tuple(v) if op == "in" else v) for c, op, v in where or ()))
        return self.memo(ref, key, lambda dt: self._scan(dt, ref, cols, where))

    def _scan(self, dt: Any, ref: TableRef, columns: Sequence[str] | None, where: Where | None) -> pa.Table:
        names = pa.schema(dt.schema().to_arrow()).names
        contract = SCHEMAS.get(ref) or BATCH_SCHEMAS.get(ref)
        wanted = list(columns) if columns is not None else (contract.names if contract else names)
        self.scans += 1
        table = normalize(select(dt, [c for c in wanted if c in names], where), contract)
        for name in wanted:  # columns the writer has not produced (yet): nulls of the contract type
            if name not in table.column_names:
                typ = contract.field(name).type if contract and name in contract.names else pa.null()
                table = table.append_column(pa.field(name, typ), pa.nulls(table.num_rows, typ))
        return table.select(wanted)

    def read_latest(self, ref: TableRef, time_column: str, limit: int, *,
                    columns: Iterable[str] | None = None) -> pa.Table | None:
        """The ``limit`` rows with the latest ``time_column`` (newest first), reading as few files as possible.

        Uses the per-file min/max statistics of the Delta log: the newest files are taken until they hold
        ``limit`` rows, and only rows at or after the oldest of them are read. Falls back to a full scan
        when the log has no statistics for the column.
        """
        cols = tuple(columns) if columns is not None else None

        def compute(dt: Any) -> pa.Table:
            threshold = self._latest_threshold(dt, time_column, limit)
            where = [(time_column, ">=", threshold)] if threshold is not None else None
            table = self._scan(dt, ref, None if cols is None else tuple(dict.fromkeys((*cols, time_column))), where)
            order = pc.sort_indices(table, sort_keys=[(time_column, "descending")], null_placement="at_end")
            table = table.take(order).slice(0, limit)
            return table if cols is None else table.select(list(cols))

        return self.memo(ref, ("latest", time_column, limit, cols), compute)

    @staticmethod
    def _latest_threshold(dt: Any, time_column: str, limit: int) -> datetime | None:
        adds = add_actions(dt)
        lo, hi = f"min.{time_column}", f"max.{time_column}"
        if adds.num_rows == 0 or lo not in adds.schema.names or hi not in adds.schema.names:
            return None
        rows = adds.select(["num_records", lo, hi]).to_pylist()
        if any(r[lo] is None or r[hi] is None or r["num_records"] is None for r in rows):
            return None
        rows.sort(key=lambda r: utc(r[hi]), reverse=True)
        taken, oldest = 0, None
        for r in rows:
            oldest = utc(r[lo]) if oldest is None else min(oldest, utc(r[lo]))
            taken += r["num_records"]
            if taken >= limit:
                break
        # statistics are truncated to milliseconds: step back a little to stay on the safe side
        return None if oldest is None else oldest - timedelta(seconds=1)

    def info(self, refs: Iterable[TableRef] = KNOWN_TABLES) -> list[TableInfo]:
        out = []
        for ref in refs:
            v = self.version(ref)
            out.append(TableInfo(table=str(ref), exists=v is not None, version=v))
        return out


def _explain(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


# -- small helpers for the query code ---------------------------------------------------------------------------
def floor_minute(value: datetime) -> datetime:
    return utc(value).replace(second=0, microsecond=0)


def today(now: datetime) -> date:
    return utc(now).date()


def rows(table: pa.Table | None) -> list[dict[str, Any]]:
    return [] if table is None else table.to_pylist()


def latest_per_key(table: pa.Table, keys: Sequence[str], order_column: str = "updated_at") -> pa.Table:
    """One row per ``keys`` — the one with the greatest ``order_column``.

    The gold tables are upserted (one row per key), but if a writer appends a new version of a row
    instead, the newest one wins here.
    """
    if table.num_rows == 0:
        return table
    order = pc.sort_indices(table, sort_keys=[(order_column, "descending")], null_placement="at_end")
    table = table.take(order)
    index = pa.array(range(table.num_rows), pa.int64())
    grouped = table.select(list(keys)).append_column("__i", index).group_by(list(keys), use_threads=False)
    first = grouped.aggregate([("__i", "min")]).column("__i_min")
    return table.take(first.take(pc.sort_indices(first)))  # keep the newest-first order


def column_max(reader: LakeReader, ref: TableRef, column: str) -> Any:
    """Greatest value of ``column`` (None if no table / no rows), from the Delta log's file statistics
    when they cover every file, else by scanning that one column. Cached per table version."""

    def compute(dt: Any) -> Any:
        adds = add_actions(dt)
        if adds.num_rows == 0:
            return None
        stat = f"max.{column}"
        if stat in adds.schema.names and adds.column(stat).null_count == 0:
            value = pc.max(adds.column(stat)).as_py()
        else:
            table = reader.read(ref, columns=[column])
            value = None if table is None or table.num_rows == 0 else pc.max(table.column(column)).as_py()
        return utc(value) if isinstance(value, datetime) else value

    return reader.memo(ref, ("max", column), compute)
