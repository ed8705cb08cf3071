"""Kafka -> bronze, silver, quarantine, gold, ops through the real broker and the real streaming app,
with a SIGKILL of its process group in the middle of both the bronze and the lakehouse query: every
record accounted for exactly once, in bronze (each Kafka position once, raw value and ingest time kept)
and downstream; events published after the restart are picked up too."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import pyarrow.compute as pc
import pytest

from lib.data.files import iter_rows
from lib.data.generator.writers import write_csv
from lib.data.replayer import KafkaPublisher, replay
from lib.kafka_admin import ensure_topic
from lib.schema import STATS_COLUMNS, table_properties
from tests.helpers import delta_count, delta_rows, kill_group, start_app, stats_columns, wait_for

pytestmark = pytest.mark.integration


def _ops_read(path) -> int:
    t = delta_rows(path, columns=["read"])
    return 0 if t is None else int(pc.sum(t.column("read")).as_py() or 0)


def test_stream_accounts_for_every_record_across_a_crash(kafka_broker, topic, tmp_path):
    csv = tmp_path / "events.csv"
    write_csv(csv, rows=4000, seed=3, start="2026-11-27", days=20 / 1440)
    rows = list(iter_rows(csv))
    rows.insert(100, dict(rows[100], price="abc"))          # non-numeric price
    rows.insert(200, dict(rows[200], event_type="refund"))  # unknown type
    n = len(rows)
    ensure_topic(kafka_broker, topic, partitions=2)
    last = datetime.strptime(rows[-1]["event_time"], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=timezone.utc)
    stats = replay(rows, KafkaPublisher({"bootstrap.servers": kafka_broker}, topic), speedup=0,
                   shift=datetime.now(timezone.utc) - last - timedelta(seconds=5))
    assert stats.published == n and stats.undelivered == 0

    lake = tmp_path / "lake"
    env = {
        "SHOP__KAFKA__BOOTSTRAP_SERVERS": kafka_broker, "SHOP__KAFKA__TOPIC": topic,
        # small batches so that the kill lands in the middle of both queries
        "SHOP__KAFKA__MAX_OFFSETS_PER_TRIGGER": "200", "SHOP__STREAMING__TRIGGER_SECONDS": "0.5",
        "SHOP__STREAMING__BRONZE_TRIGGER_SECONDS": "0.5",
        "SHOP__LAKE__ROOT": str(lake), "SHOP__LAKE__CHECKPOINTS": str(tmp_path / "checkpoints"),
        "SHOP__PATHS__RUN_DIR": str(tmp_path / "run"), "SHOP__SPARK__SHUFFLE_PARTITIONS": "2",
    }
    ops = lake / "ops" / "quality_batches"
    log = tmp_path / "app.log"
    app = start_app(env, log, "--queries", "bronze,lakehouse")
    try:
        wait_for(lambda: _ops_read(ops) > 0, timeout=240, what=f"a first lakehouse batch (log: {log})")
    finally:
        kill_group(app, signal.SIGKILL)
    assert _ops_read(ops) < n, "the kill should land mid-stream"
    assert 0 < delta_count(lake / "bronze" / "events") < n, "the kill should land mid-stream in bronze too"

    # after the restart, batches five times larger: Spark re-runs the batch the kill interrupted with
    # the offsets its log planned (exactly once whatever the new limit), then reads the rest in a few
    env["SHOP__KAFKA__MAX_OFFSETS_PER_TRIGGER"] = "1000"
    app = start_app(env, log, "--queries", "bronze,lakehouse")
    try:
        wait_for(lambda: _ops_read(ops) >= n and delta_count(lake / "bronze" / "events") >= n, timeout=300,
                 what=f"all {n} records processed (log: {log})")
        # events published after the restart are picked up too
        more = [dict(r, user_session=f"late-{i}") for i, r in enumerate(rows[-300:])]
        assert replay(more, KafkaPublisher({"bootstrap.servers": kafka_broker}, topic), speedup=0,
                      shift=datetime.now(timezone.utc) - last - timedelta(seconds=5)).published == len(more)
        n += len(more)
        wait_for(lambda: _ops_read(ops) >= n and delta_count(lake / "bronze" / "events") >= n, timeout=120,
                 what=f"the {len(more)} later records (log: {log})")
    finally:
        kill_group(app, signal.SIGTERM)

    table = delta_rows(lake / "bronze" / "events")
    positions = set(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist(), strict=True))
    assert len(positions) == table.num_rows, "duplicate (partition, offset) in bronze"
    assert set(table.column("topic").to_pylist()) == {topic} and table.column("ingest_time").null_count == 0
    assert all(v.startswith("{") for v in table.column("value").to_pylist())
    bronze = table.num_rows
    silver = delta_rows(lake / "silver" / "events")
    quarantine = delta_rows(lake / "quarantine" / "events")
    o = delta_rows(ops)
    totals = {c: int(pc.sum(o.column(c)).as_py()) for c in ("read", "valid", "quarantined", "duplicates")}
    assert bronze == n
    assert totals["read"] == n, "a batch was processed twice or not at all"
    assert totals["valid"] == silver.num_rows and totals["quarantined"] == quarantine.num_rows
    assert bronze == silver.num_rows + quarantine.num_rows + totals["duplicates"]
    assert totals["duplicates"] > 0
    assert len(set(silver.column("event_key").to_pylist())) == silver.num_rows, "duplicate in silver"
    # bronze created by the streaming app before its sink's first commit: statistics on STATS_COLUMNS only
    for name in ("bronze/events", "silver/events"):
        props, with_stats = stats_columns(lake / name)
        assert props == table_properties(name) and with_stats == set(STATS_COLUMNS[name]), name
    reasons = [r for rs in quarantine.column("reasons").to_pylist() for r in rs]
    assert "non_numeric_price" in reasons and "unknown_event_type" in reasons

    purchases = silver.filter(pc.equal(silver.column("event_type"), "purchase"))
    daily = delta_rows(lake / "gold" / "sales_daily")
    assert int(pc.sum(daily.column("units")).as_py()) == purchases.num_rows
    assert round(pc.sum(daily.column("revenue")).as_py(), 2) == round(pc.sum(purchases.column("price")).as_py(), 2)
