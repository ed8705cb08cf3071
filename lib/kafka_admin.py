"""Small Kafka admin helpers (confluent-kafka): readiness ping, idempotent topic creation.

The command line (used by scripts/kafka.sh) is ``python -m jobs.ops.kafka_admin [--bootstrap HOST:PORT]
ping | ensure-topic [--topic T] [--partitions N] | count [--topic T]``. Defaults come from the config (``kafka.bootstrap_servers``, ``kafka.topic``, ``kafka.partitions``).
Topics are created with ``TOPIC_CONFIG``:

* ``max.message.bytes`` = ``lib.limits.TOPIC_MAX_MESSAGE_BYTES`` (16 MiB), so a 10 MB hostile message
  enters and is quarantined (``oversized_record``) rather than refused;
* ``message.timestamp.type=LogAppendTime``: a message's timestamp is the broker's receive time, never
  the producer's clock. The sessions query clamps event times to it (``lib.sessions.session_events``)
  and the ``future_event_time`` rule judges by it, so a producer whose clock runs fast can neither
  push the watermark ahead (early expiry, dropped events) nor hide a future event time.

An existing topic is brought to the same settings in place (incremental alter config, no recreation,
no data touched): a smaller ``max.message.bytes`` is raised, ``CreateTime`` becomes ``LogAppendTime``.
"""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from lib.limits import TOPIC_MAX_MESSAGE_BYTES

TIMESTAMP_TYPE = "LogAppendTime"  # the broker stamps each message with its receive time
TOPIC_CONFIG = {"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES), "message.timestamp.type": TIMESTAMP_TYPE}


class KafkaUnavailable(RuntimeError):
    """The broker cannot be reached; the message names the address."""


def admin_client(bootstrap: str) -> AdminClient:
    # log_level 0: connection failures are reported once, by us, as one line
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000, "log_level": 0})


def ping(bootstrap: str, timeout: float = 5.0) -> int:
    """Return the number of brokers seen, or raise KafkaUnavailable."""
    try:
        md = admin_client(bootstrap).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka broker at {bootstrap} is not reachable ({exc.args[0]})") from None
    if not md.brokers:
        raise KafkaUnavailable(f"Kafka broker at {bootstrap} reports no brokers")
    return len(md.brokers)


def ensure_topic(bootstrap: str, topic: str, partitions: int, replication: int = 1,
                 timeout: float = 30.0) -> bool:
    """Create ``topic`` if missing (with ``TOPIC_CONFIG``); return True when created. Never shrinks or
    recreates; an existing topic is altered in place to ``TOPIC_CONFIG`` (``_ensure_topic_config``): its
    ``max.message.bytes`` raised when below ``TOPIC_MAX_MESSAGE_BYTES``, its ``message.timestamp.type``
    set to ``LogAppendTime`` when it is ``CreateTime``."""
    client = admin_client(bootstrap)
    try:
        existing = client.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise KafkaUnavailable(f"Kafka broker at {bootstrap} is not reachable ({exc.args[0]})") from None
    if topic in existing:
        _ensure_topic_config(client, topic, timeout)
        return False
    futures = client.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication,
                                             config=dict(TOPIC_CONFIG))])
    try:
        futures[topic].result(timeout)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" in str(exc):
            _ensure_topic_config(client, topic, timeout)
            return False
        raise
    return True


def topic_configs(bootstrap: str, topic: str, timeout: float = 30.0) -> dict[str, str]:
    """The topic's effective configuration (name -> value)."""
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = admin_client(bootstrap)  # kept alive until the future resolves
    return {k: v.value for k, v in client.describe_configs([res])[res].result(timeout).items()}


def topic_max_message_bytes(bootstrap: str, topic: str, timeout: float = 30.0) -> int:
    """The topic's effective ``max.message.bytes``."""
    return int(topic_configs(bootstrap, topic, timeout)["max.message.bytes"])


def _ensure_topic_config(client: AdminClient, topic: str, timeout: float) -> None:
    """Bring an existing topic to ``TOPIC_CONFIG`` with one incremental alter (only the entries that differ;
    ``max.message.bytes`` is only ever raised)."""
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    current = client.describe_configs([res])[res].result(timeout)
    entries = []
    if int(current["max.message.bytes"].value) < TOPIC_MAX_MESSAGE_BYTES:
        entries.append(ConfigEntry("max.message.bytes", str(TOPIC_MAX_MESSAGE_BYTES),
                                   incremental_operation=AlterConfigOpType.SET))
    if current["message.timestamp.type"].value != TIMESTAMP_TYPE:
        entries.append(ConfigEntry("message.timestamp.type", TIMESTAMP_TYPE,
                                   incremental_operation=AlterConfigOpType.SET))
    if not entries:
        return
    client.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic,
                                                     incremental_configs=entries)])[res].result(timeout)


def delete_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> None:
    client = admin_client(bootstrap)
    if topic in client.list_topics(timeout=timeout).topics:
        client.delete_topics([topic])[topic].result(timeout)


def topic_message_count(bootstrap: str, topic: str, timeout: float = 10.0) -> int:
    """Messages currently in the topic (sum over partitions of high - low watermark)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "shop-admin-count",
                         "enable.auto.commit": False})
    try:
        md = consumer.list_topics(topic, timeout=timeout)
        if topic not in md.topics or md.topics[topic].error is not None:
            return 0
        total = 0
        for p in md.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            total += high - low
        return total
    finally:
        consumer.close()
