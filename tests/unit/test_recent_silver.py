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
