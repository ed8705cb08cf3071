"""A small reader layer over the ``deltalake`` package: the dashboard reads Delta tables without Spark.

* :class:`LakeReader` keeps one open ``DeltaTable`` per table. Each read first calls
  ``update_incremental()`` (well under a millisecond locally: it only lists new commit files) and
  drops that table's cached results when the version changed, so repeated requests between two
  commits of the streaming app are answered from memory.
* Reads push the column list and a small ``where`` filter down to ``DeltaTable.to_pyarrow_dataset()``.
  deltalake attaches each file's min/max statistics to the dataset's fragments, so a time filter
  such as ``window_start >= now - 60 min`` skips old files without opening them.
* Results are normalised to the table contract in :data:`SCHEMAS`: timestamps become
  ``timestamp[us, UTC]`` whether the writer stored them tz-aware (Spark's ``TIMESTAMP``) or naive
  (``TIMESTAMP_NTZ``), decimals become doubles, missing columns are filled with nulls.
* A table that does not exist yet (fresh lake) reads as ``None``; callers turn that into empty data.

The reader never writes. Tables that need deletion vectors or column mapping cannot be read through
pyarrow datasets; such a table raises :class:`TableReadError` with a message that says so.
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
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pa_fs

from lib.delta_io import add_actions, open_table_or_none
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

# Score tables of the nightly batch chain (jobs/batch/score.py, lib.schema.SCORE_TABLE_DDL): replaced
# whole by each scoring run, absent until the first one. Not part of the live health list.
DEMAND_FORECAST = TableRef("gold", "demand_forecast")
CUSTOMER_SEGMENTS = TableRef("gold", "customer_segments")
BATCH_SCHEMAS: dict[TableRef, pa.Schema] = {ref: arrow_schema(str(ref)) for ref in (DEMAND_FORECAST, CUSTOMER_SEGMENTS)}

# A filter is a sequence of (column, op, value) conditions, all of which must hold (AND).
Where = Sequence[tuple[str, str, Any]]
_OPS: dict[str, Callable[[pc.Expression, Any], pc.Expression]] = {
    "==": lambda f, v: f == v, "!=": lambda f, v: f != v, ">": lambda f, v: f > v,
    ">=": lambda f, v: f >= v, "<": lambda f, v: f < v, "<=": lambda f, v: f <= v,
    "in": lambda f, v: f.isin(v),
}


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


def _scalar(value: Any, typ: pa.DataType) -> pa.Scalar:
    if pa.types.is_timestamp(typ) and isinstance(value, datetime):
        value = utc(value)
        if typ.tz is None:  # TIMESTAMP_NTZ column: compare wall-clock UTC values
            value = value.replace(tzinfo=None)
        return pa.scalar(value, type=pa.timestamp(typ.unit, tz=typ.tz))
    if pa.types.is_date(typ) and isinstance(value, datetime):
        value = utc(value).date()
    return pa.scalar(value, type=typ)


def _expression(schema: pa.Schema, where: Where | None) -> pc.Expression | None:
    expr = None
    for column, op, value in where or ():
        typ = schema.field(column).type
        rhs = pa.array(list(value), type=typ) if op == "in" else _scalar(value, typ)
        cond = _OPS[op](pc.field(column), rhs)
        expr = cond if expr is None else expr & cond
    return expr


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
            if entry.dt is not None:
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

    def add_actions(self, ref: TableRef) -> pa.Table | None:
        """The table's live files with their statistics (``path``, ``num_records``, ``min.<col>``,
        ``max.<col>``, ``partition.<col>``), from the Delta log; cached per version."""
        return self.memo(ref, ("__adds__",), add_actions)

    def _table_layout(self, ref: TableRef) -> tuple[pa.Schema, list[str], Any, str] | None:
        """(arrow schema, partition columns, pyarrow filesystem or None, base path) per version."""

        def compute(dt: Any) -> tuple[pa.Schema, list[str], Any, str]:
            _check_readable(dt)
            schema = pa.schema(dt.schema().to_arrow())
            fs, base = None, ""
            if self.storage_options is None:  # with storage options only deltalake knows how to connect
                try:
                    fs, base = pa_fs.FileSystem.from_uri(dt.table_uri)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                    fs = None
            return schema, list(dt.metadata().partition_columns), fs, base.rstrip("/")

        return self.memo(ref, ("__layout__",), compute)

    def dataset(self, ref: TableRef, where: Where | None = None) -> pads.Dataset | None:
        """A pyarrow dataset over the table's current files, leaving out the files whose min/max
        statistics (or partition values) show they hold no row matching ``where``.

        Built from the file list of the Delta log (milliseconds, however many files); deltalake's own
        ``to_pyarrow_dataset()`` costs ~1.5 ms per file, too slow to redo at every commit of a
        streaming table, and is only the fallback (remote lakes with explicit ``storage_options``).
        """
        layout = self._table_layout(ref)
        if layout is None:
            return None
        schema, partition_cols, fs, base = layout
        if fs is None:
            return self.memo(ref, ("__deltalake_dataset__",), lambda dt: dt.to_pyarrow_dataset())
        adds = self.add_actions(ref)
        if adds is None:
            return None
        adds = adds.filter(_file_filter(adds, where, partition_cols)) if where and adds.num_rows else adds
        paths = [p if "://" in p else f"{base}/{unquote(p)}" for p in adds.column("path").to_pylist()]
        if any("://" in p for p in paths):
            paths = [pa_fs.FileSystem.from_uri(p)[1] if "://" in p else p for p in paths]
        partitions = _partition_expressions(adds, schema, partition_cols) if partition_cols and paths else None
        return pads.FileSystemDataset.from_paths(paths, schema=schema, format=pads.ParquetFileFormat(),
                                                 filesystem=fs, partitions=partitions)

    def read(self, ref: TableRef, *, columns: Iterable[str] | None = None, where: Where | None = None) -> pa.Table | None:
        """Rows of ``ref`` (only ``columns``, only rows matching ``where``), normalised; None if no table.

        Cached per table version and arguments: build ``where`` from values that repeat between
        requests (e.g. a cut-off time rounded to the minute) so the cache is hit.
        """
        cols = tuple(columns) if columns is not None else None
        key = ("read", cols, tuple((c, op, tuple(v) if op == "in" else v) for c, op, v in where or ()))
        return self.memo(ref, key, lambda dt: self._scan(ref, cols, where))

    def _scan(self, ref: TableRef, columns: Sequence[str] | None, where: Where | None) -> pa.Table:
        ds = self.dataset(ref, where)
        contract = SCHEMAS.get(ref) or BATCH_SCHEMAS.get(ref)
        wanted = list(columns) if columns is not None else (contract.names if contract else ds.schema.names)
        present = [c for c in wanted if c in ds.schema.names]
        missing_filter_cols = [c for c, _, _ in where or () if c not in ds.schema.names]
        self.scans += 1
        if missing_filter_cols:  # a filter on a column the table does not have matches nothing
            table = ds.schema.empty_table().select(present)
        else:
            table = ds.to_table(columns=present, filter=_expression(ds.schema, where))
        table = normalize(table, contract)
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
            table = self._scan(ref, None if cols is None else tuple(dict.fromkeys((*cols, time_column))), where)
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


def _check_readable(dt: Any) -> None:
    protocol = dt.protocol()
    features = set(protocol.reader_features or ())
    mode = (dt.metadata().configuration or {}).get("delta.columnMapping.mode", "none")
    unsupported = sorted(features & {"deletionVectors", "columnMapping"}) + ([f"columnMapping={mode}"] if mode != "none" else [])
    if protocol.min_reader_version > 3 or unsupported:
        raise TableReadError(
            f"reader version {protocol.min_reader_version} with {', '.join(unsupported) or 'unknown features'} is not "
            "supported: the dashboard reads the parquet files itself; keep deletion vectors and column mapping off "
            "on the tables it reads")


def _file_filter(adds: pa.Table, where: Where, partition_cols: Sequence[str]) -> pa.ChunkedArray | pa.Array:
    """Which files may hold rows matching ``where`` (True when the statistics cannot tell)."""
    keep = pa.array([True] * adds.num_rows)
    for column, op, value in where:
        if column in partition_cols and f"partition.{column}" in adds.column_names:
            part = adds.column(f"partition.{column}")
            rhs = pa.array(list(value), type=part.type) if op == "in" else _scalar(value, part.type)
            cond = _evaluate(_OPS[op](pc.field("p"), rhs), {"p": part})
            keep = pc.and_(keep, pc.fill_null(cond, False))  # a null partition value matches no comparison
            continue
        lo, hi = f"min.{column}", f"max.{column}"
        if lo not in adds.column_names or hi not in adds.column_names or op == "!=":
            continue
        lo_col, hi_col = adds.column(lo), adds.column(hi)
        typ = hi_col.type
        values = list(value) if op == "in" else [value]
        if not values:
            return pa.array([False] * adds.num_rows)
        scalars = [_scalar(v, typ) for v in values]
        low, high = min(scalars, key=lambda x: x.as_py()), max(scalars, key=lambda x: x.as_py())
        if pa.types.is_timestamp(typ):
            # statistics are truncated to milliseconds: widen the bounds a little
            slack = timedelta(seconds=1)
            low = _scalar(utc(low.as_py()) - slack, typ)
            high = _scalar(utc(high.as_py()) + slack, typ)
        if op in (">=", ">"):
            cond = pc.greater_equal(hi_col, low)
        elif op in ("<", "<="):
            cond = pc.less_equal(lo_col, high)
        else:  # ==, in
            cond = pc.and_(pc.less_equal(lo_col, high), pc.greater_equal(hi_col, low))
        keep = pc.and_(keep, pc.fill_null(cond, True))
    return keep


def _evaluate(expr: pc.Expression, columns: dict[str, Any]) -> pa.Array:
    table = pa.table(columns)
    return pads.dataset(table).to_table(columns={"r": expr}).column("r")


def _partition_expressions(adds: pa.Table, schema: pa.Schema, partition_cols: Sequence[str]) -> list[pc.Expression]:
    values = {c: adds.column(f"partition.{c}").to_pylist() if f"partition.{c}" in adds.column_names else None
              for c in partition_cols}
    out = []
    for i in range(adds.num_rows):
        expr = pc.scalar(True)
        for c in partition_cols:
            if values[c] is None:
                continue
            v = values[c][i]
            typ = schema.field(c).type
            expr = expr & (pc.field(c).is_null() if v is None else pc.field(c) == _scalar(v, typ))
        out.append(expr)
    return out


def _explain(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "deletionVectors" in text or "columnMapping" in text:
        text += " (the dashboard reads through pyarrow datasets: keep deletion vectors and column mapping off on the tables it reads)"
    return text


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
