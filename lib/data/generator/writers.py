"""The events as tables: DataFrames (``generate_events``, ``iter_events``) and the CSV file (``write_csv``).

The CSV is the real export's format (``lib.schema.CSV_COLUMNS``, times ``2019-10-01 00:00:00 UTC``,
missing values as empty fields, prices ``%.2f``), rendered from the simulated events chunk by chunk
and written to a temporary name beside the target, then renamed.
"""

from __future__ import annotations

import os
import time as _time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from lib.data.generator.calibration import DEFAULT_SEED, DEFAULT_START
from lib.data.generator.catalogue import _catalog
from lib.data.generator.simulation import _Events, _events
from lib.schema import CSV_COLUMNS, EVENT_TYPES, format_csv_time


@dataclass(frozen=True)
class GenerationSummary:
    """What ``write_csv`` wrote."""

    path: Path
    rows: int
    users: int
    sessions: int
    first_event_time: str
    last_event_time: str
    seconds: float  # wall-clock generation + writing time
    user_ids: np.ndarray  # the distinct user ids that appear in the file (sorted)


@lru_cache(maxsize=1)
def _fast_times_match_contract() -> bool:
    probes = np.array([0, 1_569_888_000, 1_583_020_799, 1_577_836_800 + 3723, 1_700_000_000])
    return list(_fast_times(probes)) == [
        format_csv_time(datetime.fromtimestamp(int(s), tz=timezone.utc)) for s in probes
    ]


def _fast_times(seconds: np.ndarray) -> list[str]:
    iso = np.datetime_as_string(np.asarray(seconds, dtype=np.int64).astype("datetime64[s]"), unit="s")
    return [f"{s[:10]} {s[11:]} UTC" for s in iso.tolist()]


def _time_strings(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> ``lib.schema`` CSV times. A vectorised rendering is used when it agrees with
    ``format_csv_time`` on probe values (checked once); otherwise every value goes through it."""
    if _fast_times_match_contract():
        out = _fast_times(seconds)
    else:  # pragma: no cover - only if the contract's CSV_TIME_FORMAT changes
        out = [format_csv_time(datetime.fromtimestamp(int(s), tz=timezone.utc)) for s in seconds]
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


def _frame(ev: _Events, lo: int, hi: int) -> pd.DataFrame:
    cat = _catalog()
    pv = ev.pvar[lo:hi]
    p, variant = pv // 2, pv % 2
    sess = ev.session[lo:hi]
    session = ev.session_ids[np.maximum(sess, 0)].copy()
    session[sess < 0] = None
    return pd.DataFrame(
        {
            "event_time": pd.to_datetime(ev.time[lo:hi], unit="s", utc=True),
            "event_type": np.asarray(EVENT_TYPES, dtype=object)[ev.etype[lo:hi]],
            "product_id": cat.product_id[p],
            "category_id": cat.category_id[p],
            "category_code": cat.category_code[p],
            "brand": cat.brand[p],
            "price": cat.price[p, variant],
            "user_id": ev.user_ids[ev.user[lo:hi]],
            "user_session": session,
        },
        columns=list(CSV_COLUMNS),
    )


def iter_events(rows: int, seed: int = DEFAULT_SEED, start=DEFAULT_START, days: float | None = None,
                chunk_rows: int = 500_000) -> Iterator[pd.DataFrame]:
    """The events of ``generate_events`` as DataFrame chunks (in time order), for big ``rows``."""
    ev = _events(rows, seed, start, days)
    for lo in range(0, len(ev.time), chunk_rows):
        yield _frame(ev, lo, min(lo + chunk_rows, len(ev.time)))


def generate_events(rows: int, seed: int = DEFAULT_SEED, start=DEFAULT_START,
                    days: float | None = None) -> pd.DataFrame:
    """``rows`` synthetic events in time order, starting at ``start`` (UTC) over ``days`` days.

    ``days`` defaults to ``default_days(rows)`` (the real shop's 136k events/day, >= 1 day); a
    smaller value packs the same rows into less time (more shoppers at once), e.g.
    ``days=30 / 1440`` for half an hour. Columns are ``lib.schema.CSV_COLUMNS``: ``event_time``
    (tz-aware UTC, whole seconds), ``event_type``, ``product_id``, ``category_id``, ``category_code``
    (None when missing), ``brand`` (None when missing), ``price`` (float, two decimals), ``user_id``,
    ``user_session`` (None when missing). Same arguments -> same frame.
    """
    ev = _events(rows, seed, start, days)
    return _frame(ev, 0, len(ev.time))


def _csv_chunk(ev: _Events, lo: int, hi: int, user_str: np.ndarray, session_str: np.ndarray) -> str:
    t = ev.time[lo:hi]
    new = np.ones(len(t), dtype=bool)
    new[1:] = t[1:] != t[:-1]
    times = _time_strings(t[new])[np.cumsum(new) - 1]
    types = np.asarray(EVENT_TYPES, dtype=object)[ev.etype[lo:hi]]
    frags = _catalog().fragments[ev.pvar[lo:hi]]
    users = user_str[ev.user[lo:hi]]
    sessions = session_str[ev.session[lo:hi]]  # -1 -> the trailing ""
    lines = map(",".join, zip(times.tolist(), types.tolist(), frags.tolist(), users.tolist(), sessions.tolist()))
    return "\n".join(lines) + "\n"


def temp_path(path: Path) -> Path:
    """The name beside ``path`` that the writers write to before renaming (per process)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_csv(out, rows: int, seed: int = DEFAULT_SEED, start=DEFAULT_START, days: float | None = None,
              *, chunk_rows: int = 200_000) -> GenerationSummary:
    """Generate ``rows`` events (see ``generate_events``) straight into a CSV file in the real format.

    Header ``lib.schema.CSV_COLUMNS``, times ``2019-10-01 00:00:00 UTC``, missing values as empty
    fields, prices ``%.2f`` (``0.00``, ``-7.94``), rows in non-decreasing time order. The file is
    written to a temporary name beside ``out`` and renamed, so readers never see half a file.
    """
    t0 = _time.perf_counter()
    path = Path(out)
    ev = _events(rows, seed, start, days)
    user_str = ev.user_ids.astype(str).astype(object)
    session_str = np.append(ev.session_ids, "")
    tmp = temp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(",".join(CSV_COLUMNS) + "\n")
            for lo in range(0, len(ev.time), chunk_rows):
                fh.write(_csv_chunk(ev, lo, min(lo + chunk_rows, len(ev.time)), user_str, session_str))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    first, last = _time_strings(ev.time[[0, -1]])
    return GenerationSummary(
        path=path,
        rows=len(ev.time),
        users=len(ev.user_ids),
        sessions=ev.n_sessions,
        first_event_time=first,
        last_event_time=last,
        seconds=_time.perf_counter() - t0,
        user_ids=np.sort(ev.user_ids),
    )
