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
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lib.limits import MAX_RECORD_BYTES, QUARANTINE_KEY_BYTES, QUARANTINE_VALUE_BYTES
from lib.schema import CSV_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INPUT = ROOT / "var" / "data" / "generated" / "batch_1000000_152d.csv"
EXTRA = "_extra"  # lib.transforms.silver.EXTRA (not imported: that module imports Spark)
INT_FIELDS = ("product_id", "category_id", "user_id")


def log(msg: str) -> None:
    print(f"[duckdb-clean] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Spark SQL rule expression -> DuckDB SQL
# --------------------------------------------------------------------------------------------
class TranslationError(ValueError):
    """A rule expression this translator cannot carry over to DuckDB."""


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<bq>`(?:[^`]|``)*`)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op><=>|<>|!=|==|<=|>=|\|\||[-+*/%<>=(),.~&|^\[\]:])
""", re.VERBOSE | re.DOTALL)

# Spark's cast functions: double(x) -> CAST(x AS DOUBLE)
_CAST_FUNCTIONS = {"double": "DOUBLE", "float": "FLOAT", "int": "INTEGER", "bigint": "BIGINT",
                   "smallint": "SMALLINT", "tinyint": "TINYINT", "string": "VARCHAR", "boolean": "BOOLEAN",
                   "date": "DATE", "timestamp": "TIMESTAMP"}
# same meaning, other name
_RENAMED_FUNCTIONS = {"size": "len", "cardinality": "len", "nvl": "coalesce", "ifnull": "coalesce",
                      "char_length": "length", "character_length": "length", "lcase": "lower", "ucase": "upper"}
# what ends an operand of RLIKE / LIKE (Spark: a predicate's operands are value expressions)
_BOUNDARY_WORDS = {"AND", "OR", "NOT", "IS", "IN", "BETWEEN", "LIKE", "ILIKE", "RLIKE", "REGEXP",
                   "CASE", "WHEN", "THEN", "ELSE", "END"}
_BOUNDARY_OPS = {"=", "==", "<", ">", "<=", ">=", "!=", "<>", "<=>", ","}
_SPARK_ESCAPES = {"0": "\0", "'": "'", '"': '"', "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a",
                  "\\": "\\", "%": "\\%", "_": "\\_"}


def spark_unescape(body: str) -> str:
    """The value of a Spark SQL string literal's body (between the quotes), as Spark's
    ``unescapeSQLString`` reads it (``spark.sql.parser.escapedStringLiterals`` false)."""
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 == len(body):
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif re.fullmatch(r"[0-3][0-7][0-7]", body[i + 1:i + 4]):
            out.append(chr(int(body[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(_SPARK_ESCAPES.get(nxt, nxt))
            i += 2
    return "".join(out)


def duck_literal(value: str) -> str:
    """A DuckDB SQL expression for the string ``value`` (no escapes in DuckDB literals: quotes doubled,
    control characters as ``chr(n)``)."""
    parts, buf = [], []
    for ch in value:
        if ord(ch) < 32 or ord(ch) == 127:
            if buf:
                parts.append("'" + "".join(buf).replace("'", "''") + "'")
                buf = []
            parts.append(f"chr({ord(ch)})")
        else:
            buf.append(ch)
    if buf or not parts:
        parts.append("'" + "".join(buf).replace("'", "''") + "'")
    return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"


def java_regex_to_re2(pattern: str) -> str:
    """A Java regex (Spark's RLIKE) as RE2 (DuckDB's regexp_matches): ``\\uXXXX`` -> ``\\x{XXXX}``;
    constructs RE2 does not have (look-around, back-references, possessive quantifiers) are refused."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", pattern[i + 2:i + 6]):
                out.append("\\x{" + pattern[i + 2:i + 6] + "}")
                i += 6
                continue
            if nxt.isdigit() and nxt != "0":
                raise TranslationError(f"regex {pattern!r}: back-references are not supported by RE2")
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            raise TranslationError(f"regex {pattern!r}: look-around is not supported by RE2")
        if c in "+*?}" and pattern[i + 1:i + 2] == "+":
            raise TranslationError(f"regex {pattern!r}: possessive quantifiers are not supported by RE2")
        out.append(c)
        i += 1
    return "".join(out)


@dataclass
class _Tok:
    kind: str  # ws str ident num op sql (already DuckDB text)
    text: str  # source text (str: the unescaped value)


@dataclass
class _Group:  # ( items )
    items: list


def _tokens(expr: str) -> list[_Tok]:
    toks, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise TranslationError(f"cannot read {expr[pos:pos + 20]!r}")
        kind = m.lastgroup
        text = m.group()
        if kind == "str":
            toks.append(_Tok("str", spark_unescape(text[1:-1])))
        elif kind == "bq":
            toks.append(_Tok("sql", '"' + text[1:-1].replace("``", "`").replace('"', '""') + '"'))
        elif kind != "ws":
            toks.append(_Tok(kind, text))
        pos = m.end()
    return toks


def _nest(toks: list[_Tok]) -> list:
    stack: list[list] = [[]]
    for t in toks:
        if t.kind == "op" and t.text == "(":
            stack.append([])
        elif t.kind == "op" and t.text == ")":
            if len(stack) == 1:
                raise TranslationError("unbalanced ')'")
            inner = stack.pop()
            stack[-1].append(_Group(inner))
        else:
            stack[-1].append(t)
    if len(stack) != 1:
        raise TranslationError("unbalanced '('")
    return stack[0]


def _is_word(item, *words: str) -> bool:
    return isinstance(item, _Tok) and item.kind == "ident" and item.text.upper() in words


def _is_boundary(item) -> bool:
    if isinstance(item, _Tok):
        return (item.kind == "ident" and item.text.upper() in _BOUNDARY_WORDS) or \
            (item.kind == "op" and item.text in _BOUNDARY_OPS)
    return False


def _render(items: list) -> str:
    out = ""
    prev = None
    for it in items:
        if isinstance(it, _Group):
            text = "(" + _render(it.items) + ")"
        elif it.kind == "str":
            text = duck_literal(it.text)
        else:
            text = it.text
        # a call keeps its parenthesis, a comma its left neighbour
        glued = (isinstance(it, _Group) and isinstance(prev, _Tok) and prev.kind == "ident"
                 and not _is_boundary(prev)) or (isinstance(it, _Tok) and it.text == ",")
        out += text if (glued or not out) else " " + text
        prev = it
    return out


def _translate(items: list) -> list:
    # groups first (function arguments, parenthesised sub-expressions)
    items = [_Group(_translate(it.items)) if isinstance(it, _Group) else it for it in items]
    out: list = []
    i = 0
    while i < len(items):
        it = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        if isinstance(it, _Tok) and it.kind == "ident" and isinstance(nxt, _Group):
            name = it.text.lower()
            if name in _CAST_FUNCTIONS:
                out.append(_Tok("sql", f"CAST({_render(nxt.items)} AS {_CAST_FUNCTIONS[name]})"))
                i += 2
                continue
            if name in _RENAMED_FUNCTIONS:
                out.append(_Tok("sql", f"{_RENAMED_FUNCTIONS[name]}({_render(nxt.items)})"))
                i += 2
                continue
        if _is_word(it, "RLIKE", "REGEXP", "LIKE"):
            negate = bool(out) and _is_word(out[-1], "NOT")
            if negate:
                out.pop()
            left: list = []
            while out and not _is_boundary(out[-1]):
                left.insert(0, out.pop())
            j = i + 1
            right: list = []
            while j < len(items) and not _is_boundary(items[j]):
                right.append(items[j])
                j += 1
            if not left or not right:
                raise TranslationError(f"{it.text.upper()} needs an operand on each side")
            if it.text.upper() == "LIKE":
                # Spark's LIKE escapes with a backslash; DuckDB's only with an ESCAPE clause
                esc = " ESCAPE '\\'" if any(isinstance(r, _Tok) and r.kind == "str" and "\\" in r.text for r in right) else ""
                sql = f"{_render(left)} {'NOT ' if negate else ''}LIKE {_render(right)}{esc}"
            else:
                if len(right) == 1 and isinstance(right[0], _Tok) and right[0].kind == "str":
                    right = [_Tok("str", java_regex_to_re2(right[0].text))]
                sql = f"{'NOT ' if negate else ''}regexp_matches({_render(left)}, {_render(right)})"
            out.append(_Tok("sql", "(" + sql + ")"))
            i = j
            continue
        out.append(it)
        i += 1
    return out


def translate_rule(when: str) -> str:
    """A rule's Spark SQL boolean expression as DuckDB SQL (same meaning on the columns the cleaning
    query provides). Raises TranslationError on what it cannot carry over."""
    return _render(_translate(_nest(_tokens(when))))


def reasons_sql(rules) -> str:
    """DuckDB expression: the list of the names of the rules a row breaks (NULL = not broken), in
    rule-table order — ``lib.quality.with_reasons``."""
    conds, cases = [], []
    for rule in rules.active:
        try:
            cond = translate_rule(rule.when)
        except TranslationError as exc:
            raise TranslationError(f"rule {rule.name}: {exc}") from None
        conds.append(f"coalesce(({cond}), false)")
        cases.append(f"CASE WHEN {conds[-1]} THEN {duck_literal(rule.name)} END")
    if not cases:
        return "[]::VARCHAR[]"
    # the list only for rows that break a rule (building it for every row costs most of the query)
    return (f"CASE WHEN {' OR '.join(conds)} THEN list_filter([" + ",\n  ".join(cases)
            + "], lambda x: x IS NOT NULL) ELSE []::VARCHAR[] END")


# --------------------------------------------------------------------------------------------
# the cleaning query
# --------------------------------------------------------------------------------------------
def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _path_literal(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def judge_sql(source: str, rules, load_time: datetime) -> str:
    """SELECT over ``source`` (rows of text columns ``csv_<field>`` and ``csv__extra``, plus ``pos``)
    giving the typed event fields, ``reasons``, ``pos`` and, for quarantined rows only, ``q_key`` /
    ``q_value`` (the message as quarantine keeps it)."""
    load_ts = load_time.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    fields = [*CSV_COLUMNS, EXTRA]
    # Spark's trim strips spaces only; trimming only what needs it is 4x cheaper than trim() on every value
    trimmed = {f: (f"CASE WHEN starts_with({c}, ' ') OR ends_with({c}, ' ') THEN nullif(trim({c}, ' '), '') "
                   f"ELSE nullif({c}, '') END") for f in fields for c in [_q('csv_' + f)]}
    # the backfill's value: to_json of the row's raw (untrimmed) non-NULL fields (Spark drops NULLs)
    sizes = " + ".join(f"coalesce(strlen({_q('csv_' + f)}) + {len(f) + 5}, 0)" for f in fields)
    present = " + ".join(f"({_q('csv_' + f)} IS NOT NULL)::INTEGER" for f in fields)
    raw_cols = ",\n    ".join(f"CASE WHEN parsable THEN {trimmed[f]} END AS {_q('r_' + f)}" for f in fields)
    json_pairs = ", ".join(f"{duck_literal(f)}, {_q('csv_' + f)}" for f in fields)

    def as_bigint(col: str) -> str:
        return f"CASE WHEN regexp_full_match({col}, '[+-]?[0-9]+') THEN TRY_CAST({col} AS BIGINT) END"

    t = "r_event_time"
    typed = f"""
    r_event_time AS event_time_raw, r_event_type AS event_type_raw, r_product_id AS product_id_raw,
    r_category_id AS category_id_raw, r_price AS price_raw, r_user_id AS user_id_raw, r__extra AS extra_raw,
    CASE WHEN try_strptime({t}, '%Y-%m-%d %H:%M:%S UTC') IS NOT NULL THEN try_strptime({t}, '%Y-%m-%d %H:%M:%S UTC')
         ELSE TRY_CAST({t} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' END AS event_time,
    r_event_type AS event_type,
    {as_bigint('r_product_id')} AS product_id,
    {as_bigint('r_category_id')} AS category_id,
    r_category_code AS category_code,
    r_brand AS brand,
    round(TRY_CAST(r_price AS DOUBLE), 2) AS price,
    {as_bigint('r_user_id')} AS user_id,
    r_user_session AS user_session"""
    csv_cols = ", ".join(_q("csv_" + f) for f in fields)
    return f"""
WITH sized AS (
  SELECT *, 2 + {sizes} + greatest({present} - 1, 0) AS value_bytes FROM {source}
), flagged AS (
  SELECT *, value_bytes <= {MAX_RECORD_BYTES} AS parsable FROM sized
), raw AS (
  SELECT pos, parsable, value_bytes, {csv_cols},
    {raw_cols}
  FROM flagged
), typed AS (
  SELECT pos, {csv_cols},
    parsable AS json_ok, value_bytes, true AS utf8_ok, parsable, []::VARCHAR[] AS unknown_fields,
    TIMESTAMP '{load_ts}' AS kafka_timestamp,
    {typed}
  FROM raw
), judged AS (
  SELECT *, {reasons_sql(rules)} AS reasons FROM typed
)
SELECT pos, {", ".join(CSV_COLUMNS)}, reasons,
  CASE WHEN len(reasons) > 0 THEN left(csv_user_id, {QUARANTINE_KEY_BYTES}) END AS q_key,
  -- the message as the backfill's bronze holds it (JSON of the non-NULL raw fields), bounded
  CASE WHEN len(reasons) > 0 THEN left(json_merge_patch('{{}}', json_object({json_pairs})), {QUARANTINE_VALUE_BYTES}) END AS q_value
FROM judged"""  # noqa: S608 — built from the rule table and constants; the one path is quoted


def read_csv_sql(path: Path) -> str:
    """The event CSV as text columns ``csv_<field>`` + ``csv__extra`` and its row position ``pos``
    (0-based, file order: the backfill's ``offset``)."""
    cols = ", ".join(f"{duck_literal('csv_' + f)}: 'VARCHAR'" for f in (*CSV_COLUMNS, EXTRA))
    opts = (f"header = true, columns = {{{cols}}}, auto_detect = false, delim = ',', quote = '\"', escape = '\\', "
            "null_padding = true, strict_mode = false, max_line_size = 268435456")
    return f"(SELECT row_number() OVER () - 1 AS pos, * FROM read_csv({_path_literal(path)}, {opts}))"  # noqa: S608 — path quoted by _path_literal


def event_key_sql() -> str:
    """``lib.transforms.silver.event_key`` in DuckDB: md5 of the typed event fields as text."""
    parts = ", ".join(f"coalesce(CAST({_q(c)} AS VARCHAR), chr(0))" for c in CSV_COLUMNS)
    return f"md5(concat_ws(chr(1), {parts}))"


def file_fingerprint(path: Path) -> str:
    """``lib.batch.backfill.file_fingerprint`` (not imported: that module imports Spark)."""
    import hashlib

    st = path.stat()
    return hashlib.sha1(f"{path.name}:{st.st_size}:{int(st.st_mtime)}".encode(), usedforsecurity=False).hexdigest()[:12]


def clean(path: Path, out: Path, rules, threads: int, load_time: datetime | None = None,
          memory_limit: str | None = None) -> dict:
    """One cleaning run in a fresh in-memory DuckDB: ``out``/silver/event_date=…/*.parquet and
    ``out``/quarantine.parquet.
    Returns the counts and the wall time of each step."""
    import duckdb

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
    import duckdb
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    ops = DeltaTable(str(lake / "ops" / "quality_batches")).to_pyarrow_table().to_pylist()
    mine = [r for r in ops if r["load_id"] == f"backfill-{fingerprint}:0"]
    if not mine:
        return {"lake": str(lake), "error": f"no backfill of this file (load_id backfill-{fingerprint}:0) in ops/quality_batches"}
    spark_row = mine[0]
    spark_rules = dict(spark_row["quarantined_by_rule"])
    silver = DeltaTable(str(lake / "silver" / "events")).to_pyarrow_table(columns=["event_key", "topic"])
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
    p.add_argument("--input", type=Path, default=DEFAULT_INPUT, help=f"event CSV (default {DEFAULT_INPUT.relative_to(ROOT)}; "
                   "generated with --rows/--days/--seed when missing)")
    p.add_argument("--rows", type=int, default=1_000_000, help="rows to generate when --input is missing (1000000)")
    p.add_argument("--days", type=float, default=152, help="days to generate over when --input is missing (152)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "duckdb_clean", help="Parquet output folder")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="DuckDB threads (default: the cores)")
    p.add_argument("--memory-limit", help="DuckDB memory_limit (default: DuckDB's, 80%% of RAM)")
    p.add_argument("--runs", type=int, default=2, help="cleaning runs; the last one is reported as warm (2)")
    p.add_argument("--check-lake", type=Path, help="lake the Spark backfill wrote from the same file (e.g. var/lake1m)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")

    import duckdb

    from lib.quality import load_rules

    rules = load_rules()
    try:
        reasons_sql(rules)
    except TranslationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = args.input if args.input.is_absolute() else Path.cwd() / args.input
    if not path.exists():
        log(f"{path} missing: generating {args.rows} rows over {args.days:g} days (seed {args.seed})")
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "tools.generate", "--rows", str(args.rows), "--days", str(args.days),  # noqa: S603 — this interpreter, own module, no shell
                        "--seed", str(args.seed), "--out", str(path), "--quiet"], cwd=ROOT, check=True)
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
    from lib.delta_log import exit_without_teardown

    exit_without_teardown(main())  # --check-lake reads the lake with deltalake, whose teardown may abort
