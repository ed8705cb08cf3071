"""What the models are about to learn from: one continuous, dense history, with backtest folds that hold data.

Checked by the ``gold`` stage before it builds the feature tables (so a bad lake stops the chain
before any training, with one line), from the number of silver events per day:

* **one stretch**: sparse days at either end are left out (a stray valid event dated years back
  must not stretch the product x day panel over those years); a run of more than ``ml.max_gap_days`` days without events — a day with fewer
  than ``ml.min_day_share`` x the median day's events counts as without — splits the history. A
  split history (e.g. ``make demo``'s events of today beside a backfill of 2019–2020) is refused:
  the panel would span the empty years, the backtest folds would land on them, and the model would
  be trained and registered on garbage. The features are built from the stretch only.
  ``ml.history_from`` / ``ml.history_until`` choose a range on
  purpose; only that range then reaches the features and the models.
* **folds with data**: each rolling-origin test block (with its label horizon) must hold at least
  ``ml.min_fold_share`` of the events its days would hold at the history's average rate.

Pure Python over a ``{date: events}`` mapping (a few hundred entries): cheap and unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from statistics import median

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lib.config import Config
from ml.demand import InsufficientData, backtest_folds


@dataclass(frozen=True)
class Stretch:
    first: date
    last: date
    events: int

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        return f"{self.first}..{self.last} ({self.events:,} events)"


@dataclass(frozen=True)
class History:
    """The range the models learn from, and what the check found."""

    first: date
    last: date
    events: int
    left_out: int  # events on sparse days outside [first, last] (e.g. one stray event dated years back)
    fold_shares: tuple[float, ...]  # per fold: its events / its fair share at the average rate

    def as_dict(self) -> dict:
        return {"first": str(self.first), "last": str(self.last), "days": (self.last - self.first).days + 1,
                "events": self.events, "left_out_events": self.left_out,
                "fold_shares": [round(s, 3) for s in self.fold_shares]}


def daily_counts(silver_df: DataFrame) -> dict[date, int]:
    """Silver events per ``event_date`` (one small Spark aggregate)."""
    rows = silver_df.groupBy("event_date").agg(F.count(F.lit(1)).alias("n")).collect()
    return {r["event_date"]: int(r["n"]) for r in rows if r["event_date"] is not None}


def restrict(silver_df: DataFrame, cfg: Config) -> DataFrame:
    """Silver limited to ``ml.history_from`` .. ``ml.history_until`` (each optional)."""
    if cfg.ml.history_from:
        silver_df = silver_df.where(F.col("event_date") >= F.lit(cfg.ml.history_from))
    if cfg.ml.history_until:
        silver_df = silver_df.where(F.col("event_date") <= F.lit(cfg.ml.history_until))
    return silver_df


def stretches(counts: dict[date, int], max_gap_days: int, min_day_share: float) -> list[Stretch]:
    """Runs of active days, split where more than ``max_gap_days`` days in a row are inactive."""
    if not counts:
        return []
    floor = median(counts.values()) * min_day_share
    active = sorted(d for d, n in counts.items() if n > 0 and n >= floor)
    out: list[Stretch] = []
    start = prev = active[0]
    for d in active[1:]:
        if (d - prev).days - 1 > max_gap_days:
            out.append(Stretch(start, prev, sum(n for k, n in counts.items() if start <= k <= prev)))
            start = d
        prev = d
    out.append(Stretch(start, prev, sum(n for k, n in counts.items() if start <= k <= prev)))
    return out


def _range_hint(parts: list[Stretch]) -> str:
    longest = max(parts, key=lambda s: s.days)
    return (f"choose one with ml.history_from/ml.history_until (e.g. SHOP__ML__HISTORY_FROM={longest.first} "
            f"SHOP__ML__HISTORY_UNTIL={longest.last}), or keep live and historical data in separate lakes (lake.root)")


def check(counts: dict[date, int], cfg: Config) -> History:
    """The history the models may learn from, or :class:`InsufficientData` with one line saying why not.
    ``counts`` are events per day, already limited to ``ml.history_from/until``."""
    m = cfg.ml
    chosen = ""
    if m.history_from or m.history_until:
        chosen = f" (ml.history_from {m.history_from or '-'} .. ml.history_until {m.history_until or '-'})"
    counts = {d: n for d, n in counts.items() if n > 0}
    if not counts:
        raise InsufficientData(f"history: no silver events{chosen}: run the backfill (or the streaming app) first")
    parts = stretches(counts, m.max_gap_days, m.min_day_share)
    if len(parts) > 1:
        gap = max((b.first - a.last).days - 1 for a, b in zip(parts, parts[1:]))
        shown = ", ".join(map(str, parts[:4])) + (f" and {len(parts) - 4} more" if len(parts) > 4 else "")
        raise InsufficientData(
            f"history: silver{chosen} holds {len(parts)} separate stretches of events ({shown}), up to {gap:,} days "
            f"apart; the models need one continuous history: {_range_hint(parts)}")
    first, last, total = parts[0].first, parts[0].last, parts[0].events
    days = (last - first).days + 1
    rate = total / days
    h = m.demand_horizon_days
    shares = []
    for fold in backtest_folds(last, h, m.backtest_folds, m.test_block_days):
        lo, hi = fold.test_start, fold.test_end + timedelta(days=h)
        if lo < first:
            break  # too short a history: the panel's own check says so with the days it needs
        held = sum(n for d, n in counts.items() if lo <= d <= hi)
        share = held / (rate * ((hi - lo).days + 1))
        shares.append(share)
        if share < m.min_fold_share:
            raise InsufficientData(
                f"history: backtest fold {fold.index + 1} ({lo}..{hi}) holds {held:,} events, {share:.0%} of what its "
                f"days hold on average from {first} to {last} (ml.min_fold_share {m.min_fold_share:.0%}): the "
                f"folds would score next to nothing; end the history where the data is dense with ml.history_until")
    return History(first, last, total, sum(counts.values()) - total, tuple(shares))
