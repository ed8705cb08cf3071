"""What is in the lake, without Spark: row counts and last update of each Delta table.

    python -m lib.status [--env local] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from lib.config import ConfigError, load_config

LAYERS = ("bronze", "silver", "quarantine", "gold", "ops")


def table_stats(path: Path) -> dict:
    from deltalake import DeltaTable

    dt = DeltaTable(str(path))
    import pyarrow as pa

    adds = pa.record_batch(dt.get_add_actions(flatten=True))
    rows = sum(n or 0 for n in adds.column("num_records").to_pylist()) if adds.num_rows else 0
    last = dt.history(1)[0].get("timestamp")
    return {"table": f"{path.parent.name}/{path.name}", "rows": rows, "version": dt.version(),
            "updated": datetime.fromtimestamp(last / 1000, tz=timezone.utc).isoformat(timespec="seconds") if last else None,
            "path": str(path)}


def lake_tables(root: str) -> list[Path]:
    base = Path(root)
    return [t for layer in LAYERS for t in sorted((base / layer).glob("*")) if (t / "_delta_log").is_dir()]


def records(root: str, what: str) -> int:
    """``bronze``: rows in bronze/events; ``cleaned``: records the lakehouse query has accounted for
    (the sum of ``read`` in ops/quality_batches = silver + quarantine + duplicates)."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    base = Path(root)
    if what == "bronze":
        path = base / "bronze" / "events"
        return DeltaTable(str(path)).to_pyarrow_table(columns=["offset"]).num_rows if (path / "_delta_log").is_dir() else 0
    path = base / "ops" / "quality_batches"
    if not (path / "_delta_log").is_dir():
        return 0
    return int(pc.sum(DeltaTable(str(path)).to_pyarrow_table(columns=["read"]).column("read")).as_py() or 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lib.status", description=__doc__.split("\n")[0])
    p.add_argument("--env")
    p.add_argument("--json", action="store_true")
    p.add_argument("--records", choices=("bronze", "cleaned"),
                   help="print only a record count: rows in bronze, or records the lakehouse has accounted for")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.env)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if "://" in cfg.lake.root:
        print(f"error: lake at {cfg.lake.root} is remote; query it with Spark SQL or BigQuery", file=sys.stderr)
        return 2
    if args.records:
        print(records(cfg.lake.root, args.records))
        return 0
    stats = [table_stats(t) for t in lake_tables(cfg.lake.root)]
    if args.json:
        print(json.dumps(stats))
    elif not stats:
        print(f"no Delta tables under {cfg.lake.root} yet")
    else:
        width = max(len(s["table"]) for s in stats)
        for s in stats:
            print(f"  {s['table']:<{width}}  {s['rows']:>10,} rows  v{s['version']:<5} {s['updated']}  {s['path']}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # deltalake's background runtime can abort the interpreter at teardown ("terminate called
    # without an active exception") after the work is done; leave without tearing down.
    os._exit(code)
