"""What the streaming lakehouse remembers of silver's recent rows, on the driver, per event-time minute.

A micro-batch of the live stream is a few thousand rows. Finding its exact duplicates by reading
silver back through Spark (log replay, file listing, a scan, a join) cost 2.5-4.5 s per batch on two
cores — most of the time a sale took to reach the dashboard. The lakehouse keeps instead, for every
minute of event time from ``covered_from`` on, the keys of the silver rows of that minute and its
purchases ``(product_id, user_session)`` (what the gold increments need). Duplicates share their
event time (it is part of the key), so a row is looked up in its own minute only.

The index is exact, not a heuristic: it holds *every* silver row of the minutes it covers. It starts
empty; a batch reaching before ``covered_from`` (the first batch of a process, or late data) first
loads the missing minutes from silver (``loader``). Rows enter only after their silver commit
succeeded; a failed batch drops the whole index (the retry reloads it). Minutes older than the
retention (by broker time, so one far-future event cannot evict the present) are dropped and
``covered_from`` moves up. Other writers of silver (a backfill of the same minutes while the stream
runs) are not seen until the next reload — see docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa

# loader(lo, hi) -> silver rows with lo <= event_time < hi (hi None: no upper bound), columns
# event_key, event_type, product_id, event_time, user_session, without the current load's own rows
Loader = Callable[[datetime, "datetime | None"], pa.Table]


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def naive_utc(times: pd.Series) -> pd.Series:
    """Timestamps as naive UTC (what Spark's ``first()``/``toPandas`` give; ``toArrow`` is tz-aware)."""
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times


def _minutes(times: pd.Series) -> pd.Series:
    return naive_utc(times).dt.floor("min")


class RecentSilver:
    """Exact index of silver's rows per event-time minute, for ``minute >= covered_from``."""

    def __init__(self, retention_minutes: float):
        self.retention = timedelta(minutes=retention_minutes)
        self.keys: dict[datetime, set[str]] = {}
        self.purchases: dict[datetime, set[tuple[int, str | None]]] = {}
        self.covered_from: datetime | None = None  # None: nothing covered (empty)
        self.loads = 0  # how many times silver was read (tests and logs)

    def __len__(self) -> int:
        return sum(len(s) for s in self.keys.values())

    def invalidate(self) -> None:
        self.keys.clear()
        self.purchases.clear()
        self.covered_from = None

    def cover(self, lo: datetime, loader: Loader) -> None:
        """Make sure every silver row with event time >= minute(lo) is indexed."""
        lo = _minute(lo)
        if self.covered_from is not None and lo >= self.covered_from:
            return
        self._add(loader(lo, self.covered_from))
        self.covered_from = lo
        self.loads += 1

    def add(self, rows: pa.Table) -> None:
        """Rows just committed to silver (event_key, event_type, product_id, event_time, user_session)."""
        self._add(rows)

    def _add(self, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        df = rows.select(["event_key", "event_type", "product_id", "event_time", "user_session"]).to_pandas()
        df["minute"] = _minutes(df["event_time"])
        for minute, keys in df.groupby("minute")["event_key"]:
            self.keys.setdefault(minute.to_pydatetime(), set()).update(keys)
        buys = df[df["event_type"] == "purchase"]
        for minute, g in buys.groupby("minute"):
            self.purchases.setdefault(minute.to_pydatetime(), set()).update(
                zip(g["product_id"].tolist(), g["user_session"].tolist()))

    def seen(self, keys: pd.Series, times: pd.Series) -> pd.Series:
        """True where the key is already in silver (its minute must be covered)."""
        minutes = _minutes(times)
        return pd.Series([k in self.keys.get(m.to_pydatetime(), ()) for k, m in zip(keys, minutes)],
                         index=keys.index, dtype=bool)

    def earlier_purchases(self, minutes) -> pd.DataFrame:
        """Silver purchases of those minutes: product_id, event_time (the minute), user_session."""
        rows = [(p, m, s) for m in minutes for (p, s) in self.purchases.get(pd.Timestamp(m).to_pydatetime(), ())]
        return pd.DataFrame(rows, columns=["product_id", "event_time", "user_session"]).astype(
            {"product_id": "int64", "event_time": "datetime64[us]"})

    def evict(self, broker_time: datetime) -> None:
        """Forget minutes older than the retention before ``broker_time``."""
        if self.covered_from is None:
            return
        cutoff = _minute(broker_time - self.retention)
        if cutoff <= self.covered_from:
            return
        for m in [m for m in self.keys if m < cutoff]:
            del self.keys[m]
        for m in [m for m in self.purchases if m < cutoff]:
            del self.purchases[m]
        self.covered_from = cutoff
