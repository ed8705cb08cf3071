"""Replay an event file (real or generated) into Kafka.

Paced (default, ``--speedup 1`` = real time): event *i* is published at
``start + (t_i - t_0) / speedup`` on the wall clock and its ``event_time`` is re-timed to that
moment, so downstream the events look live. ``--speedup 60`` plays an hour in a minute.

As fast as possible (``--speedup 0``): no waiting; event times are kept, or with
``--shift-to-now`` shifted so that the last event happens now (sessions keep their shape).
``--max-rate`` caps events/s in both modes. Message key = user_id, value = the wire JSON
(lib.schema). Rows whose time does not parse are published at once with their raw values so the
streaming validation quarantines them: nothing is dropped here. Lines the loader cannot turn into
rows (not UTF-8, over 64 KiB, not CSV: :class:`lib.data.files.RawLine`) are published as their raw
bytes (no key), so the rule table judges them like any hostile producer's message. ``--shift-to-now``
anchors on the newest row that passes the rule table's row checks (:func:`last_valid_event_time`),
so a hostile row dated 9999 cannot push every event out of range.

The command line is ``python -m tools.replay FILE ... [--speedup X]`` (``make replay``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

from lib.config import ConfigError
from lib.data.files import RawLine, iter_rows
from lib.limits import MAX_TEXT_FIELD_CHARS, TOPIC_MAX_MESSAGE_BYTES
from lib.schema import EVENT_TYPES, csv_row_to_wire, encode_wire, parse_csv_time, wire_key


class Publisher(Protocol):
    def publish(self, key: bytes | None, value: bytes) -> None: ...
    def flush(self, timeout: float = 60.0) -> int: ...  # returns messages not delivered


class KafkaPublisher:
    """confluent-kafka producer: idempotent, acks=all, lz4, small linger for low latency."""

    def __init__(self, client_options: Mapping[str, str], topic: str, linger_ms: int = 5):
        opts = {k: v for k, v in client_options.items() if not k.startswith("sasl.login.callback")}
        if client_options.get("sasl.mechanism") == "OAUTHBEARER":
            raise ConfigError("config error: kafka.auth=gcp_oauth: the replayer publishes to a local "
                              "broker only; on GCP publish through Pub/Sub (--target pubsub)")
        self.topic = topic
        self.failed = 0
        self._producer = Producer({
            **opts,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
            # the events topic takes messages up to this size (lib.kafka_admin.ensure_topic): hostile
            # lines published as raw bytes reach quarantine instead of failing here
            "message.max.bytes": TOPIC_MAX_MESSAGE_BYTES,
            "log_level": 3,  # errors only; transient warnings (e.g. coordinator loading) are noise
        })

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self.failed += 1

    def publish(self, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: let the producer drain
                self._producer.poll(0.1)
            except KafkaException as exc:  # over message.max.bytes: refused here, counted as undelivered
                if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                self.failed += 1
                print(f"[replay] a message of {len(value) + len(key or b'')} bytes is over the "
                      f"{TOPIC_MAX_MESSAGE_BYTES}-byte message limit: not published", file=sys.stderr)
                break
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> int:
        remaining = self._producer.flush(timeout)
        return remaining + self.failed


@dataclass
class ReplayStats:
    published: int = 0
    undelivered: int = 0
    unparsable_time: int = 0
    raw_lines: int = 0  # lines published as raw bytes (not UTF-8, oversized, not CSV)
    seconds: float = 0.0
    first_publish: float | None = None
    last_event_time: datetime | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds > 0 else 0.0


class RateLimiter:
    """At most ``rate`` events per second (sleeps in small steps)."""

    def __init__(self, rate: float | None, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.start: float | None = None
        self.n = 0

    def wait(self) -> None:
        if not self.rate:
            return
        now = self.clock()
        if self.start is None:
            self.start = now
        due = self.start + self.n / self.rate
        if due > now:
            self.sleep(due - now)
        self.n += 1


def _row_time(row: Mapping[str, str]) -> datetime | None:
    try:
        return parse_csv_time(row.get("event_time") or "")
    except ValueError:
        return None


def last_event_time(path: str | Path) -> datetime | None:
    """The newest readable time of any row of the file (raw lines have none)."""
    last = None
    for row in iter_rows(path):
        t = None if isinstance(row, RawLine) else _row_time(row)
        if t is not None and (last is None or t > last):
            last = t
    return last


_EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
_MAX_ID = 2**63 - 1


def _positive_id(raw: str | None) -> bool:
    try:
        return 0 < int(raw or "") <= _MAX_ID
    except ValueError:
        return False


def row_time_if_valid(row: Mapping[str, str] | RawLine, now: datetime) -> datetime | None:
    """The row's time if the row would pass the rule table (conf/quality_rules.yaml) when published
    ``now``, else None. A Python mirror of the row-level rules, used only to anchor times taken from a
    file (``--shift-to-now``); the streaming app's verdict is the one that counts."""
    if isinstance(row, RawLine) or None in row:
        return None
    t = _row_time(row)
    if t is None or t < _EARLIEST or t > now + timedelta(hours=1):
        return None
    if row.get("event_type") not in EVENT_TYPES or not (row.get("user_session") or "").strip():
        return None
    if not (_positive_id(row.get("product_id")) and _positive_id(row.get("user_id"))):
        return None
    if (row.get("category_id") or "").strip() and not _positive_id(row.get("category_id")):
        return None
    try:
        price = round(float(row.get("price") or ""), 2)
    except ValueError:
        return None
    if not (math.isfinite(price) and 0 < price <= 10000):
        return None
    texts = [row.get(c) or "" for c in ("category_code", "brand", "user_session")]
    if any(len(v) > MAX_TEXT_FIELD_CHARS for v in texts):
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 or 0x200B <= ord(ch) <= 0x200F or 0x202A <= ord(ch) <= 0x202E
           or 0x2060 <= ord(ch) <= 0x2069 or ord(ch) == 0xFEFF for v in texts for ch in v):
        return None
    return t


def last_valid_event_time(path: str | Path, now: datetime | None = None) -> datetime | None:
    """The newest time among the file's rows that pass the rule table (:func:`row_time_if_valid`)."""
    now = now or datetime.now(timezone.utc)
    times = (row_time_if_valid(row, now) for row in iter_rows(path))
    return max((t for t in times if t is not None), default=None)


def replay(rows: Iterable[Mapping[str, str] | RawLine], publisher: Publisher, *, speedup: float = 1.0,
           max_rate: float | None = None, shift: timedelta | None = None,
           clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
           on_progress: Callable[[int], None] | None = None) -> ReplayStats:
    """Publish ``rows`` (CSV dicts; :class:`RawLine` as raw bytes). ``speedup > 0`` paces and re-times to the wall clock;
    ``speedup == 0`` publishes as fast as possible, times kept (plus ``shift`` if given)."""
    if speedup < 0:
        raise ValueError("speedup must be >= 0")
    stats = ReplayStats()
    limiter = RateLimiter(max_rate, clock, sleep)
    wall0: float | None = None
    t0: datetime | None = None
    started = clock()
    for row in rows:
        if isinstance(row, RawLine):  # published as it is, at once: the rule table judges the bytes
            limiter.wait()
            publisher.publish(None, row.data)
            stats.published += 1
            stats.raw_lines += 1
            if stats.first_publish is None:
                stats.first_publish = clock()
            if on_progress is not None:
                on_progress(1)
            continue
        t = _row_time(row)
        new_time = None
        if t is None:
            stats.unparsable_time += 1
        elif speedup > 0:
            if t0 is None or wall0 is None:  # set together, on the first timed row
                t0, wall0 = t, clock()
            due = wall0 + (t - t0).total_seconds() / speedup
            delay = due - clock()
            if delay > 0:
                sleep(delay)
            new_time = datetime.fromtimestamp(max(due, wall0), tz=timezone.utc)
        elif shift is not None:
            new_time = t + shift
        limiter.wait()
        event = csv_row_to_wire(row, event_time=new_time)
        if None in row:  # extra fields: keep them so nothing is silently lost
            event["_extra"] = row[None]  # type: ignore[index]
        publisher.publish(wire_key(event), encode_wire(event))
        stats.published += 1
        if stats.first_publish is None:
            stats.first_publish = clock()
        stats.last_event_time = new_time or t or stats.last_event_time
        if on_progress is not None:
            on_progress(1)
    stats.undelivered = publisher.flush()
    stats.seconds = clock() - started
    return stats
