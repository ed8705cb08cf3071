"""The one way into the lake's Delta tables: open, read, write, merge — without Spark and with Spark.

**Without Spark** (``deltalake``, delta-rs; the dashboard, the dispatcher, ``make status``, the demo):
:func:`open_table_or_none`, :func:`read_table`, :func:`select` (filters pushed down to deltalake's
own query engine), :func:`create_table`, :func:`write_table`,
:func:`insert_new`, the streaming app's exactly-once writes (:func:`append_once`, :func:`merge_once`,
:func:`overwrite_once`, each retried after a commit conflict), the dispatcher lease's compare-and-swap
(:func:`open_or_create`, :func:`overwrite_next_version`, :func:`vacuum_now`), and the log's statistics (:func:`add_actions`, :func:`row_count`,
:func:`last_commit_ms`). ``deltalake`` has sharp edges at exactly the moments a new user meets first,
handled here once:

* a table with no data files yet (created empty, or every file removed): ``get_add_actions`` panics
  in Rust (``index out of bounds``) and raises ``pyo3_runtime.PanicException``, which derives from
  ``BaseException`` — an ``except Exception`` does not catch it;
* a table being created: ``_delta_log/`` exists but holds no commit yet (``TableNotFoundError``);
* no table at all.

**With Spark** (``delta-spark``; the streaming app and the batch jobs): :func:`ensure_table`,
:func:`append` (idempotent on request), :func:`replace_table`, :func:`delete_where`, :func:`compact` (OPTIMIZE),
:func:`spark_table_exists`. Idempotent appends use Delta's per-table transaction ids (``txnAppId`` +
``txnVersion``): a retried write whose append already committed is skipped by Delta itself (the
streaming lakehouse uses them on every table, see lib/lakehouse.py).

Schemas come from :mod:`lib.schema` (one DDL per table, as Arrow or as Spark).

Imports of ``deltalake`` and ``delta`` sit inside the functions, on purpose: ``deltalake`` reads
``RUST_LOG`` once, when it is first imported, and the command-line programs (``make status``) set it in
``main()`` after importing this module; and the containers without Spark (dashboard, dispatcher) import
this module but have no ``pyspark``/``delta-spark``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_incrementing

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

# The columns of an empty add-actions table (what deltalake gives for a table with files, minus the
# per-column statistics, which depend on the schema).
_EMPTY_ADDS = pa.schema([("path", pa.string()), ("size_bytes", pa.int64()),
                         ("modification_time", pa.timestamp("ms")), ("num_records", pa.int64())])


log = logging.getLogger("shop.delta_io")

# deltalake's Rust side logs at WARN by default. delta_kernel warns "read_json receiver end of channel
# dropped before sending completed" whenever a log read is dropped early — harmless, nothing to act on,
# and ~40 lines per 60k-event demo in the streaming log (672k lines in one test run). That one module is
# held to errors; every other warning stays. A RUST_LOG the user set wins (it is read at deltalake's
# first import, which comes after this module's). ``quiet_rust_log`` is the "errors only" of the CLIs.
RUST_LOG_DEFAULT = "warn,delta_kernel::engine::default::json=error"
os.environ.setdefault("RUST_LOG", RUST_LOG_DEFAULT)


def quiet_rust_log() -> None:
    """Errors only from deltalake's Rust side, unless the user set ``RUST_LOG`` (call before the first
    deltalake import: the command-line programs report errors as one line of their own)."""
    if os.environ.get("RUST_LOG", RUST_LOG_DEFAULT) == RUST_LOG_DEFAULT:
        os.environ["RUST_LOG"] = "error"


class TableUnreadable(RuntimeError):
    """The table's log cannot be read; ``str(err)`` is one line naming the table and the cause."""


# --- without Spark (deltalake) ------------------------------------------------------------------------------
def is_delta_table(path: str | Path) -> bool:
    """A local path that holds a Delta log folder (the table may still be being created)."""
    return (Path(path) / "_delta_log").is_dir()


def open_table_or_none(path: str | Path, storage_options: dict | None = None) -> DeltaTable | None:
    """The table at its latest version, or None when there is no table (or its first commit is not
    written yet). Other failures raise :class:`TableUnreadable` with a one-line reason."""
    # deferred: deltalake reads RUST_LOG on import
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(str(path), storage_options=storage_options)
    except TableNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - a corrupt/half-written log: one line for the caller
        raise TableUnreadable(f"{path}: {one_line(exc)}") from exc


def read_table(path: str | Path, columns: Sequence[str] | None = None, filters: Any = None,
               storage_options: dict | None = None) -> pa.Table | None:
    """Rows of the table (only ``columns``; only rows matching ``filters``, a ``pyarrow.compute``
    expression or DNF list: deltalake leaves out the files whose partition values and min/max
    statistics rule it out), or None when there is no table."""
    dt = open_table_or_none(path, storage_options)
    if dt is None:
        return None
    return dt.to_pyarrow_table(columns=None if columns is None else list(columns), filters=filters)


# A filter is a sequence of (column, op, value) conditions, all of which must hold (AND); ``value`` is a
# list for "in". Timestamps compare as UTC instants (a naive column, Delta's TIMESTAMP_NTZ, holds UTC
# wall-clock values); a datetime compared with a DATE column is taken as its UTC date.
Where = Sequence[tuple[str, str, Any]]
_SQL_OPS = {"==": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def select(dt: DeltaTable, columns: Sequence[str], where: Where | None = None) -> pa.Table:
    """``columns`` of the open table's rows that match ``where``, read by deltalake's own query engine
    (``QueryBuilder``, DataFusion): it leaves out the files whose partition values or min/max statistics
    in the log rule the filter out, without opening them. A filter column the table lacks matches nothing."""
    from deltalake import QueryBuilder  # deferred: deltalake reads RUST_LOG on import

    schema = pa.schema(dt.schema().to_arrow())
    conditions = []
    for column, op, value in where or ():
        if column not in schema.names:
            conditions = ["FALSE"]
            break
        typ = schema.field(column).type
        if op == "in":
            values = list(value)
            conditions.append(f"{_sql_name(column)} IN ({', '.join(_sql_literal(v, typ) for v in values)})"
                              if values else "FALSE")
        else:
            conditions.append(f"{_sql_name(column)} {_SQL_OPS[op]} {_sql_literal(value, typ)}")
    projection = ", ".join(_sql_name(c) for c in columns) or "TRUE AS __row"  # no column: still count the rows
    sql = f"SELECT {projection} FROM t" + (f" WHERE {' AND '.join(conditions)}" if conditions else "")  # noqa: S608 - names and values quoted by _sql_name/_sql_literal
    table = pa.table(QueryBuilder().register("t", dt).execute(sql))
    return table if columns else table.drop_columns(["__row"])


def _sql_name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _sql_literal(value: Any, typ: pa.DataType) -> str:
    if value is None:
        return "NULL"
    if pa.types.is_timestamp(typ):
        ts = _utc(value)
        if typ.tz is None:  # TIMESTAMP_NTZ column: compare wall-clock UTC values
            return f"arrow_cast('{ts.replace(tzinfo=None).isoformat()}', 'Timestamp(Microsecond, None)')"
        return f"arrow_cast('{ts.isoformat()}', 'Timestamp(Microsecond, Some(\"UTC\"))')"
    if pa.types.is_date(typ):
        day = _utc(value).date() if isinstance(value, datetime) else value
        return f"DATE '{day.isoformat()}'"
    if pa.types.is_boolean(typ):
        return "TRUE" if value else "FALSE"
    if pa.types.is_integer(typ):
        return str(int(value))
    if pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return repr(float(value))
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "'" + str(value).replace("'", "''") + "'"
    raise TypeError(f"cannot compare a {typ} column with {value!r}")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_table(path: str, schema: pa.Schema, storage_options: dict | None = None,
                 partition_by: Sequence[str] = (), configuration: dict[str, str] | None = None) -> None:
    """Create an empty table with ``schema`` (and table properties ``configuration``) unless one exists
    (of two concurrent creators, one wins and the other finds its table)."""
    # deferred: deltalake reads RUST_LOG on import
    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError

    try:
        DeltaTable.create(path, schema=schema, mode="ignore", partition_by=list(partition_by) or None,
                          storage_options=storage_options, configuration=configuration or None)
    except CommitFailedError:  # another creator committed version 0 first
        DeltaTable(path, storage_options=storage_options)


def add_missing_columns(dt: DeltaTable, schema: pa.Schema) -> list[str]:
    """Add the (nullable) columns of ``schema`` the table lacks, in one commit: a table created by an
    older version of the project gains the columns added since. Returns their names. Never drops,
    renames or retypes a column."""
    from deltalake import Field  # deferred: deltalake reads RUST_LOG on import

    have = set(pa.schema(dt.schema().to_arrow()).names)
    missing = [f for f in schema if f.name not in have]
    if missing:
        dt.alter.add_columns([Field.from_arrow(f.with_nullable(True)) for f in missing])
    return [f.name for f in missing]


def write_table(path: str, data: pa.Table, schema: pa.Schema, mode: Literal["append", "overwrite"] = "append",
                storage_options: dict | None = None) -> None:
    """Append (or overwrite with) ``data``, cast to the table's ``schema`` (its columns, in its order)."""
    from deltalake import write_deltalake  # deferred: deltalake reads RUST_LOG on import

    data = data.select(schema.names).cast(schema)
    if mode == "overwrite":
        write_deltalake(path, data, mode="overwrite", storage_options=storage_options)
    else:
        write_deltalake(path, data, mode="append", storage_options=storage_options)


def insert_new(dt: DeltaTable, data: pa.Table, key: str) -> int:
    """MERGE into the open table: insert the rows whose ``key`` it does not hold yet (idempotent).
    Returns how many were inserted."""
    metrics = (dt.merge(data, predicate=f"t.{key} = s.{key}", source_alias="s", target_alias="t")
               .when_not_matched_insert_all()
               .execute())
    return int(metrics.get("num_target_rows_inserted", 0))


# --- compare-and-swap commits (the dispatcher's lease, lib/retarget/lease.py) --------------------------------
def open_or_create(path: str, schema: pa.Schema, configuration: dict[str, str] | None = None,
                   storage_options: dict | None = None) -> DeltaTable:
    """The table at its latest version; created empty (with ``schema`` and table ``configuration``) when
    there is none. Of two concurrent creators one fails or no-ops; both then read the same table."""
    # deferred: deltalake reads RUST_LOG on import
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(path, storage_options=storage_options)
    except TableNotFoundError:
        try:
            write_deltalake(path, schema.empty_table(), mode="error", configuration=configuration,
                            storage_options=storage_options)
        except Exception:  # noqa: BLE001, S110 — someone else created it first: read theirs
            pass
        return DeltaTable(path, storage_options=storage_options)


def overwrite_next_version(dt: DeltaTable, data: pa.Table) -> bool:
    """Replace the rows of the open table with ``data`` in a commit that must land at exactly the version
    after ``dt``'s (no commit retry: Delta's put-if-absent of the next log entry decides). False when
    another commit got that version first."""
    # deferred: deltalake reads RUST_LOG on import
    from deltalake import CommitProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    try:
        write_deltalake(dt, data, mode="overwrite", commit_properties=CommitProperties(max_commit_retries=0))
    except CommitFailedError:
        return False
    return True


def vacuum_now(path: str, retention_hours: int, storage_options: dict | None = None) -> None:
    """Delete the files replaced more than ``retention_hours`` ago (shorter than Delta's default allowed)."""
    open_table(path, storage_options).vacuum(retention_hours=retention_hours, enforce_retention_duration=False,
                                             dry_run=False)

# --- exactly once per batch, beside other writers (deltalake) --------------------------------------------
# The streaming app's driver-side writes (serving tables, quarantine/ops appends, the outbox) record
# Delta's app transaction (``app_id``, ``batch_id``) in their commit: a re-run batch whose commit did
# land is skipped. A commit that lost against another writer of the same table (nightly ``maintain``
# compacting it: OPTIMIZE removes the files a MERGE read) is re-read and re-applied, so the stream never
# stops over maintenance.
CONFLICT_RETRIES = 8
CONFLICT_BACKOFF_S = 0.2
conflict_retries = 0  # retries taken by this process (tests and logs)


def with_conflict_retry(what: str, write: Callable[[], None]) -> None:
    """Run ``write`` (which re-opens the table and checks its app transaction itself) again after a
    Delta commit conflict, up to ``CONFLICT_RETRIES`` times with a growing pause; other errors raise."""
    from deltalake.exceptions import CommitFailedError  # deferred: deltalake reads RUST_LOG on import

    def retrying(state: RetryCallState) -> None:
        global conflict_retries
        conflict_retries += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning("%s: commit conflict with another writer (%s); retrying (%d/%d)", what,
                    str(exc).splitlines()[0][:200], state.attempt_number, CONFLICT_RETRIES)

    # 0.2 s, 0.4 s, ... between the tries; the last conflict raises, other errors at once
    Retrying(stop=stop_after_attempt(CONFLICT_RETRIES + 1), wait=wait_incrementing(CONFLICT_BACKOFF_S, CONFLICT_BACKOFF_S),
             retry=retry_if_exception_type(CommitFailedError), before_sleep=retrying, reraise=True)(write)


def open_table(path: str, storage_options: dict | None = None) -> DeltaTable:
    """The table at its latest version (it must exist: the streaming app creates its tables at start)."""
    from deltalake import DeltaTable  # deferred: deltalake reads RUST_LOG on import

    return DeltaTable(path, storage_options=storage_options)


def _once(app_id: str, batch_id: int) -> Any:
    from deltalake import CommitProperties, Transaction  # deferred: deltalake reads RUST_LOG on import

    return CommitProperties(app_transactions=[Transaction(app_id, int(batch_id))])


def _applied(table: DeltaTable, app_id: str, batch_id: int) -> bool:
    version = table.transaction_version(app_id)
    return version is not None and version >= batch_id


def append_once(path: str, data: pa.Table, app_id: str, batch_id: int,
                storage_options: dict | None = None) -> bool:
    """Append ``data`` to the Delta table at ``path`` unless batch ``batch_id`` of ``app_id`` is
    already in it (the commit records the app transaction). Returns True when it appended."""
    from deltalake import write_deltalake  # deferred: deltalake reads RUST_LOG on import

    done = {"appended": False}

    def write() -> None:
        table = open_table(path, storage_options)
        if _applied(table, app_id, batch_id):
            return
        schema = pa.schema(table.schema().to_arrow())
        write_deltalake(path, data.select(schema.names).cast(schema), mode="append",
                        storage_options=storage_options, commit_properties=_once(app_id, batch_id))
        done["appended"] = True

    with_conflict_retry(f"append to {path}", write)
    return done["appended"]


def merge_once(path: str, source: pa.Table, keys: Sequence[str], updates: dict[str, str], app_id: str,
               batch_id: int, storage_options: dict | None = None, what: str | None = None) -> None:
    """MERGE ``source`` into the table at ``path`` on ``keys`` (target ``t``, source ``s``): matched rows
    take the ``updates`` expressions, new keys are inserted; skipped when batch ``batch_id`` of
    ``app_id`` is already in it. ``source``'s columns are cast to the table's types."""
    def write() -> None:
        table = open_table(path, storage_options)
        if _applied(table, app_id, batch_id):
            return
        target = pa.schema(table.schema().to_arrow())
        names = [f.name for f in target if f.name in source.column_names]
        data = source.select(names).cast(pa.schema([target.field(n) for n in names]))
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        (
            table.merge(data, predicate, source_alias="s", target_alias="t",
                        commit_properties=_once(app_id, batch_id))
            .when_matched_update(updates)
            .when_not_matched_insert_all()
            .execute()
        )

    with_conflict_retry(what or f"merge into {path}", write)


def overwrite_once(path: str, data: pa.Table, app_id: str, batch_id: int, storage_options: dict | None = None,
                   what: str | None = None) -> None:
    """Replace the table's rows with ``data`` (cast to its schema) unless batch ``batch_id`` of ``app_id``
    is already in it."""
    from deltalake import write_deltalake  # deferred: deltalake reads RUST_LOG on import

    def write() -> None:
        table = open_table(path, storage_options)
        if _applied(table, app_id, batch_id):
            return
        schema = pa.schema(table.schema().to_arrow())
        write_deltalake(path, data.select([f.name for f in schema]).cast(schema), mode="overwrite",
                        storage_options=storage_options, commit_properties=_once(app_id, batch_id))

    with_conflict_retry(what or f"overwrite {path}", write)



def add_actions(dt: DeltaTable) -> pa.Table:
    """The table's live files with their statistics (``path``, ``num_records``, ``min.<col>``,
    ``max.<col>``, ``partition.<col>``); an empty table (no files) gives zero rows, not a panic."""
    if not dt.file_uris():
        return _EMPTY_ADDS.empty_table()
    return pa.table(pa.record_batch(dt.get_add_actions(flatten=True)))


def row_count(dt: DeltaTable) -> int:
    """Rows in the table's current version, from the log's statistics where every file has them,
    else by reading one column."""
    adds = add_actions(dt)
    if adds.num_rows == 0:
        return 0
    counts = adds.column("num_records")
    if counts.null_count == 0:
        return int(sum(counts.to_pylist()))
    first = pa.schema(dt.schema().to_arrow()).names[0]
    return dt.to_pyarrow_table(columns=[first]).num_rows


def last_commit_ms(dt: DeltaTable) -> int | None:
    """Wall-clock time (ms since the epoch) of the table's latest commit."""
    history = dt.history(1)
    return history[0].get("timestamp") if history else None


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def exit_without_teardown(code: int) -> None:
    """End a command-line program whose work is done and flushed, skipping the interpreter's teardown:
    deltalake's (1.2.1) background runtime sometimes aborts it ("terminate called without an active
    exception", SIGABRT, exit 134) after a successful read or write, which turned a good run into a
    failed one (``make demo`` stopped on it). Keeps the exit code truthful."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- with Spark (delta-spark) -------------------------------------------------------------------------------
def create_spark_table(spark: SparkSession, path: str, schema: StructType, partition_by: Sequence[str] = (),
                       properties: dict[str, str] | None = None) -> None:
    """Create the table at ``path`` empty with ``schema`` and table ``properties`` unless it exists, through
    Spark (a table Spark writes first, e.g. a streaming sink, whose schema is the query's own: a
    streaming sink cannot set table properties when it creates its table). Of two concurrent creators
    one commits version 0; the other finds its table."""
    if spark_table_exists(spark, path):
        return
    try:
        append(spark.createDataFrame([], schema), path, partition_by=partition_by, properties=properties)
    except Exception:  # noqa: BLE001 — another creator committed version 0 first (a concurrent-update error)
        if not spark_table_exists(spark, path):
            raise


def append(df: DataFrame, path: str, *, app_id: str | None = None, version: int | None = None,
           partition_by: Sequence[str] = (), properties: dict[str, str] | None = None) -> None:
    """Append; with ``app_id``/``version`` the append happens at most once per (table, app_id, version).
    ``properties``: the table's properties should this append create it (an existing table keeps its own)."""
    writer = df.write.format("delta").mode("append")
    for key, value in (properties or {}).items():
        writer = writer.option(key, value)  # Delta applies "delta." options as properties of a new table only
    if app_id is not None and version is not None:
        writer = writer.option("txnAppId", app_id).option("txnVersion", int(version))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def replace_table(df: DataFrame, path: str, partition_by: Sequence[str] = ()) -> None:
    """Replace the Delta table at ``path`` with ``df`` (schema included; created if missing) in one
    commit: readers see the old or the new version, and time travel keeps the previous ones until VACUUM."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def spark_table_exists(spark: SparkSession, path: str) -> bool:
    """A Delta table at ``path`` (local or ``gs://``), as Spark sees it."""
    from delta.tables import DeltaTable as SparkDeltaTable  # deferred: no delta-spark in the dashboard image

    return SparkDeltaTable.isDeltaTable(spark, path)


def delete_where(spark: SparkSession, path: str, condition) -> None:
    from delta.tables import DeltaTable as SparkDeltaTable  # deferred: no delta-spark in the dashboard image

    SparkDeltaTable.forPath(spark, path).delete(condition)


OPTIMIZE_MIN_FILE_SIZE = "spark.databricks.delta.optimize.minFileSize"


def compact(spark: SparkSession, path: str, where: str | None = None, min_file_bytes: int | None = None) -> None:
    """Delta's OPTIMIZE (bin-packing) of the table at ``path``, or of the partitions the SQL predicate
    ``where`` selects; ``min_file_bytes``: pack only the files below this size (Delta's default: 1 GB),
    set in the session's conf for the call and restored after it — so no other thread may run an
    OPTIMIZE in the same session meanwhile (``maintain`` runs its tables one by one, in its own
    process). A concurrent writer's commit conflict is raised as Delta raises it (callers retry)."""
    from delta.tables import DeltaTable as SparkDeltaTable  # deferred: no delta-spark in the dashboard image

    def optimize() -> None:
        builder = SparkDeltaTable.forPath(spark, path).optimize()
        (builder.where(where) if where else builder).executeCompaction()

    if min_file_bytes is None:
        return optimize()
    before = spark.conf.get(OPTIMIZE_MIN_FILE_SIZE, None)
    spark.conf.set(OPTIMIZE_MIN_FILE_SIZE, str(min_file_bytes))
    try:
        optimize()
    finally:
        if before is None:
            spark.conf.unset(OPTIMIZE_MIN_FILE_SIZE)
        else:
            spark.conf.set(OPTIMIZE_MIN_FILE_SIZE, before)
