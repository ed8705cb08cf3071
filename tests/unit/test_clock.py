"""The clock ticker (lib.clock): ticks only after the source went idle, at latest event time + idle time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lib.clock import OBSERVATION, ClockTicker

T = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


class FakeQuery:
    isActive = True

    def __init__(self):
        self.recentProgress = []

    def batch(self, batch_id: int, at: datetime, max_event_time: datetime | None):
        metrics = {OBSERVATION: {"max_event_time": max_event_time.isoformat() if max_event_time else None}}
        self.recentProgress.append({"batchId": batch_id, "timestamp": at.isoformat(), "observedMetrics": metrics})


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
