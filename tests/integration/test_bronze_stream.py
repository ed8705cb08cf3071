"""Kafka -> bronze through the real broker and the real streaming app (a separate process)."""

from __future__ import annotations

import signal

import pytest

from lib.data.replayer import KafkaPublisher, replay
from lib.kafka_admin import ensure_topic
from tests.helpers import delta_count, delta_rows, kill_group, start_app, wait_for

pytestmark = pytest.mark.integration


def _rows(n: int):
    for i in range(n):
        yield {"event_time": f"2019-10-01 00:{i // 60 % 60:02d}:{i % 60:02d} UTC", "event_type": "view",
               "product_id": str(1000 + i % 50), "category_id": "1487580005134238553", "category_code": "",
               "brand": "runail", "price": "2.50", "user_id": str(500000 + i % 97), "user_session": f"s-{i % 31}"}


def _publish(bootstrap: str, topic: str, n: int) -> None:
    stats = replay(_rows(n), KafkaPublisher({"bootstrap.servers": bootstrap}, topic), speedup=0)
    assert stats.published == n and stats.undelivered == 0


def test_n_published_is_exactly_n_in_bronze_even_after_sigkill(kafka_broker, topic, tmp_path):
    n = 6000
    ensure_topic(kafka_broker, topic, partitions=3)
    _publish(kafka_broker, topic, n)
    env = {
        "SHOP__KAFKA__BOOTSTRAP_SERVERS": kafka_broker,
        "SHOP__KAFKA__TOPIC": topic,
        # small batches so the kill lands in the middle of the stream
        "SHOP__KAFKA__MAX_OFFSETS_PER_TRIGGER": "300",
        "SHOP__STREAMING__TRIGGER_SECONDS": "0.2",
        "SHOP__STREAMING__BRONZE_TRIGGER_SECONDS": "0.2",  # this test runs the bronze query alone
        "SHOP__LAKE__ROOT": str(tmp_path / "lake"),
        "SHOP__LAKE__CHECKPOINTS": str(tmp_path / "checkpoints"),
        "SHOP__PATHS__RUN_DIR": str(tmp_path / "run"),
        "SHOP__SPARK__SHUFFLE_PARTITIONS": "2",
    }
    bronze = tmp_path / "lake" / "bronze" / "events"
    log = tmp_path / "app.log"
    app = start_app(env, log, "--queries", "bronze")
    try:
        wait_for(lambda: delta_count(bronze) > 0, timeout=180, what=f"first bronze rows (log: {log})")
    finally:
        kill_group(app, signal.SIGKILL)
    at_kill = delta_count(bronze)
    assert 0 < at_kill < n, "the kill should land mid-stream; lower maxOffsetsPerTrigger if this fails"

    app = start_app(env, log, "--queries", "bronze")
    try:
        wait_for(lambda: delta_count(bronze) >= n, timeout=240, what=f"all {n} rows in bronze (log: {log})")
        # more events after the restart are picked up too
        _publish(kafka_broker, topic, 500)
        wait_for(lambda: delta_count(bronze) >= n + 500, timeout=120, what="the late events")
    finally:
        kill_group(app, signal.SIGTERM)

    table = delta_rows(bronze)
    assert table.num_rows == n + 500
    keys = set(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    assert len(keys) == n + 500, "duplicate (partition, offset) in bronze"
    assert set(table.column("topic").to_pylist()) == {topic}
    assert all(v.startswith("{") for v in table.column("value").to_pylist())
    assert table.column("ingest_time").null_count == 0
