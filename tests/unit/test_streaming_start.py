"""The streaming app's start while the broker is down (make chaos: a restart beside a broker restart
made the app exit): it waits for the broker to create its tick topic, and gives up in one line."""

from __future__ import annotations

import pytest

from lib import kafka_admin, streaming
from lib.kafka_admin import KafkaUnavailable


def test_the_tick_topic_waits_for_a_broker_that_comes_back(monkeypatch):
    calls = []

    def ensure_topic(bootstrap, topic, partitions, timeout=30.0):
        calls.append(topic)
        if len(calls) < 3:
            raise KafkaUnavailable(f"Kafka broker at {bootstrap} is not reachable (down)")
        return True

    monkeypatch.setattr(kafka_admin, "ensure_topic", ensure_topic)
    streaming._ensure_clock_topic("127.0.0.1:1", "clock", wait_seconds=5, every=0.01)
    assert calls == ["clock"] * 3


def test_it_gives_up_after_the_wait_with_the_broker_named():
    with pytest.raises(KafkaUnavailable, match="127.0.0.1:1"):
        streaming._ensure_clock_topic("127.0.0.1:1", "clock", wait_seconds=0.5, every=0.1)
