"""The driver's index of silver's recent minutes (lib.recent_silver): exact over what it covers,
loads what a batch reaches back to, evicts by broker time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa

from lib.recent_silver import RecentSilver

T0 = datetime(2026, 11, 27, 12, 0, 0)


def rows(*events) -> pa.Table:
    """events: (key, minute offset, seconds, type, product, session)"""
    return pa.table({
        "event_key": [e[0] for e in events],
        "event_type": [e[3] for e in events],
        "product_id": pa.array([e[4] for e in events], pa.int64()),
        "event_time": pa.array([T0 + timedelta(minutes=e[1], seconds=e[2]) for e in events],
                               pa.timestamp("us", tz="UTC")),  # tz-aware, as Spark's toArrow gives
        "user_session": [e[5] for e in events],
    })


class FakeSilver:
    """A silver table as a list of rows; loader() answers range queries and counts them."""

    def __init__(self, table: pa.Table):
        self.df = table.to_pandas()
        self.df["event_time"] = self.df["event_time"].dt.tz_localize(None)
        self.calls = []

    def loader(self, lo, hi):
        self.calls.append((lo, hi))
        sel = self.df["event_time"] >= lo
        if hi is not None:
            sel &= self.df["event_time"] < hi
        return pa.Table.from_pandas(self.df[sel], preserve_index=False)


def test_first_cover_loads_everything_from_the_batch_minute_on_and_lookups_are_exact():
    silver = FakeSilver(rows(("a", 0, 5, "view", 1, "s1"), ("b", 3, 10, "purchase", 2, "s2"),
                             ("c", 9, 59, "cart", 3, "s3")))
    idx = RecentSilver(retention_minutes=30)
    idx.cover(T0 + timedelta(minutes=3, seconds=40), silver.loader)
    assert silver.calls == [(T0 + timedelta(minutes=3), None)]  # whole minutes, no upper bound
    keys = pd.Series(["a", "b", "c", "b"])
    times = pd.Series(pd.to_datetime([T0 + timedelta(minutes=m, seconds=s) for m, s in
                                      [(0, 5), (3, 10), (9, 59), (4, 0)]]))
    # "a" is before the covered minutes, "b" at another minute is another event (the time is in the key)
    assert idx.seen(keys, times).tolist() == [False, True, True, False]
    earlier = idx.earlier_purchases([T0 + timedelta(minutes=3), T0 + timedelta(minutes=4)])
    assert earlier.values.tolist() == [[2, pd.Timestamp(T0 + timedelta(minutes=3)), "s2"]]
    # a later batch inside the covered range reads nothing
    idx.cover(T0 + timedelta(minutes=5), silver.loader)
    assert len(silver.calls) == 1


def test_late_batch_loads_only_the_missing_minutes():
    silver = FakeSilver(rows(("a", 0, 5, "view", 1, "s1"), ("b", 3, 10, "view", 2, "s2")))
    idx = RecentSilver(retention_minutes=30)
    idx.cover(T0 + timedelta(minutes=3), silver.loader)
    idx.cover(T0 + timedelta(seconds=30), silver.loader)
    assert silver.calls[1] == (T0, T0 + timedelta(minutes=3))
    assert len(idx) == 2 and idx.covered_from == T0


def test_added_rows_are_seen_and_eviction_follows_broker_time_only():
    idx = RecentSilver(retention_minutes=10)
    idx.cover(T0, lambda lo, hi: rows())
    idx.add(rows(("a", 0, 1, "purchase", 7, "s"), ("b", 12, 0, "view", 8, "t")))
    t = pd.Series(pd.to_datetime([T0 + timedelta(seconds=1), T0 + timedelta(minutes=12)]))
    assert idx.seen(pd.Series(["a", "b"]), t).tolist() == [True, True]
    idx.evict(T0 + timedelta(minutes=5))  # broker time: nothing is older than 10 min yet
    assert idx.covered_from == T0 and len(idx) == 2
    idx.evict(T0 + timedelta(minutes=11, seconds=30))
    assert idx.covered_from == T0 + timedelta(minutes=1) and len(idx) == 1
    assert idx.seen(pd.Series(["b"]), t[1:].reset_index(drop=True)).tolist() == [True]
    assert idx.earlier_purchases([T0]).empty


def test_invalidate_forgets_everything():
    idx = RecentSilver(retention_minutes=10)
    idx.cover(T0, lambda lo, hi: rows(("a", 0, 1, "view", 7, "s")))
    idx.invalidate()
    assert idx.covered_from is None and len(idx) == 0
    calls = []
    idx.cover(T0 + timedelta(minutes=2), lambda lo, hi: calls.append((lo, hi)) or rows())
    assert calls == [(T0 + timedelta(minutes=2), None)]


class FakeMinuteSilver(FakeSilver):
    """FakeSilver that also answers look-back reads by minute ranges (and counts the rows it returns)."""

    def minutes(self, ranges):
        self.calls.append(("ranges", ranges))
        sel = pd.Series(False, index=self.df.index)
        for lo, hi in ranges:
            sel |= (self.df["event_time"] >= lo) & (self.df["event_time"] < hi)
        return pa.Table.from_pandas(self.df[sel], preserve_index=False)


def test_minute_ranges_merge_adjacent_minutes():
    from lib.recent_silver import minute_ranges

    m = [T0 + timedelta(minutes=k) for k in (5, 0, 1, 1, 3)]
    assert minute_ranges(m) == [(T0, T0 + timedelta(minutes=2)), (T0 + timedelta(minutes=3), T0 + timedelta(minutes=4)),
                                (T0 + timedelta(minutes=5), T0 + timedelta(minutes=6))]


def test_a_year_old_event_never_loads_silver_since_then_only_its_own_minute():
    # silver: one row a minute for a year back (525,600 rows), plus a duplicate and a purchase in the old minute
    year = 365 * 24 * 60
    times = [T0 - timedelta(minutes=k) for k in range(year)]
    old = T0 - timedelta(days=365)
    big = pa.table({
        "event_key": [f"k{k}" for k in range(year)] + ["old-dup", "old-buy"],
        "event_type": ["view"] * year + ["view", "purchase"],
        "product_id": pa.array([1] * year + [5, 6], pa.int64()),
        "event_time": pa.array(times + [old + timedelta(seconds=7), old + timedelta(seconds=8)],
                               pa.timestamp("us", tz="UTC")),
        "user_session": ["s"] * year + ["o1", "o2"],
    })
    silver = FakeMinuteSilver(big)
    idx = RecentSilver(retention_minutes=15)
    broker = T0 + timedelta(seconds=30)
    batch_times = pd.Series(pd.to_datetime([old + timedelta(seconds=7), old + timedelta(seconds=40), T0]))
    # the lakehouse asks to cover from the batch's oldest event: the index stops at the retention window
    idx.cover(batch_times.min(), silver.loader, broker_time=broker)
    assert idx.covered_from == T0 - timedelta(minutes=15)
    assert silver.calls == [(T0 - timedelta(minutes=15), None)]
    assert len(idx) == 16  # the window's rows, not the year's
    read = idx.look_back(batch_times, silver.minutes)
    assert silver.calls[-1] == ("ranges", [(old, old + timedelta(minutes=1))])
    assert read == 2  # exactly the old minute's rows
    keys = pd.Series(["old-dup", "old-new", "k0"])
    assert idx.seen(keys, batch_times).tolist() == [True, False, True]
    earlier = idx.earlier_purchases([old])
    assert earlier.values.tolist() == [[6, pd.Timestamp(old), "o2"]]
    # committing the old row does not grow the index; the next batch forgets the look-back
    idx.add(rows(("old-new", 0, 40, "view", 5, "o3")).set_column(
        3, "event_time", pa.array([old + timedelta(seconds=40)], pa.timestamp("us", tz="UTC"))))
    assert len(idx) == 16 and old not in idx.keys
    idx.look_back(pd.Series(pd.to_datetime([T0])), silver.minutes)
    assert idx.looked_back_rows == 0 and idx.seen(keys[:1], batch_times[:1]).tolist() == [False]
