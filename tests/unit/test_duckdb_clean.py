"""The DuckDB reference of the backfill's cleaning (tools/duckdb_sql.py, run by bench/duckdb_clean.py): the rule table's Spark SQL
translated into DuckDB, and the same verdicts and event keys as the Spark backfill on hostile CSV rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from lib.quality import Rule, RuleSet, load_rules
from lib.schema import CSV_COLUMNS
from tests.hostile import csv_block, csv_line, good_row
from tools.duckdb_sql import (
    TranslationError,
    event_key_sql,
    judge_sql,
    read_csv_sql,
    spark_unescape,
    translate_rule,
)


def _eval(sql: str, **cols):
    """Evaluate a DuckDB expression over one row of named values."""
    con = duckdb.connect()
    names = list(cols)
    select = ", ".join(f"${i + 1} AS {n}" for i, n in enumerate(names)) or "1 AS dummy"
    return con.execute(f"SELECT {sql} FROM (SELECT {select})", [cols[n] for n in names]).fetchone()[0]  # noqa: S608 — test expressions


def test_spark_string_literals_are_unescaped_as_spark_reads_them():
    assert spark_unescape(r"a\\x00\u200B\'\t") == "a\\x00\u200b'\t"


@pytest.mark.parametrize(("when", "duck"), [
    ("NOT event_time_raw RLIKE '(Z| UTC)$'", "NOT (regexp_matches(event_time_raw, '(Z| UTC)$'))"),
    ("a NOT RLIKE \"x\\\\d\"", "(NOT regexp_matches(a, 'x\\d'))"),
    ("concat_ws('', a, b) RLIKE '[\\\\x00\\\\u200B-\\\\u200F]'",
     "(regexp_matches(concat_ws('', a, b), '[\\x00\\x{200B}-\\x{200F}]'))"),
    ("abs(price) = double('Infinity')", "abs(price) = CAST('Infinity' AS DOUBLE)"),
    ("size(unknown_fields) > 0", "len(unknown_fields) > 0"),
    ("b LIKE 'a\\\\_%'", "(b LIKE 'a\\_%' ESCAPE '\\')"),
    ("`odd name` = \"it's\"", "\"odd name\" = 'it''s'"),
])
def test_translation(when, duck):
    assert translate_rule(when) == duck


@pytest.mark.parametrize("when", ["a RLIKE '(?=x)'", "a RLIKE '(a)\\\\1'", "(a = 1", "a RLIKE", "a ? b"])
def test_what_cannot_be_carried_over_is_refused(when):
    with pytest.raises(TranslationError):
        translate_rule(when)


@pytest.mark.parametrize(("value", "broken"), [
    ("ab\u200bc", True), ("a\x00b", True), ("a\x1bb", True), ("evil\u202egpj", True), ("plain text", False), ("é ü", False),
])
def test_the_unsafe_characters_regex_means_the_same_in_re2(value, broken):
    rule = next(r for r in load_rules().active if r.name == "unsafe_characters")
    assert _eval(translate_rule(rule.when), event_type_raw="view", category_code=None, brand=value,
                 user_session="s") is broken


def _judge(tmp_path, lines: list[bytes], rules, now):
    path = tmp_path / "events.csv"
    path.write_bytes((",".join(CSV_COLUMNS) + "\n").encode() + b"\n".join(lines) + b"\n")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    sql = judge_sql(read_csv_sql(path), rules, now)
    return con.execute(f"SELECT reasons, CASE WHEN len(reasons) = 0 THEN {event_key_sql()} END FROM ({sql}) "  # noqa: S608 — own SQL
                       "ORDER BY pos").fetchall(), path


def test_every_rule_of_the_table_runs_in_duckdb(tmp_path):
    now = datetime.now(timezone.utc)
    good = good_row(now)
    rows = [
        good,
        {**good, "price": "0.00"},
        {**good, "product_id": "5.5", "user_session": ""},      # DuckDB's own cast would round 5.5 to 6
        {**good, "event_time": (now - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S")},
        {**good, "event_type": "  "},
    ]
    got, _ = _judge(tmp_path, [csv_line(r) for r in rows], load_rules(), now)
    assert [r[0] for r in got] == [[], ["non_positive_price"], ["bad_product_id", "missing_user_session"],
                                   ["ambiguous_event_time"], ["unknown_event_type"]]
    # a rule is counted broken only when TRUE (NULL is not broken), in table order
    rules = RuleSet(rules=(Rule(name="b", description="", when="brand RLIKE 'x'"),
                           Rule(name="a", description="", when="price > 1")))
    got, _ = _judge(tmp_path, [csv_line({**good, "brand": "x"}), csv_line({**good, "brand": ""})], rules, now)
    assert [r[0] for r in got] == [["b", "a"], ["a"]]


def test_same_verdicts_and_keys_as_the_spark_backfill(spark, tmp_path):
    """Every hostile CSV kind of tests/hostile.py (with valid neighbours) through the backfill's own
    reader and typing (lib.batch.backfill.read_csv / csv_rows, lib.transforms.silver.parse_csv_rows)
    and the rule table, and through DuckDB: the same reasons per row and the same event key per valid
    row. Left out, as documented in bench/duckdb_clean.py: invalid UTF-8 (DuckDB refuses the file) and
    an unbalanced quote (DuckDB reads on into the next line)."""
    from pyspark.sql import functions as F

    from lib.batch.backfill import csv_rows, read_csv
    from lib.quality import with_reasons
    from lib.transforms.silver import event_key, parse_csv_rows

    now = datetime.now(timezone.utc).replace(microsecond=0)
    kinds, lines = csv_block(now)
    skip = {"invalid_utf8", "binary_garbage", "csv_unbalanced_quote"}
    kept = [line for j, k in enumerate(kinds) if k.name not in skip for line in lines[3 * j:3 * j + 3]]
    rules = load_rules()
    duck, path = _judge(tmp_path, kept, rules, now)
    judged = with_reasons(parse_csv_rows(csv_rows(read_csv(spark, path), "t", now)), rules)
    spark_rows = [(list(r["reasons"]), r["k"]) for r in judged.select(
        "offset", "reasons", F.when(F.size("reasons") == 0, event_key()).alias("k")).orderBy("offset").collect()]
    assert len(spark_rows) == len(kept) == 3 * (len(kinds) - len(skip))
    assert [(list(r), k) for r, k in duck] == spark_rows
