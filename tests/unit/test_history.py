"""ml.history: the batch chain refuses a split or hollow history in one line, and learns from the dense stretch."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from lib.config import load_config
from ml.demand import InsufficientData
from ml.history import check, stretches


def _cfg(**ml):
    return load_config("local", environ={f"SHOP__ML__{k.upper()}": str(v) for k, v in ml.items()})


def days(first: str, n: int, per_day: int = 1000) -> dict[date, int]:
    start = date.fromisoformat(first)
    return {start + timedelta(days=i): per_day for i in range(n)}


def test_one_dense_stretch_is_accepted_whole():
    h = check(days("2019-10-01", 152), _cfg())
    assert (h.first, h.last, h.events, h.left_out) == (date(2019, 10, 1), date(2020, 2, 29), 152_000, 0)
    assert len(h.fold_shares) == 3 and all(abs(s - 1) < 1e-9 for s in h.fold_shares)


def test_history_beside_todays_demo_is_refused_in_one_line():
    """make demo (today's events) then make batch (five months of 2019-2020): the years between
    must not become the panel, the folds, and a registered model."""
    counts = {**days("2019-10-01", 152, 6500), **days("2026-11-29", 1, 60000)}
    with pytest.raises(InsufficientData) as err:
        check(counts, _cfg())
    msg = str(err.value)
    assert "\n" not in msg
    assert "2 separate stretches" in msg and "2019-10-01..2020-02-29" in msg and "2026-11-29..2026-11-29" in msg
    assert "SHOP__ML__HISTORY_FROM=2019-10-01 SHOP__ML__HISTORY_UNTIL=2020-02-29" in msg


def test_a_chosen_range_is_learned_on_purpose():
    counts = {**days("2019-10-01", 152, 6500), **days("2026-11-29", 1, 60000)}
    cfg = _cfg(history_from="2019-10-01", history_until="2020-02-29")
    chosen = {d: n for d, n in counts.items() if cfg.ml.history_from <= d <= cfg.ml.history_until}  # = history.restrict
    h = check(chosen, cfg)
    assert (h.first, h.last) == (date(2019, 10, 1), date(2020, 2, 29))


def test_short_gaps_are_tolerated_long_ones_split():
    counts = days("2020-01-01", 60)
    for d in (date(2020, 1, 10), date(2020, 1, 11)):  # two quiet days: a holiday, still one history
        counts.pop(d)
    assert len(stretches(counts, max_gap_days=2, min_day_share=0.02)) == 1
    counts.pop(date(2020, 1, 12))  # three in a row: split
    assert len(stretches(counts, max_gap_days=2, min_day_share=0.02)) == 2
    with pytest.raises(InsufficientData, match="separate stretches"):
        check(counts, _cfg())


def test_stray_events_far_away_are_left_out_not_learned_across():
    """One valid event dated 2001 (it lands in silver) must not stretch the panel over 19 years."""
    counts = {**days("2020-01-01", 60), date(2001, 1, 1): 1}
    h = check(counts, _cfg())
    assert (h.first, h.last, h.left_out) == (date(2020, 1, 1), date(2020, 2, 29), 1)


def test_folds_that_hold_almost_nothing_are_refused():
    counts = days("2020-01-01", 90)
    for i in range(1, 17):  # the last 16 days thin out to 3 % of the usual volume (still "active" days)
        counts[date(2020, 3, 30) - timedelta(days=i - 1)] = 30
    with pytest.raises(InsufficientData, match=r"backtest fold 3 .*ml\.min_fold_share") as err:
        check(counts, _cfg())
    assert "\n" not in str(err.value)


def test_empty_history_is_refused():
    with pytest.raises(InsufficientData, match="no silver events"):
        check({}, _cfg())


def test_bad_range_is_a_config_error():
    from lib.config import ConfigError

    with pytest.raises(ConfigError, match="history_from 2020-03-01 is after history_until 2020-02-01"):
        _cfg(history_from="2020-03-01", history_until="2020-02-01")
