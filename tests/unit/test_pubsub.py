"""lib.data.pubsub: message building and publisher bookkeeping.

No Pub/Sub endpoint is reachable here (no emulator, no network), so the publishing path is tested
with a fake ``PublisherClient`` injected through ``client=``: it records what would be sent and lets
a test make individual publishes fail. Only the last test touches the real ``google-cloud-pubsub``
library (skipped when it is not installed): it builds a real client against an emulator address
and checks the topic path, which needs no connection.
"""

from __future__ import annotations

import concurrent.futures

import pytest

from lib.data.pubsub import KEY_ATTRIBUTE, PubSubPublisher


class FakeClient:
    def __init__(self, fail_on: set[bytes] | None = None):
        self.sent: list[dict] = []
        self.resumed: list[tuple[str, str]] = []
        self.stopped = False
        self.fail_on = fail_on or set()

    @staticmethod
    def topic_path(project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic, data, ordering_key="", **attrs):
        self.sent.append({"topic": topic, "data": data, "ordering_key": ordering_key, "attrs": attrs})
        future: concurrent.futures.Future = concurrent.futures.Future()
        if data in self.fail_on:
            future.set_exception(RuntimeError("publish rejected"))
        else:
            future.set_result(str(len(self.sent)))
        return future

    def resume_publish(self, topic, ordering_key):
        self.resumed.append((topic, ordering_key))

    def stop(self):
        self.stopped = True


def test_build_message_key_becomes_attribute_and_ordering_key():
    msg = PubSubPublisher.build_message(b"512345", b'{"event_type":"cart"}')
    assert msg == {"data": b'{"event_type":"cart"}', KEY_ATTRIBUTE: "512345", "ordering_key": "512345"}


def test_build_message_without_key_or_ordering():
    assert PubSubPublisher.build_message(None, b"v") == {"data": b"v"}
    assert PubSubPublisher.build_message(b"7", b"v", ordering=False) == {"data": b"v", KEY_ATTRIBUTE: "7"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (b"k", b"", "non-empty"),
        (b"k", "text", "non-empty bytes"),
        (b"\xff\xfe", b"v", "UTF-8"),
        (b"x" * 1025, b"v", "exceeds 1024"),
    ],
)
def test_build_message_rejects_bad_input(key, value, message):
    with pytest.raises(ValueError, match=message):
        PubSubPublisher.build_message(key, value)


def test_publish_and_flush_send_exact_bytes_to_the_topic():
    client = FakeClient()
    pub = PubSubPublisher("my-proj", "shop-dev-events-ingest", client=client)
    pub.publish(b"1", b'{"a":1}')
    pub.publish(None, b'{"a":2}')
    assert pub.flush() == 0
    assert client.sent == [
        {
            "topic": "projects/my-proj/topics/shop-dev-events-ingest",
            "data": b'{"a":1}',
            "ordering_key": "1",
            "attrs": {"key": "1"},
        },
        {
            "topic": "projects/my-proj/topics/shop-dev-events-ingest",
            "data": b'{"a":2}',
            "ordering_key": "",
            "attrs": {},
        },
    ]


def test_full_topic_name_is_used_as_is():
    pub = PubSubPublisher("ignored", "projects/other/topics/t", client=FakeClient())
    assert pub.topic_path == "projects/other/topics/t"


def test_flush_counts_failures_and_resumes_each_paused_ordering_key_once():
    client = FakeClient(fail_on={b"bad1", b"bad2"})
    pub = PubSubPublisher("p", "t", client=client)
    for key, value in [(b"u1", b"ok"), (b"u2", b"bad1"), (b"u2", b"bad2"), (b"u3", b"ok2")]:
        pub.publish(key, value)
    assert pub.flush() == 2
    assert client.resumed == [("projects/p/topics/t", "u2")]
    assert pub.flush() == 0  # nothing pending any more


def test_close_flushes_stops_and_refuses_more():
    client = FakeClient()
    with PubSubPublisher("p", "t", client=client) as pub:
        pub.publish(b"1", b"v")
    assert client.stopped
    with pytest.raises(RuntimeError, match="closed"):
        pub.publish(b"1", b"v")
    pub.close()  # idempotent


def test_constructor_validates_names():
    with pytest.raises(ValueError):
        PubSubPublisher("", "t", client=FakeClient())


def test_real_client_builds_topic_path_without_network(monkeypatch):
    pytest.importorskip("google.cloud.pubsub_v1")
    # With an emulator address the library needs no credentials and connects lazily.
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    pub = PubSubPublisher("my-proj", "events-ingest")
    assert pub.topic_path == "projects/my-proj/topics/events-ingest"
    pub._client.stop()
