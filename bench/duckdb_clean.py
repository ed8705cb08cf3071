"""The backfill's cleaning stage in DuckDB: a single-machine reference for the Spark backfill (issue #15).

The same event CSV, typed, judged by the same rule table (conf/quality_rules.yaml), split into valid
and quarantined rows, exact duplicates dropped, silver and quarantine written as Parquet.

    .venv/bin/python -m bench.duckdb_clean [--input var/data/generated/batch_1000000_152d.csv]
                                           [--rows 1000000 --days 152 --seed 42] [--threads 2]
                                           [--check-lake var/lake1m]

What it mirrors (lib/batch/backfill.py, lib/transforms/silver.py, lib/quality.py):

* CSV read as text: header skipped, nine contract fields plus one ``_extra`` field, fewer fields padded
  with NULL, surplus fields beyond ``_extra`` dropped (Spark's PERMISSIVE reader with
  ``CSV_READ_SCHEMA``); every raw field trimmed of spaces, blank = NULL (``_blank_to_null``);
* typing as ``parse_csv_rows`` / ``parse_events``: ``event_time`` = 'yyyy-MM-dd HH:mm:ss UTC' or ISO-8601 (UTC), ids as
  BIGINT (digits only, as Spark's ANSI ``try_cast``), price = round(double, 2);
* the columns a CSV row cannot have get what the backfill gives it: ``json_ok``, ``utf8_ok`` true, no
  ``unknown_fields``, ``kafka_timestamp`` = the load time, ``value_bytes`` = the length of the row's
  JSON object (``to_json`` of the non-NULL raw fields, without escapes) and ``parsable`` =
  ``value_bytes <= MAX_RECORD_BYTES`` (an unparsable row keeps no fields, as in Spark);
* every active rule's Spark SQL ``when`` translated into DuckDB SQL (:func:`translate_rule`: string
  literals unescaped, ``RLIKE`` -> ``regexp_matches`` with the Java regex made RE2, ``double(x)`` ->
  ``CAST(x AS DOUBLE)``, ``size`` -> ``len``); ``reasons`` = names of the broken rules, in table order;
* ``event_key`` = md5 over all typed event fields as text (``silver.event_key``: NULL -> U+0000,
  joined by U+0001); within the file the first occurrence wins (``drop_duplicates_within``).

Known differences (none on the generated files; tests/unit/test_duckdb_clean.py runs every other
hostile CSV kind of tests/hostile.py through both and compares reasons and keys): invalid UTF-8 makes
DuckDB's reader refuse the file where Spark reads U+FFFD; an unbalanced quote makes DuckDB read on
into the next line (RFC 4180 quoted line break) where Spark's line-based reader stops at the line end;
DuckDB's double cast reads '1_000' as 1000 where Java's parser refuses it (and Java's accepts spellings
DuckDB's refuses, such as a trailing 'd');
``value_bytes`` ignores JSON escapes (only matters at the 64 KiB edge). Output: silver as Parquet
partitioned by ``event_date`` (the lake's layout), quarantine as one Parquet file. The backfill also
writes bronze, the gold sales tables and ops; this reference does not.

Timed twice (cold: first run of the process; warm: the second, same input, fresh connection); the
figure is the warm run. ``--check-lake`` compares the result with a lake the Spark backfill wrote from
the same file (its ``ops/quality_batches`` counts per rule and silver's ``event_key`` set). Progress on
stderr; the LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow.compute as pc

from lib.delta_io import exit_without_teardown, open_table
from lib.quality import load_rules
from lib.schema import CSV_COLUMNS
from tools.duckdb_sql import (  # the translation: tools/duckdb_sql.py (shared with tests/unit/test_duckdb_clean.py)
    TranslationError,
    _path_literal,
    _q,
    duck_literal,
    event_key_sql,
    judge_sql,
    read_csv_sql,
    reasons_sql,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = ROOT / "var" / "data" / "generated" / "batch_1000000_152d.csv"
INT_FIELDS = ("product_id", "category_id", "user_id")


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """``--input`` (the 1M CSV by default) and how to generate it when missing: see :func:`ensure_input`."""
    p.add_argument("--input", type=Path, default=DEFAULT_INPUT, help=f"event CSV (default {DEFAULT_INPUT.relative_to(ROOT)}; "
                   "generated with --rows/--days/--seed when missing)")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows to generate when --input is missing (1000000)")
    p.add_argument("--days", type=float, default=152, help="days to generate over when --input is missing (152)")
    p.add_argument("--seed", type=int, default=42)


def ensure_input(path: Path, rows: int, days: float, seed: int) -> Path:
    """``path`` (relative to the working directory), generated first when missing."""
    path = path if path.is_absolute() else Path.cwd() / path
    if not path.exists():
        log(f"{path} missing: generating {rows} rows over {days:g} days (seed {seed})")
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "tools.generate", "--rows", str(rows), "--days", str(days),  # noqa: S603 — this interpreter, own module, no shell
                        "--seed", str(seed), "--out", str(path), "--quiet"], cwd=ROOT, check=True)
    return path


def log(msg: str) -> None:
    print(f"[duckdb-clean] {msg}", file=sys.stderr, flush=True)


def file_fingerprint(path: Path) -> str:
    """``lib.batch.backfill.file_fingerprint`` (not imported: that module imports Spark)."""
    st = path.stat()
    return hashlib.sha1(f"{path.name}:{st.st_size}:{int(st.st_mtime)}".encode(), usedforsecurity=False).hexdigest()[:12]


def clean(path: Path, out: Path, rules, threads: int, load_time: datetime | None = None,
          memory_limit: str | None = None) -> dict:
    """One cleaning run in a fresh in-memory DuckDB: ``out``/silver/event_date=…/*.parquet and
    ``out``/quarantine.parquet.
    Returns the counts and the wall time of each step."""
    load_time = load_time or datetime.now(timezone.utc)
    fingerprint = file_fingerprint(path)
    topic = f"backfill:{path.name}:{fingerprint}"
    load_id = f"duckdb-{fingerprint}:0"
    load_ts = load_time.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    out.mkdir(parents=True, exist_ok=True)
    silver_dir, quarantine_file = out / "silver", out / "quarantine.parquet"
    shutil.rmtree(silver_dir, ignore_errors=True)
    origin = (f"{duck_literal(topic)} AS topic, 0::INTEGER AS partition, pos AS \"offset\", "
              f"TIMESTAMPTZ '{load_ts}' AS kafka_timestamp")
    laps: dict[str, float] = {}
    t0 = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        laps[name] = round(now - t, 3)
        t = now

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            con.execute(f"SET memory_limit = {duck_literal(memory_limit)}")
        con.execute("CREATE TEMP TABLE judged AS " + judge_sql(read_csv_sql(path), rules, load_time))
        lap("read_type_judge")
        fields = ", ".join("event_time::TIMESTAMPTZ AS event_time" if c == "event_time" else _q(c) for c in CSV_COLUMNS)
        # duplicates: the first occurrence (lowest position) of each event key wins; silver is laid out
        # as the lake's silver/events (Hive partitions by event_date)
        silver_n = con.execute(f"""
            COPY (
              WITH valid AS MATERIALIZED (SELECT *, {event_key_sql()} AS event_key FROM judged WHERE len(reasons) = 0),
                   firsts AS (SELECT min(pos) AS pos FROM valid GROUP BY event_key)
              SELECT {fields}, CAST(event_time AS DATE) AS event_date, event_key, {origin},
                     TIMESTAMPTZ '{load_ts}' AS ingest_time, {duck_literal(load_id)} AS load_id
              FROM valid SEMI JOIN firsts USING (pos)
            ) TO {_path_literal(silver_dir)} (FORMAT parquet, PARTITION_BY (event_date))""").fetchone()[0]  # noqa: S608 — own columns, quoted path
        lap("dedupe_write_silver")
        quarantined_n = con.execute(f"""
            COPY (
              SELECT q_key AS key, q_value AS value, {origin}, reasons, {duck_literal(load_id)} AS load_id,
                     TIMESTAMPTZ '{load_ts}' AS quarantined_at
              FROM judged WHERE len(reasons) > 0 ORDER BY pos
            ) TO {_path_literal(quarantine_file)} (FORMAT parquet)""").fetchone()[0]  # noqa: S608 — own columns, quoted path
        lap("write_quarantine")
        read_n, valid_n = con.execute("SELECT count(*), count(*) FILTER (len(reasons) = 0) FROM judged").fetchone()
        by_rule = dict(con.execute("SELECT r, count(*) FROM (SELECT unnest(reasons) AS r FROM judged) "
                                   "GROUP BY r ORDER BY r").fetchall())
        lap("counts")
    finally:
        con.close()
    return {"seconds": round(time.perf_counter() - t0, 3), "steps": laps, "read": read_n, "valid": valid_n,
            "silver": silver_n, "quarantined": quarantined_n, "duplicates": valid_n - silver_n,
            "quarantined_by_rule": by_rule, "topic": topic, "silver_dir": str(silver_dir),
            "quarantine_file": str(quarantine_file)}


def check_lake(lake: Path, result: dict, fingerprint: str) -> dict:
    """Compare with what the Spark backfill wrote from the same file into ``lake``: the counts of its
    ``ops/quality_batches`` row and silver's ``event_key`` set of that file."""
    ops = open_table(str(lake / "ops" / "quality_batches")).to_pyarrow_table().to_pylist()
    mine = [r for r in ops if r["load_id"] == f"backfill-{fingerprint}:0"]
    if not mine:
        return {"lake": str(lake), "error": f"no backfill of this file (load_id backfill-{fingerprint}:0) in ops/quality_batches"}
    spark_row = mine[0]
    spark_rules = dict(spark_row["quarantined_by_rule"])
    silver = open_table(str(lake / "silver" / "events")).to_pyarrow_table(columns=["event_key", "topic"])
    keys = silver.filter(pc.equal(silver["topic"], result["topic"])).select(["event_key"])
    con = duckdb.connect()
    try:
        con.register("spark_keys", keys)
        only_duckdb, only_spark = con.execute(f"""
            WITH d AS (SELECT event_key FROM read_parquet({_path_literal(Path(result['silver_dir']) / '**' / '*.parquet')}))
            SELECT (SELECT count(*) FROM (SELECT event_key FROM d EXCEPT SELECT event_key FROM spark_keys)),
                   (SELECT count(*) FROM (SELECT event_key FROM spark_keys EXCEPT SELECT event_key FROM d))""").fetchone()  # noqa: S608 — quoted path
    finally:
        con.close()
    spark_counts = {k: spark_row[k] for k in ("read", "quarantined", "duplicates")} | {"silver": spark_row["valid"]}
    duck_counts = {k: result[k] for k in ("read", "silver", "quarantined", "duplicates")}
    return {"lake": str(lake), "spark": spark_counts, "counts_equal": spark_counts == duck_counts,
            "rules_equal": spark_rules == result["quarantined_by_rule"],
            "rule_differences": {r: [spark_rules.get(r, 0), result["quarantined_by_rule"].get(r, 0)]
                                 for r in sorted(set(spark_rules) | set(result["quarantined_by_rule"]))
                                 if spark_rules.get(r, 0) != result["quarantined_by_rule"].get(r, 0)},
            "silver_keys_spark": keys.num_rows, "silver_keys_only_duckdb": only_duckdb,
            "silver_keys_only_spark": only_spark}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_input_arguments(p)
    p.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "duckdb_clean", help="Parquet output folder")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="DuckDB threads (default: the cores)")
    p.add_argument("--memory-limit", help="DuckDB memory_limit (default: DuckDB's, 80%% of RAM)")
    p.add_argument("--runs", type=int, default=2, help="cleaning runs; the last one is reported as warm (2)")
    p.add_argument("--check-lake", type=Path, help="lake the Spark backfill wrote from the same file (e.g. var/lake1m)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")

    rules = load_rules()
    try:
        reasons_sql(rules)
    except TranslationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = ensure_input(args.input, args.rows, args.days, args.seed)
    runs = []
    for i in range(args.runs):
        r = clean(path, args.out, rules, args.threads, memory_limit=args.memory_limit)
        runs.append(r)
        log(f"run {i + 1}/{args.runs}: {r['seconds']:.2f} s {r['steps']} — read {r['read']:,} = silver {r['silver']:,} "
            f"+ quarantined {r['quarantined']:,} + duplicates {r['duplicates']:,}")
    warm, first = runs[-1], runs[0]
    out = {
        "bench": "duckdb_clean",
        "input": str(path),
        "rows": warm["read"],
        "duckdb_clean_s": warm["seconds"],
        "duckdb_clean_first_s": first["seconds"],
        "rows_per_s": round(warm["read"] / warm["seconds"]),
        "steps_s": warm["steps"],
        "silver": warm["silver"],
        "quarantined": warm["quarantined"],
        "duplicates": warm["duplicates"],
        "quarantined_by_rule": warm["quarantined_by_rule"],
        "accounted": warm["read"] == warm["silver"] + warm["quarantined"] + warm["duplicates"],
        "rules": len(rules.active),
        "threads": args.threads,
        "cores": os.cpu_count(),
        "duckdb": duckdb.__version__,
    }
    if args.check_lake:
        log(f"comparing with the Spark backfill in {args.check_lake}")
        out["lake_check"] = check_lake(args.check_lake, warm, file_fingerprint(path))
    print(json.dumps(out))
    check = out.get("lake_check")
    check_ok = check is None or (check.get("counts_equal") and check.get("rules_equal")
                                 and check.get("silver_keys_only_duckdb") == 0 and check.get("silver_keys_only_spark") == 0)
    return 0 if out["accounted"] and check_ok else 1


if __name__ == "__main__":
    exit_without_teardown(main())  # --check-lake reads the lake with deltalake, whose teardown may abort
