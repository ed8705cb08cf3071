"""What the streaming lakehouse remembers of silver's recent rows, on the driver, per event-time minute.

A micro-batch of the live stream is a few thousand rows. Finding its exact duplicates by reading
silver back through Spark (log replay, file listing, a scan, a join) cost 2.5-4.5 s per batch on two
cores — most of the time a sale took to reach the dashboard. The lakehouse keeps instead, for every
minute of event time from ``covered_from`` on, the keys of the silver rows of that minute and its
purchases ``(product_id, user_session)`` (what the gold increments need). Duplicates share their
event time (it is part of the key), so a row is looked up in its own minute only.

The index is exact, not a heuristic: it holds *every* silver row of the minutes it covers. It starts
empty; a batch reaching before ``covered_from`` (the first batch of a process, or late data) first
loads the missing minutes from silver (``loader``) — but never further back than the retention before
the batch's newest broker time (``window_start``), so memory is bounded by the retention whatever
event times arrive. Rows of older minutes (a valid event dated a year back) are checked against
silver's rows of *exactly their minutes* (``look_back``: a partition-pruned read, kept for that batch
only), so their cost grows with the minutes they touch, not with the size of silver. Rows enter only
after their silver commit succeeded; a failed batch drops the whole index (the retry reloads it).
Minutes older than the retention (by broker time, so one far-future event cannot evict the present)
are dropped and ``covered_from`` moves up. Other writers of silver (a backfill of the same minutes while the stream
runs) are not seen until the next reload — see docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa

from lib.domain.sales import PURCHASE

# loader(lo, hi) -> silver rows with lo <= event_time < hi (hi None: no upper bound), columns
# event_key, event_type, product_id, event_time, user_session, without the current load's own rows
Loader = Callable[[datetime, "datetime | None"], pa.Table]
# minute_loader(ranges) -> the same columns for silver rows with lo <= event_time < hi for any
# (lo, hi) of ``ranges`` (whole minutes, adjacent minutes merged into one range)
MinuteLoader = Callable[[list[tuple[datetime, datetime]]], pa.Table]


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def naive_utc(times: pd.Series) -> pd.Series:
    """Timestamps as naive UTC (what Spark's ``first()``/``toPandas`` give; ``toArrow`` is tz-aware)."""
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times


def _minutes(times: pd.Series) -> pd.Series:
    return naive_utc(times).dt.floor("min")


def minute_ranges(minutes) -> list[tuple[datetime, datetime]]:
    """Whole minutes -> [lo, hi) ranges, adjacent minutes merged (sorted, no duplicates)."""
    out: list[tuple[datetime, datetime]] = []
    for m in sorted({_minute(pd.Timestamp(m).to_pydatetime()) for m in minutes}):
        if out and out[-1][1] == m:
            out[-1] = (out[-1][0], m + _MINUTE)
        else:
            out.append((m, m + _MINUTE))
    return out


_MINUTE = timedelta(minutes=1)


class RecentSilver:
    """Exact index of silver's rows per event-time minute, for ``minute >= covered_from``; older
    minutes a batch touches are read for that batch only (:meth:`look_back`)."""

    def __init__(self, retention_minutes: float):
        self.retention = timedelta(minutes=retention_minutes)
        self.keys: dict[datetime, set[str]] = {}
        self.purchases: dict[datetime, set[tuple[int, str | None]]] = {}
        self.covered_from: datetime | None = None  # None: nothing covered (empty)
        self.loads = 0  # how many times silver was read for the index (tests and logs)
        # this batch's rows of silver for minutes before covered_from (look_back); replaced every batch
        self._old_keys: dict[datetime, set[str]] = {}
        self._old_purchases: dict[datetime, set[tuple[int, str | None]]] = {}
        self.looked_back_rows = 0  # rows the last look_back read (tests and logs)

    def __len__(self) -> int:
        return sum(len(s) for s in self.keys.values())

    def invalidate(self) -> None:
        self.keys.clear()
        self.purchases.clear()
        self.covered_from = None
        self._old_keys, self._old_purchases = {}, {}

    def window_start(self, broker_time: datetime) -> datetime:
        """The oldest minute the index may hold for a batch whose newest broker time is ``broker_time``."""
        return _minute(broker_time - self.retention)

    def cover(self, lo: datetime, loader: Loader, broker_time: datetime | None = None) -> None:
        """Make sure every silver row with event time >= minute(lo) is indexed — but with
        ``broker_time``, never before :meth:`window_start` (older rows: :meth:`look_back`)."""
        lo = _minute(lo)
        if broker_time is not None:
            lo = max(lo, self.window_start(broker_time))
        if self.covered_from is not None and lo >= self.covered_from:
            return
        self._add(loader(lo, self.covered_from), self.keys, self.purchases)
        self.covered_from = lo
        self.loads += 1

    def look_back(self, times: pd.Series, minute_loader: MinuteLoader) -> int:
        """For the rows of ``times`` before ``covered_from``: read silver's rows of exactly those
        minutes (one call, merged ranges) for :meth:`seen` / :meth:`earlier_purchases` of this batch.
        Replaces the previous batch's look-back; returns the number of silver rows read."""
        self._old_keys, self._old_purchases = {}, {}
        self.looked_back_rows = 0
        minutes = {m.to_pydatetime() for m in _minutes(times).dropna()}
        old = [m for m in minutes if self.covered_from is None or m < self.covered_from]
        if old:
            rows = minute_loader(minute_ranges(old))
            self.looked_back_rows = rows.num_rows
            self._add(rows, self._old_keys, self._old_purchases)
        return self.looked_back_rows

    def add(self, rows: pa.Table) -> None:
        """Rows just committed to silver (event_key, event_type, product_id, event_time, user_session).
        Rows before ``covered_from`` go to this batch's look-back only (memory stays bounded)."""
        self._add(rows, self.keys, self.purchases, self._old_keys, self._old_purchases)

    def _add(self, rows: pa.Table, keys_by_minute, purchases_by_minute, old_keys=None, old_purchases=None) -> None:
        if rows.num_rows == 0:
            return
        df = rows.select(["event_key", "event_type", "product_id", "event_time", "user_session"]).to_pandas()
        df["minute"] = _minutes(df["event_time"])

        def target(minute, recent, old):
            if old is not None and self.covered_from is not None and minute < self.covered_from:
                return old
            return recent

        for minute, keys in df.groupby("minute")["event_key"]:
            m = minute.to_pydatetime()
            target(m, keys_by_minute, old_keys).setdefault(m, set()).update(keys)
        buys = df[df["event_type"] == PURCHASE]
        for minute, g in buys.groupby("minute"):
            m = minute.to_pydatetime()
            target(m, purchases_by_minute, old_purchases).setdefault(m, set()).update(
                zip(g["product_id"].tolist(), g["user_session"].tolist()))

    def _keys_of(self, m: datetime) -> set[str]:
        if self.covered_from is not None and m < self.covered_from:
            return self._old_keys.get(m, set())
        return self.keys.get(m, set())

    def seen(self, keys: pd.Series, times: pd.Series) -> pd.Series:
        """True where the key is already in silver (its minute must be covered or looked back)."""
        minutes = _minutes(times)
        return pd.Series([k in self._keys_of(m.to_pydatetime()) for k, m in zip(keys, minutes)],
                         index=keys.index, dtype=bool)

    def earlier_purchases(self, minutes) -> pd.DataFrame:
        """Silver purchases of those minutes: product_id, event_time (the minute), user_session."""

        def of(m: datetime):
            if self.covered_from is not None and m < self.covered_from:
                return self._old_purchases.get(m, ())
            return self.purchases.get(m, ())

        rows = [(p, m, s) for m in minutes for (p, s) in of(pd.Timestamp(m).to_pydatetime())]
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
