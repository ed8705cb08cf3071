"""The backfill's cleaning in DuckDB SQL: the rule table's Spark SQL ``when`` expressions translated into
DuckDB (:func:`translate_rule`), the CSV read as text (:func:`read_csv_sql`), the typing and judging
query (:func:`judge_sql`) and ``event_key`` (:func:`event_key_sql`).

Used by the single-machine reference benchmark (bench/duckdb_clean.py, ``make bench-duckdb``, whose
docstring lists what it mirrors and the known differences) and by tests/unit/test_duckdb_clean.py, which
runs the hostile CSV kinds through both engines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lib.limits import MAX_RECORD_BYTES, QUARANTINE_KEY_BYTES, QUARANTINE_VALUE_BYTES
from lib.schema import CSV_COLUMNS

EXTRA = "_extra"  # lib.transforms.silver.EXTRA (not imported: that module imports Spark)


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
    parts: list[str] = []
    buf: list[str] = []
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
        if not m or m.lastgroup is None:  # (every alternative of _TOKEN is a named group)
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
