"""Reading a Delta table's log without Spark (``deltalake``): open, live files with statistics, row counts.

Every reader of table *statistics* (``make status``, the dashboard's file skipping, the demo's
progress counts) goes through here, because ``deltalake`` has sharp edges at exactly the moments a
new user meets first:

* a table with no data files yet (created empty, or every file removed): ``get_add_actions`` panics
  in Rust (``index out of bounds``) and raises ``pyo3_runtime.PanicException``, which derives from
  ``BaseException`` — an ``except Exception`` does not catch it;
* a table being created: ``_delta_log/`` exists but holds no commit yet (``TableNotFoundError``);
* no table at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

# The columns of an empty add-actions table (what deltalake gives for a table with files, minus the
# per-column statistics, which depend on the schema).
_EMPTY_ADDS = pa.schema([("path", pa.string()), ("size_bytes", pa.int64()),
                         ("modification_time", pa.timestamp("ms")), ("num_records", pa.int64())])


class TableUnreadable(RuntimeError):
    """The table's log cannot be read; ``str(err)`` is one line naming the table and the cause."""


def is_delta_table(path: str | Path) -> bool:
    """A local path that holds a Delta log folder (the table may still be being created)."""
    return (Path(path) / "_delta_log").is_dir()


def open_table(path: str, storage_options: dict | None = None) -> Any | None:
    """The table at its latest version, or None when there is no table (or its first commit is not
    written yet). Other failures raise :class:`TableUnreadable` with a one-line reason."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(str(path), storage_options=storage_options)
    except TableNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - a corrupt/half-written log: one line for the caller
        raise TableUnreadable(f"{path}: {one_line(exc)}") from exc


def add_actions(dt: Any) -> pa.Table:
    """The table's live files with their statistics (``path``, ``num_records``, ``min.<col>``,
    ``max.<col>``, ``partition.<col>``); an empty table (no files) gives zero rows, not a panic."""
    if not dt.file_uris():
        return _EMPTY_ADDS.empty_table()
    return pa.table(pa.record_batch(dt.get_add_actions(flatten=True)))


def row_count(dt: Any) -> int:
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


def last_commit_ms(dt: Any) -> int | None:
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
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
