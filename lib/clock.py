"""Clock ticks: event time keeps moving while the shop is quiet, so sessions still expire on time.

Spark's watermark only advances when events arrive. When traffic stops, the last sessions would wait
for the next shopper before they expire — and their emails with them. The ticker (a thread of the
streaming app) watches the sessions query: once no new event time has arrived for
``sessions.idle_seconds`` it publishes ticks ``{"event_time": …}`` to ``sessions.clock_topic`` every
``sessions.tick_seconds``, each = the latest event time seen + the wall-clock time since it arrived.
Only the sessions query reads that topic; a tick never runs ahead of the wall clock's advance since
the last real event, so a fast replay of old data is not disturbed (its event times run ahead of
the ticks), and a live shop's watermark follows the wall clock.

Ticks are written with Spark's Kafka sink, so they use exactly the source's connection and auth
(SASL/OAUTHBEARER on Managed Kafka) with no second client to configure.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

log = logging.getLogger("shop.clock")
OBSERVATION = "session_input"  # the observed metric the sessions query reports (max_event_time)


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class ClockTicker(threading.Thread):
    def __init__(self, query, publish, *, idle_seconds: float, tick_seconds: float, watermark_delay_seconds: float,
                 wall=time.time):
        super().__init__(name="clock-ticker", daemon=True)
        self.query, self.publish = query, publish
        self.idle, self.every, self.delay = idle_seconds, tick_seconds, watermark_delay_seconds
        self.wall = wall
        self.stop_event = threading.Event()
        self.latest: datetime | None = None  # latest real event time seen
        self.seen_at: float | None = None  # wall time when it arrived
        self.last_tick: datetime | None = None
        self.active_at: float | None = None  # wall time the last batch with events ended
        self._batch = -1
        self.ticks = 0

    def observe(self, progress: dict) -> None:
        """Take a query progress (dict) into account."""
        if progress["batchId"] <= self._batch:
            return
        self._batch = progress["batchId"]
        at = _parse(progress.get("timestamp"))
        seen = (progress.get("observedMetrics") or {}).get(OBSERVATION, {}).get("max_event_time")
        t = _parse(seen) if isinstance(seen, str) else None
        if t is None and self.latest is None:  # after a restart: resume from the checkpointed watermark
            wm = _parse((progress.get("eventTime") or {}).get("watermark"))
            if wm is not None and wm.year > 1970:
                t = wm + timedelta(seconds=self.delay)
        if t is not None and (self.latest is None or t > self.latest):
            self.latest, self.seen_at = t, at.timestamp() if at else self.wall()
        if seen is not None and at is not None:
            # the source had events in this batch: it is active until the batch's end, whatever the
            # event times (a busy query whose batches outlast the idle time must not get ticks)
            end = at.timestamp() + ((progress.get("durationMs") or {}).get("triggerExecution") or 0) / 1000
            self.active_at = max(self.active_at or 0.0, end)

    def due_tick(self) -> datetime | None:
        """The tick to publish now, if the source has been idle long enough."""
        if self.latest is None or self.seen_at is None:
            return None
        idle = self.wall() - self.seen_at
        if self.wall() - max(self.seen_at, self.active_at or 0.0) < self.idle:
            return None
        tick = self.latest + timedelta(seconds=idle)
        if self.last_tick is not None and tick <= self.last_tick:
            return None
        return tick

    def _new_progress(self) -> list[dict]:
        """The progress of the batches not observed yet, oldest first. Reads the JVM's list from the
        newest end and converts only the new entries: PySpark's ``recentProgress`` converts all (up to
        100) every time, which took seconds per step and held ticks back."""
        jsq = getattr(self.query, "_jsq", None)
        if jsq is None:  # not a PySpark query (tests): a list of dicts
            return [p for p in self.query.recentProgress if p["batchId"] > self._batch]
        jps = jsq.recentProgress()
        out = []
        for i in range(len(jps) - 1, -1, -1):
            p = jps[i]
            if p.batchId() <= self._batch:
                break
            out.append(json.loads(p.json()))
        return out[::-1]

    def step(self) -> None:
        for p in self._new_progress():
            self.observe(p)
        tick = self.due_tick()
        if tick is not None:
            t0 = self.wall()
            self.publish(tick)
            self.last_tick = tick
            self.ticks += 1
            log.info("tick %s published in %.2f s (latest event time %s, idle %.1f s)", tick.isoformat(),
                     self.wall() - t0, self.latest.isoformat(), t0 - self.seen_at)

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            if not self.query.isActive:
                return
            try:
                self.step()
            except Exception:  # noqa: BLE001 — a failed tick is retried next period
                log.exception("clock tick failed")

    def stop(self) -> None:
        self.stop_event.set()


def spark_publisher(spark, kafka_options: dict[str, str], topic: str):
    """publish(tick) via Spark's Kafka sink (same connection settings as the source)."""

    def publish(tick: datetime) -> None:
        value = json.dumps({"event_time": tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
        (spark.createDataFrame([(value,)], "value string").write.format("kafka")
         .options(**kafka_options).option("topic", topic).save())

    return publish
