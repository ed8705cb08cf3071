"""What is in the lake, without Spark: row counts and last update of each Delta table.

    python -m jobs.ops.status [--env local] [--json] [--records bronze|cleaned] [--carts]      (make status)

Every table under the lake root is listed (bronze, silver, quarantine, gold, ops, retarget, features,
…), then one line that accounts for the records: bronze = silver + quarantine + removed duplicates
(the duplicates are counted by the lakehouse in ``ops/quality_batches``). Empty tables, tables whose
first commit is still being written, and a lake that does not exist yet are normal states, not
errors; a table whose log cannot be read is shown with a one-line reason and makes the exit code 1.
The logic is in lib/status.py. ``--carts`` prints cart recovery's progress as three numbers (what
``make demo`` waits on): the sessions query's watermark (epoch seconds, 0 before its first), expired
carts without a decision yet, emails sent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.config import ConfigError, load_config  # noqa: E402
from lib.delta_io import TableUnreadable, exit_without_teardown, one_line, quiet_rust_log  # noqa: E402
from lib.retarget import outbox  # noqa: E402
from lib.retarget.store import RetargetStore  # noqa: E402
from lib.status import accounting, lake_tables, records, render, table_stats  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    # deltalake's Rust side logs warnings of its own (thousands for one damaged log): errors only
    quiet_rust_log()
    p = argparse.ArgumentParser(prog="python -m jobs.ops.status", description=__doc__.split("\n")[0])
    p.add_argument("--env")
    p.add_argument("--json", action="store_true")
    p.add_argument("--records", choices=("bronze", "cleaned"),
                   help="print only a record count: rows in bronze, or records the lakehouse has accounted for")
    p.add_argument("--carts", action="store_true",
                   help="print cart recovery's progress: sessions watermark (epoch s), carts awaiting a decision, emails sent")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.env)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    root = cfg.lake.root
    if "://" in root:
        print(f"status: the lake at {root} is remote; query it with make sql, Spark SQL or BigQuery", file=sys.stderr)
        return 2
    try:
        if args.records:
            print(records(root, args.records))
            return 0
        if args.carts:
            cart = outbox.progress(RetargetStore(root))
            print(int(cart.watermark.timestamp()) if cart.watermark else 0, cart.awaiting_decision, cart.sent)
            return 0
        stats = [table_stats(t) for t in lake_tables(root)]
        acct = accounting(root, stats)
    except (TableUnreadable, OSError) as exc:
        print(f"status: {one_line(exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"lake": root, "tables": stats, "records": acct}))
    else:
        print(render(root, stats, acct))
    bad = [s for s in stats if s["state"] == "unreadable"]
    if bad:
        print(f"status: {len(bad)} table(s) cannot be read: {', '.join(s['table'] for s in bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    exit_without_teardown(main())
