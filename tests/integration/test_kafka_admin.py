"""lib.kafka_admin.ensure_topic against the real broker: new topics get TOPIC_CONFIG, an existing topic
created elsewhere (CreateTime, a small max.message.bytes) is altered in place, its messages kept."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from lib.kafka_admin import admin_client, ensure_topic, topic_configs, topic_message_count
from lib.limits import TOPIC_MAX_MESSAGE_BYTES

pytestmark = pytest.mark.integration


def test_ensure_topic_creates_topics_stamped_by_the_broker(kafka_broker, topic):
    assert ensure_topic(kafka_broker, topic, partitions=2) is True
    configs = topic_configs(kafka_broker, topic)
    assert configs["message.timestamp.type"] == "LogAppendTime"
    assert int(configs["max.message.bytes"]) >= TOPIC_MAX_MESSAGE_BYTES
    assert ensure_topic(kafka_broker, topic, partitions=2) is False  # idempotent

    # a producer whose clock runs an hour fast: the message carries the broker's time, not its own
    producer = Producer({"bootstrap.servers": kafka_broker})
    before = time.time()
    producer.produce(topic, value=b"fast", partition=0, timestamp=int((before + 3600) * 1000))
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": kafka_broker, "group.id": "t-kafka-admin", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = consumer.poll(30)
    finally:
        consumer.close()
    assert msg is not None and msg.error() is None and msg.value() == b"fast"
    kind, ms = msg.timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME and before - 1 <= ms / 1000 <= time.time() + 1


def test_ensure_topic_alters_an_existing_create_time_topic_in_place(kafka_broker, topic):
    client = admin_client(kafka_broker)
    client.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config={
        "message.timestamp.type": "CreateTime", "max.message.bytes": "1048588"})])[topic].result(30)
    producer = Producer({"bootstrap.servers": kafka_broker})
    producer.produce(topic, value=b"kept", timestamp=1)  # a producer clock at 1970
    assert producer.flush(30) == 0
    assert topic_configs(kafka_broker, topic)["message.timestamp.type"] == "CreateTime"

    assert ensure_topic(kafka_broker, topic, partitions=1) is False
    configs = topic_configs(kafka_broker, topic)
    assert configs["message.timestamp.type"] == "LogAppendTime"
    assert int(configs["max.message.bytes"]) >= TOPIC_MAX_MESSAGE_BYTES
    assert topic_message_count(kafka_broker, topic) == 1  # altered, not recreated
