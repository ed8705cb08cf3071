"""The clock ticker (lib.clock): ticks only after the source went idle, at latest event time + idle time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lib.clock import OBSERVATION, ClockTicker

T = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


# Spark's status between triggers once a trigger found no new data (a stateful query mostly says "Waiting
# for next trigger" then, measured: "Waiting for data to arrive" shows only for an instant)
DRAINED = {"message": "Waiting for next trigger", "isDataAvailable": False, "isTriggerActive": False}


class FakeQuery:
    isActive = True

    def __init__(self):
        self.recentProgress = []
        self.status = DRAINED  # Spark's status after a trigger that found no new data

    def batch(self, batch_id: int, at: datetime, max_event_time: datetime | None, ms: int = 0,
              received: datetime | None = None):
        metrics = {OBSERVATION: {"max_event_time": max_event_time.isoformat() if max_event_time else None,
                                 "max_received_at": received.isoformat() if received else None}}
        self.recentProgress.append({"batchId": batch_id, "timestamp": at.isoformat(), "observedMetrics": metrics,
                                    "durationMs": {"triggerExecution": ms}})


def test_ticks_start_after_the_idle_time_and_follow_the_wall_clock():
    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    ticker = ClockTicker(q, published.append, idle_seconds=10, tick_seconds=5, watermark_delay_seconds=20,
                         wall=lambda: wall[0])
    q.batch(0, T, T - timedelta(seconds=2))
    ticker.step()
    wall[0] += 5
    ticker.step()
    assert published == []  # 5 s idle: not yet
    wall[0] += 6
    q.batch(1, T + timedelta(seconds=10), None)  # a batch without events does not count as activity
    ticker.step()
    assert published == [T - timedelta(seconds=2) + timedelta(seconds=11)]
    wall[0] += 5
    ticker.step()
    assert published[-1] == T - timedelta(seconds=2) + timedelta(seconds=16) and ticker.ticks == 2
    q.batch(2, T + timedelta(seconds=17), T + timedelta(seconds=16))  # traffic again: ticks stop
    ticker.step()
    assert ticker.ticks == 2


def test_each_batch_is_observed_once_and_only_new_progress_is_read():
    q = FakeQuery()
    ticker = ClockTicker(q, lambda t: None, idle_seconds=10, tick_seconds=5, watermark_delay_seconds=20,
                         wall=lambda: T.timestamp())
    for i in range(3):
        q.batch(i, T + timedelta(seconds=i), T + timedelta(seconds=i))
    assert [p["batchId"] for p in ticker._new_progress()] == [0, 1, 2]
    ticker.step()
    assert ticker._new_progress() == [] and ticker.latest == T + timedelta(seconds=2)


def test_no_ticks_while_slow_batches_keep_bringing_events():
    """Batches longer than the idle time, each with events (even not newer ones), mean a busy shop."""
    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    ticker = ClockTicker(q, published.append, idle_seconds=10, tick_seconds=5, watermark_delay_seconds=20,
                         wall=lambda: wall[0])
    for i in range(6):
        at = T + timedelta(seconds=12 * i)
        q.batch(i, at, T, ms=12_000)  # each batch runs 12 s and brings events (max event time not newer)
        wall[0] = (at + timedelta(seconds=12, milliseconds=500)).timestamp()
        ticker.step()
    assert published == []
    wall[0] += 11  # then nothing for 11 s after the last batch with events ended: ticks start
    ticker.step()
    assert len(published) == 1 and published[0] == T + timedelta(seconds=wall[0] - T.timestamp())


def test_ticks_count_from_when_the_broker_received_the_newest_event_not_from_when_spark_read_it():
    """A batch that starts late (the previous one ran long) must not hold the clock back."""
    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    ticker = ClockTicker(q, published.append, idle_seconds=2, tick_seconds=1, watermark_delay_seconds=20,
                         wall=lambda: wall[0])
    # event time 12:00:00 reached the broker at 12:00:01; Spark's batch with it started at 12:00:07
    q.batch(0, T + timedelta(seconds=7), T, ms=1000, received=T + timedelta(seconds=1))
    wall[0] = (T + timedelta(seconds=10)).timestamp()
    ticker.step()
    assert published == [T + timedelta(seconds=9)]  # 9 s since the broker got it, not 3 s since the batch
    # a broker time later than the batch's start (clock skew) is not believed: the batch start bounds it
    q.batch(1, T + timedelta(seconds=20), T + timedelta(seconds=15), received=T + timedelta(seconds=40))
    wall[0] = (T + timedelta(seconds=30)).timestamp()
    ticker.step()
    assert published[-1] == T + timedelta(seconds=15) + timedelta(seconds=10)


def test_after_a_restart_in_a_quiet_shop_ticks_resume_from_the_last_committed_batch():
    """The app restarts, no new event arrives: no micro-batch runs, so nothing would ever expire the
    carts of before the restart. The ticker starts from ops/session_batches' last batch instead —
    but only once the query found no backlog to read first."""
    from lib.clock import resume_point

    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    rows = [{"batch_id": 0, "watermark": None, "processed_at": T - timedelta(minutes=9)},
            {"batch_id": 1, "watermark": (T - timedelta(minutes=5, seconds=20)).replace(tzinfo=None),
             "processed_at": (T - timedelta(minutes=5)).replace(tzinfo=None)}]
    resume = resume_point(rows, watermark_delay_seconds=20)
    assert resume == (T - timedelta(minutes=5), (T - timedelta(minutes=5)).timestamp())
    q.status = {"message": "Initializing sources", "isDataAvailable": False, "isTriggerActive": False}
    ticker = ClockTicker(q, published.append, idle_seconds=2, tick_seconds=1, watermark_delay_seconds=20,
                         wall=lambda: wall[0], resume=resume)
    ticker.step()
    assert published == []  # the first trigger has not looked at the sources yet
    q.status = {"message": "Processing new data", "isDataAvailable": True, "isTriggerActive": True}
    ticker.step()
    assert published == []  # a backlog is being read: the clock must not overtake it
    q.status = {"message": "Waiting for data to arrive", "isDataAvailable": False, "isTriggerActive": False}
    wall[0] += 1
    ticker.step()
    # event time moved on with the wall clock since the last batch: 5 min 1 s
    assert published == [T - timedelta(minutes=5) + timedelta(minutes=5, seconds=1)]


def test_resume_point_needs_a_watermark():
    from lib.clock import resume_point

    assert resume_point([], 20) is None
    assert resume_point([{"batch_id": 0, "watermark": None, "processed_at": T}], 20) is None
    epoch = datetime(1970, 1, 1)
    assert resume_point([{"batch_id": 0, "watermark": epoch, "processed_at": T}], 20) is None


def test_a_backlog_after_the_restart_is_observed_before_any_tick():
    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    q.status = {"message": "Processing new data", "isDataAvailable": True, "isTriggerActive": True}
    ticker = ClockTicker(q, published.append, idle_seconds=2, tick_seconds=1, watermark_delay_seconds=20,
                         wall=lambda: wall[0], resume=(T - timedelta(minutes=5), (T - timedelta(minutes=5)).timestamp()))
    q.batch(2, T, T - timedelta(seconds=1), ms=3000, received=T - timedelta(seconds=1))  # the backlog's batch
    ticker.step()
    assert published == [] and ticker.latest == T - timedelta(seconds=1)
    wall[0] += 6  # quiet after the backlog: ticks follow the backlog's newest event, not the old resume point
    q.status = DRAINED  # (the trigger after the backlog found nothing)
    ticker.step()
    assert published == [T - timedelta(seconds=1) + timedelta(seconds=7)]


def test_no_tick_while_a_backlog_is_read_even_when_triggers_are_further_apart_than_the_idle_time():
    """A catch-up (after a restart, an outage): the backlog's batches carry events received long ago and
    the pause between two triggers outlasts the idle time. A tick then would say "now" and put the
    watermark ahead of the events still to read (make chaos lost 5,065 carts that way): no tick until
    Spark's status says the last trigger found nothing."""
    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    ticker = ClockTicker(q, published.append, idle_seconds=2, tick_seconds=1, watermark_delay_seconds=20,
                         wall=lambda: wall[0])
    backlog = {"message": "Waiting for next trigger", "isDataAvailable": True, "isTriggerActive": False}
    for i in range(3):  # each batch: events 15 minutes old, then 5 s until the next trigger
        q.status = {"message": "Processing new data", "isDataAvailable": True, "isTriggerActive": True}
        q.batch(i, datetime.fromtimestamp(wall[0], UTC), T - timedelta(minutes=15 - i), ms=1000,
                received=T - timedelta(minutes=15 - i))
        q.status = backlog
        wall[0] += 5
        ticker.step()
    assert published == []
    q.status = DRAINED  # caught up, then quiet: ticks follow
    ticker.step()
    assert len(published) == 1 and published[0] > T - timedelta(minutes=13)


def test_ticks_slow_to_a_heartbeat_once_every_session_has_expired_and_speed_up_with_the_next_event():
    """Past latest event time + gap + watermark delay (+ a tick) the watermark is beyond every held
    session's expiry: a tick a second would only run empty micro-batches for as long as the shop is
    quiet; one per quiet_tick_seconds keeps the sessions query's heartbeat (the GCP stall alert)."""
    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    ticker = ClockTicker(q, published.append, idle_seconds=2, tick_seconds=1, watermark_delay_seconds=3,
                         gap_seconds=10, quiet_tick_seconds=10, wall=lambda: wall[0])
    q.batch(0, T, T)
    for _ in range(40):
        wall[0] += 1
        ticker.step()
    horizon = T + timedelta(seconds=10 + 3 + 1)
    # every second up to the horizon, then one per 10 s of wall time
    assert published == [T + timedelta(seconds=s) for s in [*range(2, 15), 24, 34]]
    assert published[12] == horizon
    # the watermark the horizon tick gives (tick - delay) is past the expiry (last event + gap) of any held session
    assert horizon - timedelta(seconds=3) > T + timedelta(seconds=10)
    # an event: ticks every second again from it, until its own horizon
    q.batch(1, T + timedelta(seconds=41), T + timedelta(seconds=40), received=T + timedelta(seconds=41))
    for _ in range(20):
        wall[0] += 1
        ticker.step()
    assert published[15:] == [T + timedelta(seconds=40 + s) for s in range(2, 15)]
    assert ticker.ticks == 15 + 13


def test_without_a_gap_ticks_never_slow_down():
    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    ticker = ClockTicker(q, published.append, idle_seconds=2, tick_seconds=1, watermark_delay_seconds=3,
                         wall=lambda: wall[0])
    q.batch(0, T, T)
    for _ in range(100):
        wall[0] += 1
        ticker.step()
    assert published == [T + timedelta(seconds=s) for s in range(2, 101)]


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def test_once_every_bucket_has_reported_ticks_come_when_a_session_is_due_and_a_heartbeat_between():
    """A tick a second is a micro-batch a second. Once each bucket has reported its earliest pending
    expiry (the first tick reaches them all), a tick goes out at the normal pace only when its time
    minus the watermark delay reaches one (the tracker expires by tick - delay), once; between them,
    and with no live session, one per quiet_tick_seconds."""
    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    ticker = ClockTicker(q, published.append, idle_seconds=2, tick_seconds=1, watermark_delay_seconds=3,
                         gap_seconds=100, quiet_tick_seconds=30, buckets=2, wall=lambda: wall[0])
    q.batch(0, T, T)

    def seconds(n: int) -> list[datetime]:
        before = len(published)
        for _ in range(n):
            wall[0] += 1
            ticker.step()
        return published[before:]

    at = [T + timedelta(seconds=s) for s in range(100)]
    assert seconds(3) == [at[2], at[3]]  # nothing reported yet: every second
    ticker.note_expiries({0: ms(at[9])})
    assert seconds(1) == [at[4]]  # bucket 1 has not reported: still every second
    ticker.note_expiries({1: None})  # now known: the next session is due at 9 s + 3 s of delay
    assert seconds(10) == [at[12]]  # not 5..11 s
    assert seconds(3) == []  # the 12 s tick covers it: no second tick before its batch has reported
    ticker.note_expiries({0: ms(at[20])})  # its batch: the next one due at 20 s (+3)
    assert seconds(10) == [at[23]]
    ticker.note_expiries({0: None})  # no live session left: a heartbeat only, 30 s after the last tick
    assert seconds(40) == [at[53]]
    # an event (at 67 s, in the broker at 68 s): its bucket reports a live session, due at 74 + 3 s
    q.batch(1, at[68], at[67], received=at[68])
    ticker.note_expiries({1: ms(at[74])})
    assert seconds(15) == [at[77]]
    assert ticker.next_expiry() == (True, at[74])


def test_without_bucket_reports_the_horizon_still_slows_the_ticks():
    """A ticker told the buckets but never given their expiries keeps the horizon rule."""
    wall = [T.timestamp()]
    q, published = FakeQuery(), []
    ticker = ClockTicker(q, published.append, idle_seconds=2, tick_seconds=1, watermark_delay_seconds=3,
                         gap_seconds=10, quiet_tick_seconds=10, buckets=16, wall=lambda: wall[0])
    ticker.note_expiries({b: None for b in range(15)})  # one bucket short of knowing
    q.batch(0, T, T)
    for _ in range(40):
        wall[0] += 1
        ticker.step()
    assert published == [T + timedelta(seconds=s) for s in [*range(2, 15), 24, 34]]
