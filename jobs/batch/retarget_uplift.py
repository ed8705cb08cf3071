"""Batch job: mailed vs control uplift of the cart-recovery emails -> gold/retarget_uplift (overwrite).

Locally:    .venv/bin/python jobs/batch/retarget_uplift.py [--env local] [--window-days 7]   (make uplift)
Serverless: scripts/submit.sh batch retarget_uplift
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file (spark-submit / gcloud): make lib/ importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lib.config import ConfigError, load_config  # noqa: E402

TABLE = "gold/retarget_uplift"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Compute the cart-recovery uplift table.")
    p.add_argument("--env", help="config environment: local (default) or gcp, or a .yaml path")
    p.add_argument("--window-days", type=int, default=7, help="purchase window after the cart's expiry (default 7)")
    args = p.parse_args(argv)
    if not 1 <= args.window_days <= 90:
        p.error(f"--window-days must be between 1 and 90, got {args.window_days}")
    try:
        cfg = load_config(args.env)
        from lib.spark import build_session

        spark = build_session(cfg, app_name="shop-retarget-uplift")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from delta.tables import DeltaTable

    from lib import delta_io
    from lib.retarget.uplift import uplift_report
    from lib.schema import table_schema

    root = cfg.lake.root.rstrip("/")
    decisions_path, silver_path, out = f"{root}/retarget/decisions", f"{root}/silver/events", f"{root}/{TABLE}"
    missing = [name for path, name in ((decisions_path, "retarget/decisions"), (silver_path, "silver/events"))
               if not DeltaTable.isDeltaTable(spark, path)]
    if missing:  # a reporting job creates no source tables; nothing decided yet is not an error
        print(f"[uplift] nothing to compare yet: no {' and no '.join(missing)} in the lake {root} "
              f"(the streaming app writes them: make demo)")
        return 0
    delta_io.ensure_table(spark, out, table_schema(TABLE))
    report = uplift_report(spark.read.format("delta").load(decisions_path),
                           spark.read.format("delta").load(silver_path), window_days=args.window_days)
    report.select(*table_schema(TABLE).fieldNames()).write.format("delta").mode("overwrite") \
        .option("overwriteSchema", "true").save(out)
    rows = spark.read.format("delta").load(out).collect()
    for r in rows:
        print(f"[uplift] {r.arm}: {r.carts} carts, {r.converted_carts} converted, revenue {r.revenue_7d}")
    if not rows:
        print("[uplift] no decided carts yet: the table is empty")
    return 0


if __name__ == "__main__":
    sys.exit(main())
