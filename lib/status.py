"""What is in the lake, without Spark: row counts and last update of each Delta table.

The command line is ``jobs/ops/status.py`` (``make status``).

Every table under the lake root is listed (bronze, silver, quarantine, gold, ops, retarget, features,
…), then one line that accounts for the records: bronze = silver + quarantine + removed duplicates
(the duplicates are counted by the lakehouse in ``ops/quality_batches``). Empty tables, tables whose
first commit is still being written, and a lake that does not exist yet are normal states, not
errors; a table whose log cannot be read is shown with a one-line reason and makes the exit code 1.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow.compute as pc

from lib.delta_io import (
    TableUnreadable,
    add_actions,
    is_delta_table,
    last_commit_ms,
    one_line,
    open_table_or_none,
    row_count,
)

LAYERS = ("bronze", "silver", "quarantine", "gold", "ops", "retarget", "features")


def table_stats(path: Path) -> dict:
    """``table, rows, version, updated, path`` and ``state`` (``ok`` | ``creating`` | ``unreadable``,
    with ``error`` then)."""
    out = {"table": f"{path.parent.name}/{path.name}", "rows": None, "version": None, "updated": None,
           "path": str(path), "state": "ok"}
    try:
        dt = open_table_or_none(str(path))
        if dt is None:
            return {**out, "state": "creating"}
        last = last_commit_ms(dt)
        return {**out, "rows": row_count(dt), "version": dt.version(),
                "updated": datetime.fromtimestamp(last / 1000, tz=timezone.utc).isoformat(timespec="seconds")
                if last else None}
    except (TableUnreadable, OSError) as exc:
        return {**out, "state": "unreadable", "error": one_line(exc)}
    except Exception as exc:  # noqa: BLE001 - deltalake raises its own types for a damaged log
        return {**out, "state": "unreadable", "error": one_line(exc)}


def lake_tables(root: str) -> list[Path]:
    """Every Delta table ``<root>/<layer>/<name>``: the known layers first, then any other folder."""
    base = Path(root)
    if not base.is_dir():
        return []
    others = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in LAYERS)
    return [t for layer in (*LAYERS, *others) for t in sorted((base / layer).glob("*")) if is_delta_table(t)]


def _column_sum(path: Path, column: str) -> int:
    dt = open_table_or_none(str(path))
    if dt is None or not add_actions(dt).num_rows:
        return 0
    return int(pc.sum(dt.to_pyarrow_table(columns=[column]).column(column)).as_py() or 0)


def records(root: str, what: str) -> int:
    """``bronze``: rows in bronze/events; ``cleaned``: records the lakehouse query has accounted for
    (the sum of ``read`` in ops/quality_batches = silver + quarantine + duplicates)."""
    base = Path(root)
    if what == "bronze":
        dt = open_table_or_none(str(base / "bronze" / "events")) if is_delta_table(base / "bronze" / "events") else None
        return 0 if dt is None else row_count(dt)
    path = base / "ops" / "quality_batches"
    return _column_sum(path, "read") if is_delta_table(path) else 0


def accounting(root: str, stats: list[dict]) -> dict | None:
    """bronze vs silver + quarantine + duplicates, or None when there is no bronze table."""
    rows = {s["table"]: s["rows"] for s in stats}
    if rows.get("bronze/events") is None:
        return None
    path = Path(root) / "ops" / "quality_batches"
    duplicates = _column_sum(path, "duplicates") if is_delta_table(path) else 0
    out = {"bronze": rows["bronze/events"], "silver": rows.get("silver/events") or 0,
           "quarantined": rows.get("quarantine/events") or 0, "duplicates": duplicates}
    out["pending"] = out["bronze"] - out["silver"] - out["quarantined"] - out["duplicates"]
    return out


def render(root: str, stats: list[dict], acct: dict | None) -> str:
    if not stats:
        return f"no Delta tables under {root} yet (make demo, or make batch, fills the lake)"
    width = max(len(s["table"]) for s in stats)
    lines = []
    for s in stats:
        if s["state"] == "ok":
            lines.append(f"  {s['table']:<{width}}  {s['rows']:>10,} rows  v{s['version']:<5} {s['updated']}  {s['path']}")
        elif s["state"] == "creating":
            lines.append(f"  {s['table']:<{width}}  {'':>10}  being created (no commit yet)  {s['path']}")
        else:
            lines.append(f"  {s['table']:<{width}}  unreadable: {s['error']}")
    if acct is not None:
        line = (f"  records: bronze {acct['bronze']:,} = silver {acct['silver']:,} + quarantine "
                f"{acct['quarantined']:,} + duplicates removed {acct['duplicates']:,}")
        if acct["pending"]:
            line += f" + not yet cleaned {acct['pending']:,}"
        lines.append(line)
    return "\n".join(lines)
