"""Clock ticks: event time keeps moving while the shop is quiet, so sessions still expire on time.

Spark's watermark only advances when events arrive. When traffic stops, the last sessions would wait
for the next shopper before they expire — and their emails with them. The ticker (a thread of the
streaming app) watches the sessions query: once no new event time has arrived for
``sessions.idle_seconds`` it publishes ticks ``{"event_time": …}`` to ``sessions.clock_topic`` every
``sessions.tick_seconds``, each = the latest event time seen (capped at its receive time, as the
watermark is: ``lib.sessions.session_events``' ``watermark_t``) + the wall-clock time since the broker
received it (the newest broker timestamp of that micro-batch: it does not depend on when Spark got
round to the batch) — and only while the query's last trigger found no data (no backlog being read),
and at that pace only while a tick can expire a session: a tick is due at that pace once its time
minus the watermark delay reaches the earliest pending expiry the sessions query reported (each
bucket's, from its last call: ``note_expiries``), and otherwise one tick per
``sessions.quiet_tick_seconds`` is published, a heartbeat. Until every bucket has reported once
(after a start, the first tick reaches them all) the ticker knows no expiry and keeps the pace until a
tick has passed the latest event time by the session gap + the watermark delay (every held session has
expired then). Only the sessions query reads that topic; a tick never runs ahead of the wall
clock's advance since the last real event, so a fast replay of old data is not disturbed (its event
times run ahead of the ticks), and a live shop's watermark follows the wall clock.

Ticks go out through a plain Kafka producer (confluent-kafka, a few ms each) when the broker needs no
SASL; with Managed Kafka's OAUTHBEARER login they are written with Spark's Kafka sink, which uses
exactly the source's connection and auth (a small Spark job per tick; hence the longer tick period in
``conf/gcp.yaml``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from lib.sources import kafka_client_options

log = logging.getLogger("shop.clock")
OBSERVATION = "session_input"  # the observed metric the sessions query reports (max_event_time)


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class ClockTicker(threading.Thread):
    def __init__(self, query, publish, *, idle_seconds: float, tick_seconds: float, watermark_delay_seconds: float,
                 gap_seconds: float | None = None, quiet_tick_seconds: float = 60.0, buckets: int | None = None,
                 wall=time.time, resume: tuple[datetime, float] | None = None):
        super().__init__(name="clock-ticker", daemon=True)
        self.query, self.publish = query, publish
        self.idle, self.every, self.delay = idle_seconds, tick_seconds, watermark_delay_seconds
        # Ticks slow down to one per ``quiet_tick_seconds`` while none of them would expire a session: a
        # tick a second is a micro-batch a second (16 Python calls that read and rewrite every bucket's
        # state: ~1 core of a laptop, for as long as the shop is quiet). The slow ones are a heartbeat (the
        # GCP stall alert counts the sessions query's batches). Which tick expires a session: the
        # buckets' reported expiries (``buckets``, below), or, before they have all reported, none past
        # the horizon = latest event time + gap + watermark delay + a tick period (each held session's
        # last event is no later than the latest event time). gap_seconds None: no horizon.
        self.horizon = None if gap_seconds is None else timedelta(seconds=gap_seconds + self.delay + self.every)
        self.quiet_every = quiet_tick_seconds
        # each bucket's earliest pending expiry (epoch ms; None: no live session) as its last call left it,
        # from the sessions query's sink (note_expiries); known once all ``buckets`` have reported
        self.buckets = buckets
        self._expiry: dict[int, int | None] = {}
        self._expiry_lock = threading.Lock()
        self.last_tick_wall: float | None = None  # wall time of the last published tick
        self.slowed_at: datetime | None = None  # the latest event time the ticks slowed down at (logged once)
        self.wall = wall
        self.stop_event = threading.Event()
        self.latest: datetime | None = None  # latest real event time seen
        self.seen_at: float | None = None  # wall time when it arrived (at the broker)
        self.last_tick: datetime | None = None
        self.active_at: float | None = None  # wall time the last batch with events ended
        self._batch = -1
        self.ticks = 0
        self._spell = 0  # ticks since the source went quiet
        # A restart in a quiet shop runs no micro-batch (no new event: nothing to tick from, and the
        # carts of before the restart would wait for the next shopper): the sessions' last committed
        # batch says where event time was, and when (resume_point). Those ticks wait until the query
        # has looked at its sources and found nothing (as every tick does: ``due_tick``): a backlog must
        # be read before the clock moves, or its events would arrive behind the watermark.
        self._resumed = resume is not None
        if resume is not None:
            self.latest, self.seen_at = resume

    def observe(self, progress: dict) -> None:
        """Take a query progress (dict) into account."""
        if progress["batchId"] <= self._batch:
            return
        self._batch = progress["batchId"]
        at = _parse(progress.get("timestamp"))
        observed = (progress.get("observedMetrics") or {}).get(OBSERVATION, {})
        seen = observed.get("max_event_time")
        t = _parse(seen) if isinstance(seen, str) else None
        received = observed.get("max_received_at")
        received_at = _parse(received) if isinstance(received, str) else None
        if t is None and self.latest is None:  # after a restart: resume from the checkpointed watermark
            wm = _parse((progress.get("eventTime") or {}).get("watermark"))
            if wm is not None and wm.year > 1970:
                t = wm + timedelta(seconds=self.delay)
        if t is not None and (self.latest is None or t > self.latest):
            # when it arrived: the broker's time for the batch's newest event (never later than the
            # batch's start, which Spark reaches only after the previous batch ended)
            arrived = at.timestamp() if at else self.wall()
            if received_at is not None:
                arrived = min(arrived, received_at.timestamp())
            self.latest, self.seen_at = t, arrived
        if seen is not None and at is not None:
            # the source had events in this batch: it is active until the batch's end, whatever the
            # event times (a busy query whose batches outlast the idle time must not get ticks)
            end = at.timestamp() + ((progress.get("durationMs") or {}).get("triggerExecution") or 0) / 1000
            self.active_at = max(self.active_at or 0.0, end)

    def note_expiries(self, expiries: Mapping[int, int | None]) -> None:
        """Buckets' earliest pending expiry after a micro-batch's calls (``lib.sessions.bucket_expiries``;
        called by the sessions query's sink, in its thread)."""
        with self._expiry_lock:
            self._expiry.update(expiries)

    def next_expiry(self) -> tuple[bool, datetime | None]:
        """(known, the earliest pending expiry of any bucket, None when no session is live); known once
        every bucket has reported since the start."""
        with self._expiry_lock:
            if self.buckets is None or len(self._expiry) < self.buckets:
                return False, None
            pending = [ms for ms in self._expiry.values() if ms is not None]
        return True, (datetime.fromtimestamp(min(pending) / 1000, UTC) if pending else None)

    def _quiet(self, tick: datetime) -> str | None:
        """Why ``tick`` would expire no session (then ticks keep a heartbeat's pace), or None."""
        known, nxt = self.next_expiry()
        if known:
            if nxt is None:
                return "no live session"
            due = nxt + timedelta(seconds=self.delay)  # the tracker expires a session by tick - delay
            if tick < due:
                return f"the next session expires at {nxt.isoformat()}"
            if self.last_tick is not None and self.last_tick >= due:
                return f"tick {self.last_tick.isoformat()} expires the next session (waiting for its batch)"
            return None
        if (self.horizon is not None and self.latest is not None and self.last_tick is not None
                and self.last_tick >= self.latest + self.horizon):
            return (f"tick {self.last_tick.isoformat()} is past every session's expiry (latest event time "
                    f"{self.latest.isoformat()} + gap + watermark delay)")
        return None

    def _source_drained(self) -> bool:
        """The query's last trigger found no new data: Spark's status says no data was available and no
        trigger runs right now (between triggers a stateful query says "Waiting for next trigger" — with
        ``isDataAvailable`` true while a backlog is read, false once a trigger found nothing)."""
        try:
            status = self.query.status or {}
        except Exception:  # noqa: BLE001 - the JVM is going away: no tick
            return False
        return (not status.get("isDataAvailable", True) and not status.get("isTriggerActive", True)
                and status.get("message") != "Initializing sources")

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
        quiet = self._quiet(tick)
        if quiet is not None:
            if self.slowed_at != self.latest:  # once per quiet spell
                self.slowed_at = self.latest
                log.info("ticks slowed to one per %.0f s: %s; a session due, or the next event, brings the "
                         "normal pace back", self.quiet_every, quiet)
            if self.last_tick_wall is not None and self.wall() - self.last_tick_wall < self.quiet_every:
                return None
        # Only a drained source gets ticks: while a backlog is read (after a restart, an outage, a slow
        # stretch) the pause between two triggers can outlast the idle time, and a tick "now" would put
        # the watermark ahead of the backlog's events — they would be dropped as late (seen in make
        # chaos: 5,065 carts after a 15-minute catch-up). Spark's status says whether the last trigger
        # found data; a tick's own batch makes the next one wait a trigger.
        if not self._source_drained():
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
        if tick is None:
            self._spell = 0
            return
        t0 = self.wall()
        self.publish(tick)
        self.last_tick, self.last_tick_wall = tick, t0
        self.ticks += 1
        self._spell += 1
        # the first tick of a quiet spell, then one line a minute or so (a due tick implies an event time)
        if self._spell % 60 == 1 and self.latest is not None:
            log.info("tick %s published in %.2f s (latest event time %s, idle %.1f s, %d ticks so far)",
                     tick.isoformat(), self.wall() - t0, self.latest.isoformat(), t0 - self.seen_at, self.ticks)

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            try:
                if not self.query.isActive:
                    return
            except Exception:  # noqa: BLE001 — the JVM is gone (the app is stopping): nothing to tick
                return
            try:
                self.step()
            except Exception:  # noqa: BLE001 — a failed tick is retried next period
                log.exception("clock tick failed")

    def stop(self) -> None:
        self.stop_event.set()


def resume_point(batches, watermark_delay_seconds: float) -> tuple[datetime, float] | None:
    """Where the clock stood at the sessions query's last committed micro-batch, from
    ``ops/session_batches`` rows (``watermark``, ``processed_at``): event time = watermark + delay,
    reached no later than the batch's processing time. None when no batch had a watermark yet."""
    rows = [r for r in batches if r.get("watermark") is not None and r.get("processed_at") is not None]
    if not rows:
        return None
    last = max(rows, key=lambda r: r["batch_id"])
    wm, at = last["watermark"], last["processed_at"]
    wm = wm if wm.tzinfo else wm.replace(tzinfo=UTC)
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if wm.year <= 1970:  # Spark's "no watermark yet"
        return None
    return wm + timedelta(seconds=watermark_delay_seconds), at.timestamp()


def _tick_value(tick: datetime) -> str:
    return json.dumps({"event_time": tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")})


def spark_publisher(spark, kafka_options: dict[str, str], topic: str):
    """publish(tick) via Spark's Kafka sink (same connection settings as the source)."""

    def publish(tick: datetime) -> None:
        (spark.createDataFrame([(_tick_value(tick),)], "value string").write.format("kafka")
         .options(**kafka_options).option("topic", topic).save())

    return publish


def producer_publisher(client_options: dict[str, str], topic: str, timeout: float = 10.0):
    """publish(tick) via a plain Kafka producer (brokers without SASL login: the local one)."""
    from confluent_kafka import Producer  # deferred: not on Dataproc (requirements/dataproc.txt); local broker only

    producer = Producer({**client_options, "acks": "all", "linger.ms": 0, "log_level": 3})

    def publish(tick: datetime) -> None:
        errors = []
        producer.produce(topic, value=_tick_value(tick).encode(),
                         on_delivery=lambda err, _msg: errors.append(err) if err is not None else None)
        if producer.flush(timeout) or errors:
            raise RuntimeError(f"tick not delivered to {topic}: {errors[0] if errors else 'timeout'}")

    return publish


def tick_publisher(spark, cfg):
    """The fastest publisher the configured broker allows (see the module's docstring)."""
    opts = kafka_client_options(cfg)
    if cfg.kafka.auth == "none":
        return producer_publisher(opts, cfg.sessions.clock_topic)
    return spark_publisher(spark, {f"kafka.{k}": v for k, v in opts.items()}, cfg.sessions.clock_topic)
