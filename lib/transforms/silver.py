"""Bronze -> silver: parse the wire JSON, type the fields, validate, find exact duplicates.

Pure DataFrame -> DataFrame functions; the Delta IO around them lives in lib/lakehouse.py. The batch
backfill feeds CSV rows through the same functions (as bronze-shaped rows), so streaming and batch
share one implementation of the cleaning rules. Exact duplicates (key and removal) are defined in
lib/domain/dedupe.py, their Spark form in lib/domain/spark.py.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from lib.domain.spark import event_key
from lib.limits import MAX_RECORD_BYTES, QUARANTINE_KEY_BYTES, QUARANTINE_VALUE_BYTES
from lib.quality import RuleSet, split_valid, with_reasons
from lib.schema import CSV_COLUMNS, SPARK_CSV_TIME_PATTERN

CORRUPT = "_corrupt"
EXTRA = "_extra"
# Lenient parse: every field as text (numbers keep their literal text), so parsing never loses data.
PARSE_SCHEMA = StructType(
    [StructField(c, StringType(), True) for c in CSV_COLUMNS]
    + [StructField(EXTRA, StringType(), True), StructField(CORRUPT, StringType(), True)]
)
EVENT_FIELDS = list(CSV_COLUMNS)
ORIGIN_FIELDS = ["topic", "partition", "offset", "kafka_timestamp", "ingest_time"]
SILVER_COLUMNS = [*EVENT_FIELDS, "event_date", "event_key", *ORIGIN_FIELDS, "load_id"]
QUARANTINE_COLUMNS = ["key", "value", "topic", "partition", "offset", "kafka_timestamp", "reasons", "load_id",
                      "quarantined_at"]


def _blank_to_null(c: Column) -> Column:
    t = F.trim(c)
    return F.when(t == "", None).otherwise(t)


def _to_timestamp(c: Column) -> Column:
    """ISO-8601 (the wire format) or the CSV's 'yyyy-MM-dd HH:mm:ss UTC'; NULL if neither."""
    return F.coalesce(c.try_cast("timestamp"), F.try_to_timestamp(c, F.lit(SPARK_CSV_TIME_PATTERN)))


# JSON keys a message may carry: the contract's fields, and the replayer's ``_extra`` (surplus CSV fields)
KNOWN_KEYS = (*CSV_COLUMNS, EXTRA)


def parse_events(bronze_df: DataFrame) -> DataFrame:
    """Bronze rows -> raw (``*_raw``) and typed event fields, plus ``json_ok`` and the byte-level
    columns ``value_bytes``, ``utf8_ok``, ``parsable`` and ``unknown_fields`` (conf/quality_rules.yaml).

    Never fails on bad input: unparsable values become NULL typed fields next to their raw text,
    for the rule table to judge. Only *parsable* messages (valid UTF-8, at most ``MAX_RECORD_BYTES``)
    are parsed: a 10 MB or mis-encoded message costs one length/validity check, and is judged by
    ``oversized_record`` / ``invalid_encoding`` alone.
    """
    value = F.col("value")
    parsable = _parsable(value)
    p = F.from_json(F.when(parsable, value), PARSE_SCHEMA,
                    {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    df = bronze_df.withColumn("_parsable", parsable).withColumn("_p", p)
    json_ok = (F.col("_parsable") & value.isNotNull() & F.col("_p").isNotNull() & F.col(f"_p.{CORRUPT}").isNull()
               & F.trim(value).startswith("{"))
    # keys outside the contract (json_object_keys parses the object again: only for JSON objects)
    unknown = F.when(json_ok, F.array_except(F.json_object_keys(value), F.array(*map(F.lit, KNOWN_KEYS))))
    return _typed(df, json_ok, unknown)


def parse_csv_rows(rows_df: DataFrame) -> DataFrame:
    """CSV rows already in the bronze shape *and* still carrying their CSV fields (the columns of
    ``CSV_COLUMNS`` and ``_extra``, as text: see lib/batch/backfill.py) -> exactly what
    :func:`parse_events` gives for their bronze rows, without parsing ``value`` back: ``value`` is
    ``to_json`` of those very fields, so its JSON parse would return them unchanged (a JSON object,
    no keys outside the contract). The byte-level checks still look at ``value``."""
    parsable = _parsable(F.col("value"))
    fields = F.when(parsable, F.struct(*[F.col(c) for c in (*CSV_COLUMNS, EXTRA)]))
    df = rows_df.withColumn("_parsable", parsable).withColumn("_p", fields).drop(*CSV_COLUMNS, EXTRA)
    json_ok = F.col("_parsable") & F.col("value").isNotNull()
    return _typed(df, json_ok, F.when(json_ok, F.array().cast("array<string>")))


def _parsable(value: Column) -> Column:
    utf8_ok = F.coalesce(F.is_valid_utf8(value), F.lit(True))  # NULL value: judged as unparsable JSON
    return utf8_ok & F.coalesce(F.octet_length(value) <= F.lit(MAX_RECORD_BYTES), F.lit(True))


def _typed(df: DataFrame, json_ok: Column, unknown: Column) -> DataFrame:
    """``df`` with ``_parsable`` and ``_p`` (the message's fields as text, NULL when not parsed) ->
    the judged columns (the part of :func:`parse_events` both entry points share)."""
    value = F.col("value")
    raw = {c: _blank_to_null(F.col(f"_p.{c}")) for c in CSV_COLUMNS}
    return df.select(
        "*",
        json_ok.alias("json_ok"),
        F.octet_length(value).alias("value_bytes"),
        F.coalesce(F.is_valid_utf8(value), F.lit(True)).alias("utf8_ok"),
        F.col("_parsable").alias("parsable"),
        unknown.alias("unknown_fields"),
        raw["event_time"].alias("event_time_raw"),
        raw["event_type"].alias("event_type_raw"),
        raw["product_id"].alias("product_id_raw"),
        raw["category_id"].alias("category_id_raw"),
        raw["price"].alias("price_raw"),
        raw["user_id"].alias("user_id_raw"),
        _blank_to_null(F.col(f"_p.{EXTRA}")).alias("extra_raw"),
        _to_timestamp(raw["event_time"]).alias("event_time"),
        raw["event_type"].alias("event_type"),
        raw["product_id"].try_cast("bigint").alias("product_id"),
        raw["category_id"].try_cast("bigint").alias("category_id"),
        raw["category_code"].alias("category_code"),
        raw["brand"].alias("brand"),
        F.round(raw["price"].try_cast("double"), 2).alias("price"),
        raw["user_id"].try_cast("bigint").alias("user_id"),
        raw["user_session"].alias("user_session"),
    ).drop("_p", "_parsable")


def validate(parsed_df: DataFrame, rules: RuleSet) -> tuple[DataFrame, DataFrame]:
    """Parsed rows -> (valid rows, quarantined rows with ``reasons``)."""
    return split_valid(with_reasons(parsed_df, rules))


def _silver_columns(load_id: str) -> list[Column]:
    return [*map(F.col, EVENT_FIELDS), F.to_date("event_time").alias("event_date"), event_key().alias("event_key"),
            *map(F.col, ORIGIN_FIELDS), F.lit(load_id).alias("load_id")]


def bounded_text(c: Column, max_bytes: int) -> Column:
    """At most ``max_bytes`` (+2 for a cut multi-byte character) of valid UTF-8: the first bytes of
    ``c``, invalid sequences replaced by U+FFFD. Identity on valid text within the bound."""
    fits = F.coalesce(F.is_valid_utf8(c) & (F.octet_length(c) <= F.lit(max_bytes)), F.lit(True))

    def cut(x: Column) -> Column:
        return F.make_valid_utf8(F.substring(x.cast("binary"), 1, max_bytes).cast("string"))
    # twice: replacing invalid bytes by U+FFFD (3 bytes each) can grow the text; the second cut can only
    # split one character, which becomes one U+FFFD
    return F.when(fits, c).otherwise(cut(cut(c)))


def _quarantine_columns(load_id: str, now: Column | None) -> list[Column]:
    # the message as quarantine keeps it: a bounded, valid-UTF-8 prefix (lib.quality.QUARANTINE_*_BYTES);
    # bronze/events keeps every byte at the same topic/partition/offset
    return [bounded_text(F.col("key"), QUARANTINE_KEY_BYTES).alias("key"),
            bounded_text(F.col("value"), QUARANTINE_VALUE_BYTES).alias("value"),
            *map(F.col, ["topic", "partition", "offset", "kafka_timestamp", "reasons"]),
            F.lit(load_id).alias("load_id"),
            (now if now is not None else F.current_timestamp()).alias("quarantined_at")]


def to_silver(valid_df: DataFrame, load_id: str) -> DataFrame:
    """Valid parsed rows -> the silver shape (typed event + date + key + origin)."""
    return valid_df.select(*_silver_columns(load_id))


def to_quarantine(bad_df: DataFrame, load_id: str, now: Column | None = None) -> DataFrame:
    """Quarantined rows keep the raw message, where it came from and every rule it broke."""
    return bad_df.select(*_quarantine_columns(load_id, now))


# what judged_rows leaves to its caller: per-batch values (a literal that changes every micro-batch
# would also change the generated code of the whole stage, and make Spark compile it again)
PER_BATCH_COLUMNS = ("load_id", "quarantined_at")


def judged_rows(judged_df: DataFrame) -> DataFrame:
    """Judged rows (with ``reasons``) -> every column of both shapes at once (``SILVER_COLUMNS`` +
    ``QUARANTINE_COLUMNS``) but the ``PER_BATCH_COLUMNS``, for a caller that splits valid from
    quarantined rows itself (the streaming lakehouse, after one collect). Same expressions as
    :func:`to_silver`/:func:`to_quarantine`; free of per-batch values, so it can sit in a streaming plan.

    Bounded in bytes per row, as the caller collects it to the driver: a valid row carries its event
    fields (text fields at most ``MAX_TEXT_FIELD_CHARS`` by the ``oversized_field`` rule) and no
    message; a quarantined row its bounded key and value (``QUARANTINE_*_BYTES``) and no event fields.
    So a micro-batch of ``kafka.max_offsets_per_trigger`` rows collects at most ~6 KiB per row."""
    seen, out = set(PER_BATCH_COLUMNS), []
    valid = F.size("reasons") == 0
    only_valid = set(EVENT_FIELDS) | {"event_date", "event_key"}
    for name, col in [*zip(SILVER_COLUMNS, _silver_columns("")), *zip(QUARANTINE_COLUMNS, _quarantine_columns("", None))]:
        if name not in seen:
            seen.add(name)
            if name in only_valid:
                col = F.when(valid, col).alias(name)
            elif name in ("key", "value"):
                col = F.when(~valid, col).alias(name)
            out.append(col)
    return judged_df.select(*out)
