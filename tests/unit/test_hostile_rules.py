"""Hostile input (issue #14) without services: the corpus judged by the rule table on a Spark DataFrame,
the byte bounds of what quarantine keeps and the driver collects, and property-based tests (hypothesis)
of the parser + rule table and of the file loader: any input is a valid event or quarantined with at
least one reason, never an exception. Examples are batched into one DataFrame per hypothesis example."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from lib.data.files import RawLine, count_rows, iter_rows
from lib.limits import MAX_RECORD_BYTES, MAX_TEXT_FIELD_CHARS, QUARANTINE_KEY_BYTES, QUARANTINE_VALUE_BYTES
from lib.quality import RULES_FILE, load_rules, with_reasons
from lib.schema import CSV_COLUMNS, EVENT_TYPES
from lib.transforms.silver import judged_rows, parse_events
from tests.hostile import corpus, good_event, kafka_kinds

BRONZE_DDL = ("key binary, value binary, topic string, partition int, offset long, "
              "kafka_timestamp timestamp, ingest_time timestamp")
NOW = datetime.now(timezone.utc).replace(microsecond=0)
EXAMPLES = {"messages": 0, "files": 0}


def _bronze(spark, messages: list[tuple[bytes | None, bytes | None]]):
    t = NOW.replace(tzinfo=None)
    df = spark.createDataFrame([(k, v, "events", 0, i, t, t) for i, (k, v) in enumerate(messages)], BRONZE_DDL)
    # as bronze does it (lib.transforms.bronze): binary -> string, bytes kept as they are
    return df.withColumn("key", F.col("key").cast("string")).withColumn("value", F.col("value").cast("string"))


def _judged(spark, messages):
    return with_reasons(parse_events(_bronze(spark, messages)), load_rules())


def test_corpus_has_at_least_30_kinds_with_known_reasons():
    kinds = corpus(NOW)
    assert len(kinds) >= 30 and len({k.name for k in kinds}) == len(kinds)
    names = {r.name for r in load_rules().active}
    for k in kinds:
        assert set(k.reasons) <= names and set(k.expected_csv) <= names, k.name


def test_every_kind_gets_exactly_its_reasons(spark):
    kinds = kafka_kinds(NOW)
    rows = _judged(spark, [(k.key, k.value) for k in kinds]).select("offset", "reasons").orderBy("offset").collect()
    got = {k.name: tuple(r["reasons"]) for k, r in zip(kinds, rows, strict=True)}
    assert got == {k.name: k.reasons for k in kinds}


def test_quarantine_keeps_a_bounded_valid_prefix_and_valid_rows_collect_no_message(spark):
    kinds = kafka_kinds(NOW)
    judged = judged_rows(_judged(spark, [(k.key, k.value) for k in kinds]))
    rows = judged.select(
        "offset", F.octet_length("value").alias("v"), F.octet_length("key").alias("k"),
        F.is_valid_utf8("value").alias("utf8"), "event_type", F.size("reasons").alias("n"),
    ).orderBy("offset").collect()
    for k, r in zip(kinds, rows, strict=True):
        if k.reasons:
            assert r["event_type"] is None, k.name  # bad rows carry no event fields to the driver
            if k.value is not None:
                assert r["utf8"] and r["v"] <= QUARANTINE_VALUE_BYTES + 2, k.name
            if k.value is not None and len(k.value) <= QUARANTINE_VALUE_BYTES and b"\xff" not in k.value:
                assert r["v"] == len(k.value), f"{k.name}: a small valid message is kept whole"
            assert r["k"] is None or r["k"] <= QUARANTINE_KEY_BYTES + 2
        else:
            assert r["v"] is None and r["k"] is None and r["event_type"] == "purchase", k.name


def test_the_rule_table_repeats_the_python_byte_bounds():
    text = RULES_FILE.read_text()
    assert f"value_bytes > {MAX_RECORD_BYTES}\"" in text
    assert f") > {MAX_TEXT_FIELD_CHARS}\"" in text


# --- property-based: the parser + rule table ---------------------------------------------------------
_text = st.text(st.characters(codec="utf-8"), max_size=40)
_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), _text)
_field_value = st.one_of(_scalar, st.lists(_scalar, max_size=3), st.dictionaries(_text, _scalar, max_size=3))


@st.composite
def _json_event(draw) -> bytes:
    """A JSON object near the contract: each field kept, dropped or replaced by anything; extra keys."""
    event = good_event(NOW)
    for name in CSV_COLUMNS:
        choice = draw(st.integers(0, 3))
        if choice == 1:
            event.pop(name)
        elif choice == 2:
            event[name] = draw(_field_value)
        elif choice == 3 and name == "event_type":
            event[name] = draw(st.sampled_from(EVENT_TYPES))
    if draw(st.booleans()):
        event.update(draw(st.dictionaries(_text, _scalar, max_size=2)))
    return json.dumps(event, allow_nan=True).encode()  # NaN/Infinity tokens on purpose


_message = st.one_of(
    _json_event(),
    st.binary(max_size=300),
    _text.map(str.encode),
    st.builds(lambda b, cut: b[:cut], _json_event(), st.integers(0, 300)),  # truncated JSON
    st.none(),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.one_of(st.none(), st.binary(max_size=20)), _message), min_size=20, max_size=80))
def test_any_message_is_a_valid_event_or_quarantined_with_a_reason(spark, messages):
    EXAMPLES["messages"] += len(messages)
    rows = judged_rows(_judged(spark, messages)).select(
        "reasons", "event_time", "event_type", "product_id", "user_id", "price", "user_session",
        F.octet_length("value").alias("v"), F.octet_length("key").alias("k"),
    ).collect()
    assert len(rows) == len(messages)
    for r in rows:
        assert r["reasons"] is not None
        if r["reasons"]:
            assert r["v"] is None or r["v"] <= QUARANTINE_VALUE_BYTES + 2
        else:  # a valid event is a whole, typed event
            assert r["event_time"] is not None and r["event_type"] in EVENT_TYPES
            assert r["product_id"] > 0 and r["user_id"] > 0 and r["user_session"]
            assert r["price"] is not None and 0 < r["price"] <= 10000
            assert r["v"] is None


# --- property-based: the loader ------------------------------------------------------------------------
_line = st.one_of(
    st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")),
    st.lists(st.one_of(_text, st.binary(max_size=10).map(lambda b: b.decode("latin-1"))), min_size=0, max_size=12)
    .map(lambda fs: ",".join(fs).replace("\n", "").encode("utf-8", "surrogatepass")),
    st.just(b"x" * (MAX_RECORD_BYTES + 1)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(_line, max_size=30), st.sampled_from([b"\n", b"\r\n"]))
def test_the_loader_never_stops_on_a_bad_line(tmp_path, lines, eol):
    EXAMPLES["files"] += 1
    path = tmp_path / "events.csv"
    path.write_bytes(eol.join([",".join(CSV_COLUMNS).encode(), *lines]) + eol)
    records = list(iter_rows(path))
    non_blank = [ln for ln in lines if ln.strip(b"\r")]
    assert len(records) == count_rows(path)
    assert len(records) <= len(non_blank)  # only blank(-looking) lines are skipped
    for rec in records:
        if isinstance(rec, RawLine):
            assert rec.reason in ("invalid_encoding", "oversized_record", "malformed_csv")
            assert rec.data in non_blank or rec.data + b"\r" in non_blank
        else:
            assert set(rec) <= {*CSV_COLUMNS, None}


def test_a_line_over_pythons_csv_field_limit_is_a_raw_record_not_an_error(tmp_path):
    """A field over the csv module's 128 KiB limit used to raise _csv.Error and stop the file."""
    good = "2019-10-01 00:00:00 UTC,view,5802432,1487580009286598681,,,0.32,562076640,09fafd6c"
    path = tmp_path / "x.csv"
    path.write_bytes(b"\n".join([",".join(CSV_COLUMNS).encode(), good.encode(),
                                 good.replace(",0.32,", "," + "9" * 200_000 + ",").encode(),
                                 good.encode().replace(b"view", b"vi\xffew"), good.encode()]) + b"\n")
    recs = list(iter_rows(path))
    assert [r.reason if isinstance(r, RawLine) else "row" for r in recs] == [
        "row", "oversized_record", "invalid_encoding", "row"]
    assert recs[1].size == len(good) - 4 + 200_000 and recs[1].line_no == 3


@pytest.fixture(scope="module", autouse=True)
def _report_examples():
    yield
    print(f"\n[hypothesis] messages judged: {EXAMPLES['messages']}; files loaded: {EXAMPLES['files']}")


def test_unsafe_character_class_matches_the_replayers_mirror():
    """The rule's character class and lib.data.replayer.row_time_if_valid name the same code points."""
    from lib.data import replayer

    rule = next(r for r in load_rules().rules if r.name == "unsafe_characters").when
    ranges = re.findall(r"u([0-9A-F]{4})(?:-\\\\u([0-9A-F]{4}))?", rule)
    assert len(ranges) >= 4
    row = {c: "" for c in CSV_COLUMNS} | {"event_time": "2019-10-01 00:00:00 UTC", "event_type": "view",
                                          "product_id": "1", "user_id": "2", "price": "1.5", "user_session": "s"}
    assert replayer.row_time_if_valid(row, NOW) is not None
    for lo, hi in ranges:
        for cp in {int(lo, 16), int(hi or lo, 16)}:
            assert replayer.row_time_if_valid({**row, "brand": f"a{chr(cp)}b"}, NOW) is None, hex(cp)
