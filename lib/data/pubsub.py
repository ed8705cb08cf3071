"""Publish events to a Pub/Sub topic (the GCP ingestion path for the replayer).

On Google Cloud a shop whose front end publishes to Pub/Sub sends its events to the topic created by
Terraform (``terraform output pubsub_ingest_topic``); a Managed Kafka Connect *Pub/Sub source
connector* forwards them into the Kafka ``events`` topic (terraform/kafka.tf). The connector takes
the Kafka record key from the message attribute ``key`` and copies the message body byte for byte,
so a message published here becomes exactly the Kafka record the local replayer would produce
(key = user_id, value = the JSON event).

``PubSubPublisher`` implements the replayer's ``Publisher`` protocol (``publish``/``flush``) plus
``close``. ``google-cloud-pubsub`` is imported lazily, so this module imports without it; tests
inject a fake client through ``client=``.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

KEY_ATTRIBUTE = "key"
# Pub/Sub limits: ordering keys up to 1024 bytes, attribute values up to 1024 bytes.
MAX_KEY_BYTES = 1024
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
_PRUNE_EVERY = 10_000


class PubSubPublisher:
    """Publishes ``(key, value)`` pairs to ``projects/<project>/topics/<topic>``.

    The key (the user id) is sent twice: as the attribute ``key`` (which the Kafka Connect source
    connector turns into the Kafka record key) and, with ``ordering=True``, as the ordering key, so
    one user's events reach the subscription — and Kafka — in publish order.
    """

    def __init__(self, project: str, topic: str, *, ordering: bool = True, client: Any | None = None):
        if not project or not topic:
            raise ValueError("PubSubPublisher needs a project and a topic")
        self.ordering = ordering
        if client is None:
            try:
                # deferred: google-cloud-pubsub is optional (requirements/dev.txt only); ImportError handled below
                from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # no py.typed in google-cloud-pubsub
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise RuntimeError(
                    "publishing to Pub/Sub needs the google-cloud-pubsub package (pip install google-cloud-pubsub)"
                ) from exc
            client = pubsub_v1.PublisherClient(
                publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=ordering)
            )
        self._client = client
        # A full resource name is accepted as well as a bare topic id.
        self.topic_path = topic if topic.startswith("projects/") else client.topic_path(project, topic)
        self._pending: list[tuple[Any, str]] = []
        self._closed = False

    @staticmethod
    def build_message(key: bytes | None, value: bytes, *, ordering: bool = True) -> dict[str, Any]:
        """The keyword arguments of ``PublisherClient.publish`` for one event (no I/O)."""
        if not isinstance(value, (bytes, bytearray)) or not value:
            raise ValueError("a Pub/Sub message needs a non-empty bytes value")
        if len(value) > MAX_MESSAGE_BYTES:
            raise ValueError(f"message of {len(value)} bytes exceeds the Pub/Sub limit of {MAX_MESSAGE_BYTES}")
        message: dict[str, Any] = {"data": bytes(value)}
        if key is not None:
            if len(key) > MAX_KEY_BYTES:
                raise ValueError(f"key of {len(key)} bytes exceeds {MAX_KEY_BYTES} bytes")
            try:
                text = bytes(key).decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("the key must be UTF-8 text (it becomes a Pub/Sub attribute)") from None
            message[KEY_ATTRIBUTE] = text
            if ordering and text:
                message["ordering_key"] = text
        return message

    def publish(self, key: bytes | None, value: bytes) -> None:
        if self._closed:
            raise RuntimeError("publisher is closed")
        message = self.build_message(key, value, ordering=self.ordering)
        data = message.pop("data")
        future = self._client.publish(self.topic_path, data, **message)
        self._pending.append((future, message.get("ordering_key", "")))
        if len(self._pending) % _PRUNE_EVERY == 0:
            self._pending = [(f, k) for f, k in self._pending if not f.done() or _failed(f)]

    def flush(self, timeout: float = 60.0) -> int:
        """Wait until every published message is acknowledged; return how many were not delivered."""
        failed = 0
        resumed: set[str] = set()
        for future, ordering_key in self._pending:
            try:
                future.result(timeout=timeout)
            except Exception as exc:  # noqa: BLE001 - any publish error counts as not delivered
                failed += 1
                log.warning("pubsub publish failed: %s", exc)
                # After an error Pub/Sub pauses publishing for that ordering key until resumed.
                if ordering_key and ordering_key not in resumed:
                    self._client.resume_publish(self.topic_path, ordering_key)
                    resumed.add(ordering_key)
        self._pending = []
        return failed

    def close(self) -> None:
        if self._closed:
            return
        undelivered = self.flush()
        if undelivered:
            log.warning("pubsub: %d message(s) not delivered", undelivered)
        self._client.stop()
        self._closed = True

    def __enter__(self) -> PubSubPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _failed(future: Any) -> bool:
    try:
        return future.exception(timeout=0) is not None
    except Exception:  # noqa: BLE001
        return True
