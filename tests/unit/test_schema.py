from __future__ import annotations

import json
from datetime import datetime, timezone

from pyspark.sql.types import DataType

from lib.schema import (
    BATCH_TABLE_DDL,
    CSV_COLUMNS,
    SCORE_TABLE_DDL,
    STATS_COLUMNS,
    TABLE_DDL,
    TABLE_PARTITIONS,
    arrow_schema,
    csv_row_to_wire,
    encode_wire,
    spark_bronze_schema,
    spark_wire_schema,
    table_properties,
    table_schema,
    wire_key,
)
from lib.transforms.bronze import BRONZE_PARTITION

ROW = {
    "event_time": "2019-10-01 00:00:07 UTC", "event_type": "cart", "product_id": "5881589",
    "category_id": "2151191071051219817", "category_code": "", "brand": "lovely", "price": "13.48",
    "user_id": "429681830", "user_session": "49e8d843-adf3-428b-a2c3-fe8bc6a307c9",
}


def test_csv_row_to_wire_types_values_and_keeps_field_order():
    wire = csv_row_to_wire(ROW)
    assert list(wire) == list(CSV_COLUMNS)
    assert wire == {
        "event_time": "2019-10-01T00:00:07Z", "event_type": "cart", "product_id": 5881589,
        "category_id": 2151191071051219817, "category_code": None, "brand": "lovely", "price": 13.48,
        "user_id": 429681830, "user_session": "49e8d843-adf3-428b-a2c3-fe8bc6a307c9",
    }
    assert wire_key(wire) == b"429681830"


def test_retimed_event_gets_the_new_time():
    t = datetime(2026, 11, 28, 12, 0, 5, tzinfo=timezone.utc)
    assert csv_row_to_wire(ROW, event_time=t)["event_time"] == "2026-11-28T12:00:05Z"


def test_untypable_values_travel_raw_so_validation_can_quarantine_them():
    bad = dict(ROW, event_time="yesterday", price="abc", product_id="x1", user_id="")
    wire = csv_row_to_wire(bad)
    assert wire["event_time"] == "yesterday"
    assert wire["price"] == "abc"
    assert wire["product_id"] == "x1"
    assert wire["user_id"] is None
    assert wire_key(wire) is None
    assert json.loads(encode_wire(wire))["price"] == "abc"


def test_negative_and_zero_prices_are_kept():
    assert csv_row_to_wire(dict(ROW, price="-7.94"))["price"] == -7.94
    assert csv_row_to_wire(dict(ROW, price="0"))["price"] == 0.0


def test_spark_wire_schema_covers_the_contract():
    assert tuple(f.name for f in spark_wire_schema().fields) == CSV_COLUMNS


def test_spark_and_arrow_schemas_come_from_the_one_ddl(spark):
    """Each lake table is declared once (DDL); the Spark schema derived without a session is exactly what
    Spark's own DDL parser makes of it, and the Arrow schema has the same columns in the same order."""
    for tables in (TABLE_DDL, BATCH_TABLE_DDL, SCORE_TABLE_DDL):
        for name, ddl in tables.items():
            assert table_schema(name) == DataType.fromDDL(ddl), name
            assert arrow_schema(name).names == table_schema(name).fieldNames(), name
    bronze = spark_bronze_schema()
    assert bronze == DataType.fromDDL("key STRING, value STRING, topic STRING NOT NULL, partition INT NOT NULL, "
                                      "offset BIGINT NOT NULL, kafka_timestamp TIMESTAMP NOT NULL, "
                                      "ingest_time TIMESTAMP NOT NULL, ingest_date DATE NOT NULL")


def test_statistics_columns_are_columns_of_their_table_and_leave_out_free_text():
    """Delta refuses a table whose ``dataSkippingStatsColumns`` names a column it lacks or a partition
    column; the long free text (raw message, session id, md5 key, brand) keeps no statistics."""
    columns = {"bronze/events": spark_bronze_schema().fieldNames(),
               "silver/events": table_schema("silver/events").fieldNames()}
    partitions = {"bronze/events": (BRONZE_PARTITION,), **TABLE_PARTITIONS}
    for name, stats in STATS_COLUMNS.items():
        assert set(stats) <= set(columns[name]) - set(partitions.get(name, ())), name
        assert table_properties(name) == {"delta.dataSkippingStatsColumns": ",".join(stats)}
    assert not {"key", "value"} & set(STATS_COLUMNS["bronze/events"])
    assert not {"user_session", "event_key", "brand", "category_code", "load_id"} & set(STATS_COLUMNS["silver/events"])
    assert table_properties("quarantine/events") == {}  # other tables: Delta's default (first 32 columns)
