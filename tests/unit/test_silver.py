from __future__ import annotations

import datetime as dt
import json

import pytest
from chispa import assert_df_equality

from lib.domain.spark import drop_duplicates_within, drop_seen
from lib.quality import is_valid, load_rules, with_reasons
from lib.transforms.silver import parse_events, to_silver

T = dt.datetime(2026, 11, 28, 12, 0, 0)
GOOD = {"event_time": "2026-11-28T11:59:58Z", "event_type": "purchase", "product_id": 5881589,
        "category_id": 2151191071051219817, "category_code": None, "brand": "lovely", "price": 13.48,
        "user_id": 429681830, "user_session": "49e8d843-adf3-428b-a2c3-fe8bc6a307c9"}
BRONZE_DDL = ("key string, value string, topic string, partition int, offset long, "
              "kafka_timestamp timestamp, ingest_time timestamp")


def _bronze(spark, values: list[str]):
    return spark.createDataFrame([("1", v, "events", 0, i, T, T) for i, v in enumerate(values)], BRONZE_DDL)


def _msg(**changes) -> str:
    return json.dumps({**GOOD, **changes})


def _reasons(spark, values: list[str]) -> list[list[str]]:
    df = with_reasons(parse_events(_bronze(spark, values)), load_rules())
    return [r["reasons"] for r in df.orderBy("offset").collect()]


def test_a_good_event_is_typed_and_valid(spark):
    parsed = parse_events(_bronze(spark, [_msg()]))
    row = with_reasons(parsed, load_rules()).first()
    assert row["reasons"] == []
    assert row["event_time"] == dt.datetime(2026, 11, 28, 11, 59, 58)
    assert (row["product_id"], row["category_id"], row["user_id"]) == (5881589, 2151191071051219817, 429681830)
    assert row["price"] == 13.48 and row["brand"] == "lovely" and row["category_code"] is None


def test_csv_style_time_and_blank_strings_are_normalised(spark):
    row = parse_events(_bronze(spark, [_msg(event_time="2019-10-01 00:00:07 UTC", brand="  ", category_code="")])).first()
    assert row["event_time"] == dt.datetime(2019, 10, 1, 0, 0, 7)
    assert row["brand"] is None and row["category_code"] is None


@pytest.mark.parametrize("value, expected", [
    ("not json at all", ["unparsable_json"]),
    ("[1, 2, 3]", ["unparsable_json"]),
    ("", ["unparsable_json"]),
    (_msg(event_time=None), ["missing_event_time"]),
    (_msg(event_time="yesterday"), ["bad_event_time"]),
    (_msg(event_time="2027-11-28T12:00:00Z"), ["future_event_time"]),
    (_msg(event_time="1970-01-01T00:00:00Z"), ["ancient_event_time"]),
    (_msg(event_type="checkout"), ["unknown_event_type"]),
    (_msg(event_type=None), ["unknown_event_type"]),
    (_msg(product_id=None), ["missing_product_id"]),
    (_msg(product_id="abc"), ["bad_product_id"]),
    (_msg(product_id=-5), ["bad_product_id"]),
    (_msg(category_id="x"), ["bad_category_id"]),
    (_msg(user_id=None), ["missing_user_id"]),
    (_msg(user_id="12a"), ["bad_user_id"]),
    (_msg(user_session=None), ["missing_user_session"]),
    (_msg(price=None), ["missing_price"]),
    (_msg(price="abc"), ["non_numeric_price"]),
    (_msg(price=0), ["non_positive_price"]),
    (_msg(price=-7.94), ["non_positive_price"]),
    (_msg(_extra=["surplus"]), ["unexpected_fields"]),
    (_msg(price="abc", user_id=None, event_type="x"), ["unknown_event_type", "missing_user_id", "non_numeric_price"]),
])
def test_each_rule_names_what_is_wrong(spark, value, expected):
    assert _reasons(spark, [value]) == [expected]


def test_null_message_value_is_quarantined_not_lost(spark):
    df = spark.createDataFrame([("1", None, "events", 0, 0, T, T)], BRONZE_DDL)
    assert with_reasons(parse_events(df), load_rules()).first()["reasons"] == ["unparsable_json"]


def test_exact_duplicates_collapse_within_a_batch_and_against_earlier_rows(spark):
    parsed = with_reasons(parse_events(_bronze(spark, [_msg(), _msg(), _msg(price=2.5), _msg()])), load_rules())
    silver = to_silver(parsed, "app:1")
    within = drop_duplicates_within(silver)
    assert sorted(r["offset"] for r in within.collect()) == [0, 2]  # lowest offset wins
    earlier = to_silver(with_reasons(parse_events(_bronze(spark, [_msg(price=2.5)])), load_rules()), "app:0")
    new = drop_seen(within, earlier)
    assert [r["offset"] for r in new.collect()] == [0]


def test_to_silver_shape(spark):
    parsed = with_reasons(parse_events(_bronze(spark, [_msg()])), load_rules())
    got = to_silver(parsed, "app:7").drop("event_key")
    expected = spark.createDataFrame(
        [(dt.datetime(2026, 11, 28, 11, 59, 58), "purchase", 5881589, 2151191071051219817, None, "lovely", 13.48,
          429681830, "49e8d843-adf3-428b-a2c3-fe8bc6a307c9", dt.date(2026, 11, 28), "events", 0, 0, T, T, "app:7")],
        "event_time timestamp, event_type string, product_id long, category_id long, category_code string, "
        "brand string, price double, user_id long, user_session string, event_date date, topic string, "
        "partition int, offset long, kafka_timestamp timestamp, ingest_time timestamp, load_id string",
    )
    assert_df_equality(got, expected, ignore_nullable=True)


def test_is_valid_gives_the_same_verdict_as_an_empty_reasons_list(spark):
    """The sessions query skips invalid events with the one-boolean form of the rule table."""
    values = [_msg(), "not json", _msg(price=0), _msg(price="n/a"), _msg(event_type="checkout"),
              _msg(user_session=None), _msg(event_time="2030-01-01T00:00:00Z"), _msg(product_id=-1), _msg(brand=None)]
    rules = load_rules()
    df = with_reasons(parse_events(_bronze(spark, values)), rules).withColumn("ok", is_valid(rules))
    got = [(r["ok"], r["reasons"] == []) for r in df.orderBy("offset").collect()]
    assert [a for a, _ in got] == [b for _, b in got] == [True, False, False, False, False, False, False, False, True]


def test_csv_rows_are_judged_as_their_bronze_json_would_be(spark):
    """The backfill judges CSV fields directly (``parse_csv_rows``) instead of parsing bronze's JSON back
    (``parse_events``): both must give the same columns and values, row for row, whatever the fields."""
    from lib.batch.backfill import CSV_READ_SCHEMA, csv_rows
    from lib.transforms.silver import judged_rows, parse_csv_rows

    good = ["2019-10-01 00:00:07 UTC", "cart", "5881589", "2151191071051219817", "", "lovely", "13.48",
            "429681830", "49e8d843-adf3-428b-a2c3-fe8bc6a307c9", None]
    variants = [
        good,
        [None, *good[1:]],                                           # missing time
        ["2019-10-01 00:00:07", *good[1:]],                          # no zone
        ["2019-10-01T00:00:07+02:00", *good[1:]],                    # ISO with offset
        [good[0], "buy", *good[2:]],                                 # unknown type
        [*good[:2], "abc", *good[3:]],                               # bad product id
        [*good[:2], "  ", *good[3:]],                                # blank product id
        [*good[:4], None, None, None, *good[7:]],                    # nulls where optional
        [*good[:6], "-1.005", *good[7:]],                            # price rounding
        [*good[:7], "0", *good[8:]],                                 # user id 0
        [*good[:8], None, None],                                     # no session
        [*good[:9], "surplus"],                                      # a field too many
        [good[0], good[1], *good[2:5], "é \"quoted\" \\ \u2028", *good[6:]],  # text JSON must escape
        [*good[:5], "x" * 70_000, *good[6:]],                        # over MAX_RECORD_BYTES as JSON
        [None] * 10,                                                 # an empty line's fields
    ]
    raw = spark.createDataFrame(variants, CSV_READ_SCHEMA)
    rows = csv_rows(raw, "backfill:x.csv:abc", dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC))
    from_csv = judged_rows(with_reasons(parse_csv_rows(rows), load_rules()))
    from_json = judged_rows(with_reasons(parse_events(rows.select(
        "key", "value", "topic", "partition", "offset", "kafka_timestamp", "ingest_time")), load_rules()))
    assert_df_equality(from_csv, from_json, ignore_row_order=True, ignore_nullable=True)
    reasons = [r["reasons"] for r in from_csv.orderBy("offset").collect()]
    assert reasons[0] == [] and reasons[-1] and "oversized_record" in reasons[-2]
