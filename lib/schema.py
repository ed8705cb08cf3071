"""The event contract, in one place.

Three views of the same event:

* **CSV** - the real dataset's file format (Kaggle "eCommerce Events History in Cosmetics Shop"):
  header ``CSV_COLUMNS``, times like ``2019-10-01 00:00:00 UTC``, missing values as empty fields.
* **Wire** - one JSON object per Kafka message, same field names, ISO-8601 UTC time
  (``2019-10-01T00:00:00Z``), missing values as ``null``; the message key is the ``user_id``.
  A field that cannot be typed (say a price ``"abc"``) travels as its raw string so that the
  streaming validation can quarantine it with a reason instead of the producer dropping it.
* **Spark** - ``spark_wire_schema()`` parses the wire JSON leniently (every field a string, so nothing
  is lost at parse time).

And the schema of every lake table, declared once as Spark DDL (``TABLE_DDL``, ``BATCH_TABLE_DDL``,
``SCORE_TABLE_DDL``), from which ``arrow_schema(name)`` (delta-rs readers and writers, no Spark) and
``table_schema(name)`` (Spark's StructType, no session needed) are both derived.

Only this module knows field names and formats; everything else imports from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

CSV_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "remove_from_cart", "purchase")

CSV_TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
WIRE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Spark datetime patterns for the same formats
SPARK_CSV_TIME_PATTERN = "yyyy-MM-dd HH:mm:ss 'UTC'"

SUBSCRIBER_COLUMNS: tuple[str, ...] = ("user_id", "email", "consent", "first_name", "locale")

_INT_FIELDS = ("product_id", "category_id", "user_id")
_OPTIONAL_STR_FIELDS = ("category_code", "brand", "user_session")


def parse_csv_time(value: str) -> datetime:
    """``2019-10-01 00:00:00 UTC`` -> aware datetime (raises ValueError on anything else)."""
    return datetime.strptime(value, CSV_TIME_FORMAT).replace(tzinfo=timezone.utc)


def format_csv_time(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime(CSV_TIME_FORMAT)


def format_wire_time(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime(WIRE_TIME_FORMAT)


def _typed_int(raw: str) -> Any:
    try:
        return int(raw)
    except ValueError:
        return raw  # travels as a string; silver quarantines it


def _typed_price(raw: str) -> Any:
    try:
        return round(float(raw), 2)
    except ValueError:
        return raw


def csv_row_to_wire(row: Mapping[str, str], event_time: datetime | None = None) -> dict[str, Any]:
    """One CSV row (strings, as read by ``csv.DictReader``) -> the JSON-ready wire dict.

    ``event_time`` replaces the row's time (the replayer re-times events to the present); when it
    is None the row's own time is converted, or kept raw if it does not parse.
    """
    out: dict[str, Any] = {}
    if event_time is not None:
        out["event_time"] = format_wire_time(event_time)
    else:
        raw_time = row.get("event_time") or ""
        try:
            out["event_time"] = format_wire_time(parse_csv_time(raw_time))
        except ValueError:
            out["event_time"] = raw_time or None
    out["event_type"] = row.get("event_type") or None
    for name in _INT_FIELDS:
        raw = row.get(name) or ""
        out[name] = _typed_int(raw) if raw else None
    for name in _OPTIONAL_STR_FIELDS:
        out[name] = row.get(name) or None
    raw_price = row.get("price") or ""
    out["price"] = _typed_price(raw_price) if raw_price else None
    # keep the contract's field order
    return {name: out[name] for name in CSV_COLUMNS}


def wire_key(event: Mapping[str, Any]) -> bytes | None:
    """Kafka message key: the user id (keeps a user's events in order on one partition)."""
    uid = event.get("user_id")
    return None if uid is None else str(uid).encode()


def encode_wire(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


# --- Every schema is declared once, as Spark DDL; ``arrow_schema`` / ``table_schema`` derive both forms ---------
# The DDL is parsed here into pyarrow (``ddl_to_arrow``: no Spark, so the dashboard and dispatcher
# containers, which have no pyspark, get their schemas too), and the Spark StructType is converted from
# that Arrow schema by pyspark's own ``from_arrow_schema``. pyspark's DDL parser (``DataType.fromDDL``)
# would not do for both: it calls into the JVM, so it needs a running Spark session and pyspark.
# ``NOT NULL`` after a type makes the column non-nullable (Arrow and Spark alike).

# the wire JSON, parsed leniently: all strings, so parsing never loses a value (also the CSV read schema)
WIRE_DDL = ", ".join(f"{name} STRING" for name in CSV_COLUMNS)
# bronze: each raw Kafka message, untouched, with where and when it came from
BRONZE_DDL = (
    "key STRING, value STRING, topic STRING NOT NULL, partition INT NOT NULL, offset BIGINT NOT NULL, "
    "kafka_timestamp TIMESTAMP NOT NULL, ingest_time TIMESTAMP NOT NULL, ingest_date DATE NOT NULL"
)


def spark_wire_schema():
    """Lenient parse schema for the wire JSON: all strings, so parsing never loses a value."""
    return ddl_to_spark(WIRE_DDL)


def spark_bronze_schema():
    """Bronze: each raw Kafka message, untouched, with where and when it came from."""
    return ddl_to_spark(BRONZE_DDL)


# --- Lake tables ---------------------------------------------------------------------------------------------
# Where each table lives: ``<lake root>/<layer>/<name>`` (see lib.config.LakeConfig.table).
TABLE_DDL: dict[str, str] = {
    "silver/events": (
        "event_time TIMESTAMP, event_type STRING, product_id BIGINT, category_id BIGINT, "
        "category_code STRING, brand STRING, price DOUBLE, user_id BIGINT, user_session STRING, "
        "event_date DATE, event_key STRING, topic STRING, partition INT, offset BIGINT, "
        "kafka_timestamp TIMESTAMP, ingest_time TIMESTAMP, load_id STRING"
    ),
    "quarantine/events": (
        "key STRING, value STRING, topic STRING, partition INT, offset BIGINT, kafka_timestamp TIMESTAMP, "
        "reasons ARRAY<STRING>, load_id STRING, quarantined_at TIMESTAMP"
    ),
    "gold/sales_per_minute": (
        "product_id BIGINT, window_start TIMESTAMP, units BIGINT, revenue DOUBLE, orders BIGINT, "
        "brand STRING, category_code STRING, updated_at TIMESTAMP"
    ),
    "gold/sales_daily": (
        "product_id BIGINT, sale_date DATE, units BIGINT, revenue DOUBLE, orders BIGINT, brand STRING, "
        "category_code STRING, first_sale_minute TIMESTAMP, last_sale_minute TIMESTAMP, updated_at TIMESTAMP"
    ),
    "gold/revenue_per_minute": (
        "window_start TIMESTAMP, units BIGINT, revenue DOUBLE, orders BIGINT, products BIGINT, updated_at TIMESTAMP"
    ),
    "gold/top_products": (
        "rank INT, product_id BIGINT, brand STRING, category_code STRING, units BIGINT, revenue DOUBLE, "
        "window_minutes INT, as_of TIMESTAMP"
    ),
    "ops/quality_batches": (
        "batch_id BIGINT, load_id STRING, processed_at TIMESTAMP, read BIGINT, valid BIGINT, quarantined BIGINT, "
        "duplicates BIGINT, quarantined_by_rule MAP<STRING, BIGINT>, min_event_time TIMESTAMP, "
        "max_event_time TIMESTAMP"
    ),
    # --- abandoned-cart emails (lib.sessions, lib.retarget) ---
    "retarget/outbox": (
        "user_session STRING, user_id BIGINT, items ARRAY<STRUCT<product_id: BIGINT, qty: INT, price: DOUBLE, "
        "brand: STRING, category_code: STRING, category_id: BIGINT>>, cart_value DOUBLE, n_units INT, "
        "first_event_at TIMESTAMP, last_activity_at TIMESTAMP, last_cart_at TIMESTAMP, user_purchased_at TIMESTAMP, "
        "expired_at TIMESTAMP, detected_at TIMESTAMP, written_at TIMESTAMP"
    ),
    "retarget/decisions": (
        "user_session STRING, user_id BIGINT, decision STRING, detail STRING, decided_at TIMESTAMP, "
        "expired_at TIMESTAMP, last_cart_at TIMESTAMP, cart_value DOUBLE, email_domain STRING, "
        "offer_code STRING, offer_expires_at TIMESTAMP, message_id STRING, sender STRING, attempts INT"
    ),
    "retarget/attempts": (
        "user_session STRING, attempt INT, status STRING, at TIMESTAMP, sender STRING, message_id STRING, "
        "provider_id STRING, error STRING"
    ),
    "retarget/subscribers": (
        "user_id BIGINT, email STRING, consent BOOLEAN, first_name STRING, locale STRING, loaded_at TIMESTAMP"
    ),
    "retarget/unsubscribes": "user_id BIGINT, email STRING, unsubscribed_at TIMESTAMP, source STRING",
    # one row per offer code an email carried (written before its send; lib.retarget.offers)
    "retarget/offers": (
        "code STRING, user_id BIGINT, user_session STRING, issued_at TIMESTAMP, expires_at TIMESTAMP, status STRING"
    ),
    "gold/retarget_uplift": (
        "arm STRING, carts BIGINT, users BIGINT, units BIGINT, converted_units BIGINT, conversion_rate DOUBLE, "
        "revenue DOUBLE, revenue_per_unit DOUBLE, window_complete_units BIGINT, window_days INT, "
        # comparison (mailed - control), on the mailed row only; see lib/retarget/uplift.py
        "uplift_pp DOUBLE, uplift_ci_low_pp DOUBLE, uplift_ci_high_pp DOUBLE, p_value DOUBLE, mde_pp DOUBLE, "
        "revenue_per_unit_diff DOUBLE, revenue_per_unit_diff_ci_low DOUBLE, revenue_per_unit_diff_ci_high DOUBLE, "
        "incremental_revenue DOUBLE, verdict STRING, as_of TIMESTAMP, computed_at TIMESTAMP"
    ),
    "ops/session_batches": (
        "batch_id BIGINT, processed_at TIMESTAMP, watermark TIMESTAMP, python_calls BIGINT, rows_in BIGINT, "
        "live_sessions BIGINT, expired BIGINT, abandoned BIGINT, checked_out BIGINT, emptied BIGINT, "
        "outbox_inserted BIGINT, seconds DOUBLE, "
        # added in the thirteenth session (older tables gain them: RetargetStore.ensure): the sessions
        # state's size after the batch and the sessions whose state the batch read or wrote (issue #15)
        "state_bytes BIGINT, sessions_touched BIGINT"
    ),
}
# --- Batch-built tables read without Spark (delta-rs) -----------------------------------------------------
# Not created by the streaming app (lib.lakehouse creates the TABLE_DDL tables); ``arrow_schema`` knows them.
BATCH_TABLE_DDL: dict[str, str] = {
    # the shop's product catalogue: what the cart-recovery emails show (lib/retarget/catalogue.py); built
    # from silver by the gold stage (source "silver") or imported from the shop's export
    "gold/product_catalogue": (
        "product_id BIGINT, brand STRING, category_code STRING, category_id BIGINT, price DOUBLE, "
        "price_at TIMESTAMP, users BIGINT, events BIGINT, source STRING, updated_at TIMESTAMP"
    ),
    # one dispatcher at a time (lib/retarget/lease.py): the lease's one row, replaced by each take/renew/release
    "retarget/dispatcher_lease": (
        "owner STRING, host STRING, pid BIGINT, epoch BIGINT, acquired_at TIMESTAMP, renewed_at TIMESTAMP, "
        "expires_at TIMESTAMP, released BOOLEAN"
    ),
    # the dispatcher's circuit (lib/retarget/dispatcher.py): one row when sending pauses (an account-level
    # error: why) and one when it resumes
    "ops/sender_health": "at TIMESTAMP, sender STRING, state STRING, reason STRING, pending BIGINT",
    # ... and its history: acquired / takeover / lost / released, appended by the dispatcher
    "ops/dispatcher_leases": (
        "at TIMESTAMP, event STRING, owner STRING, host STRING, pid BIGINT, epoch BIGINT, previous_owner STRING, "
        "previous_epoch BIGINT, detail STRING"
    ),
}
TABLE_PARTITIONS: dict[str, tuple[str, ...]] = {
    "silver/events": ("event_date",),
    "quarantine/events": (),
    "gold/sales_daily": ("sale_date",),
}
# Delta keeps min/max/null-count statistics per file for the first 32 columns unless told otherwise. On
# the two big tables only the columns queries filter or prune on get them: the ids, times and Kafka
# positions. Long free text (bronze's raw message, silver's session id, md5 key, brand and category text)
# is left out: its min and max span every file (the rows are not sorted by it), so they never skip a file,
# and computing them cost ~1.3 s per million silver rows, ~0.5 s per million bronze rows
# (docs/performance.md). A table property, set when the table is created (``table_properties``); a table
# created before keeps its statistics.
STATS_COLUMNS: dict[str, tuple[str, ...]] = {
    "bronze/events": ("topic", "partition", "offset", "kafka_timestamp", "ingest_time"),
    "silver/events": ("event_time", "event_type", "product_id", "category_id", "price", "user_id", "partition",
                      "offset", "kafka_timestamp", "ingest_time"),
}


def table_properties(name: str) -> dict[str, str]:
    """The Delta table properties ``name`` is created with (``delta.dataSkippingStatsColumns``)."""
    cols = STATS_COLUMNS.get(name)
    return {"delta.dataSkippingStatsColumns": ",".join(cols)} if cols else {}


# --- Batch scores (jobs/batch/run.py score; read by the dashboard and analysts) -------------------------------
# Written whole by each scoring run (replace), so one table version = one scoring run. The analyst and
# feature tables of the batch side are documented in docs/batch.md (their shape follows their code).
SCORE_TABLE_DDL: dict[str, str] = {
    "gold/demand_forecast": (
        "product_id BIGINT, brand STRING, category_code STRING, as_of_date DATE, horizon_days INT, "
        "units_last_7d BIGINT, forecast_units DOUBLE, p_sale_tomorrow DOUBLE, forecast_rank INT, "
        "demand_model STRING, demand_model_version INT, sale_model STRING, sale_model_version INT, scored_at TIMESTAMP"
    ),
    "gold/customer_value": (
        "user_id BIGINT, clv DOUBLE, value_segment STRING, horizon_days INT, orders BIGINT, total_spend DOUBLE, "
        "days_since_last_visit DOUBLE, as_of TIMESTAMP, model STRING, model_version INT, model_flavor STRING, "
        "scored_at TIMESTAMP"
    ),
    "gold/customer_segments": (
        "value_segment STRING, customers BIGINT, predicted_value DOUBLE, share_of_predicted_value DOUBLE, "
        "avg_clv DOUBLE, avg_total_spend DOUBLE, horizon_days INT, as_of TIMESTAMP, model STRING, "
        "model_version INT, scored_at TIMESTAMP"
    ),
}


def ddl(name: str) -> str:
    """The DDL of a lake table (streaming, batch-built or score table)."""
    for tables in (TABLE_DDL, BATCH_TABLE_DDL, SCORE_TABLE_DDL):
        if name in tables:
            return tables[name]
    raise KeyError(f"no schema declared for the lake table {name!r} (lib/schema.py)")


def arrow_schema(name: str) -> pa.Schema:
    """pyarrow schema of a lake table (no Spark needed)."""
    return ddl_to_arrow(ddl(name))


def table_schema(name: str):
    """Spark StructType of a lake table (no Spark session needed)."""
    return ddl_to_spark(ddl(name))


def ddl_to_spark(text: str):
    """A DDL column list as a Spark StructType, converted from its Arrow form by pyspark itself."""
    # deferred: this module is also used where pyspark is not installed (the dashboard image), and
    # only this function needs it
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(ddl_to_arrow(text))


# --- the one DDL parser: the subset of Spark's DDL the tables above use -------------------------------------
_ARROW_SCALARS = {
    "STRING": pa.string(), "BIGINT": pa.int64(), "INT": pa.int32(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(), "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth = [], 0
    cur: list[str] = []
    for ch in text:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def _arrow_type(t: str) -> pa.DataType:
    t = t.strip()
    up = t.upper()
    if up in _ARROW_SCALARS:
        return _ARROW_SCALARS[up]
    if up.startswith("ARRAY<"):
        return pa.list_(_arrow_type(t[6:-1]))
    if up.startswith("MAP<"):
        k, v = _split_top(t[4:-1])
        return pa.map_(_arrow_type(k), _arrow_type(v))
    if up.startswith("STRUCT<"):
        fields = []
        for f in _split_top(t[7:-1]):
            name, _, ft = f.partition(":")
            fields.append(pa.field(name.strip(), _arrow_type(ft)))
        return pa.struct(fields)
    raise ValueError(f"no Arrow type for {t!r}")


def ddl_to_arrow(text: str) -> pa.Schema:
    """``"a BIGINT, b ARRAY<STRING> NOT NULL, ..."`` -> pyarrow schema (timestamps ``us`` UTC, like Spark's)."""
    fields = []
    for col in _split_top(text):
        cname, _, ctype = col.partition(" ")
        ctype = ctype.strip()
        nullable = not ctype.upper().endswith(" NOT NULL")
        if not nullable:
            ctype = ctype[: -len(" NOT NULL")]
        fields.append(pa.field(cname, _arrow_type(ctype), nullable=nullable))
    return pa.schema(fields)
