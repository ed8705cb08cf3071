"""One generation run: the window, batches of shoppers, and the run-wide finishing steps.

``_events(rows, seed, start, days)`` validates the window and returns the run's ``_Events``: compact
arrays in time order that the writers render (as a DataFrame or as CSV text). The steps, in the
order they draw from the run's single ``numpy.random.Generator`` (PCG64, seeded with ``seed``):

1. ``_simulate_batches``: shoppers in bounded batches until the window holds ``rows`` events; a
   batch (``_simulate_batch``) runs the steps of ``shoppers`` (who visits when, for what) and then
   those of ``session_events`` (the events of those visits and their times);
2. ``_add_gift_certificates``: a few purchase lines become gift certificates (negative prices);
3. ``_drop_sessions``: a few rows lose their session id (never a purchase);
4. ``_price_variants_in_time_order``: each row's price variant (a product's price may change
   once), then every array sorted by time;
5. the ids: user ids (``_user_ids``) and session ids (``_uuid_like``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from lib.data.generator.calibration import (
    _SECONDS_PER_DAY,
    BATCH_ROWS,
    EVENTS_PER_SESSION,
    LEAD_IN_S,
    MISSING_SESSION_SHARE,
    NEGATIVE_ROW_SHARE,
    NEGATIVE_WEIGHTS,
    ORDER_S,
    PURCHASE,
    _Clock,
    _Plan,
    _plan,
    _sessions_per_user_cdf,
    default_days,
)
from lib.data.generator.catalogue import _Catalog, _catalog
from lib.data.generator.session_events import (
    _add_duplicates,
    _draw_carts,
    _draw_removes,
    _draw_views,
    _in_session_order,
    _inside_window,
    _offsets_in_session,
    _purchases,
    _session_starts,
)
from lib.data.generator.shoppers import (
    _chain_orders,
    _draw_interest_sets,
    _draw_session_sizes,
    _draw_sessions,
    _draw_shoppers,
)


@dataclass
class _Events:
    time: np.ndarray  # int64 epoch seconds, non-decreasing
    etype: np.ndarray  # int8 index into EVENT_TYPES
    pvar: np.ndarray  # int32: 2 * product index + price variant
    user: np.ndarray  # int32 index into user_ids
    session: np.ndarray  # int32 index into session_ids, -1 = missing
    user_ids: np.ndarray  # int64
    session_ids: np.ndarray  # object (36-char strings)
    n_sessions: int


def _parse_start(value) -> int:
    """A date / datetime / string -> epoch seconds (UTC; naive values are UTC)."""
    if isinstance(value, datetime):
        ts = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(" UTC"):
            text = text[:-4]
        try:
            ts = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"start must be a date like 2019-10-01 (got {value!r})") from exc
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
    else:
        try:
            ts = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
        except AttributeError as exc:
            raise ValueError(f"start must be a date like 2019-10-01 (got {value!r})") from exc
    return int(ts.timestamp())


def parse_window(rows, start, days) -> tuple[int, int]:
    """The run's window as (start, span) in epoch seconds; ValueError with a one-line message when
    ``rows``, ``start`` or ``days`` is not valid (the command line checks its arguments with it)."""
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows <= 0:
        raise ValueError(f"rows must be a positive integer (got {rows!r})")
    days = default_days(int(rows)) if days is None else float(days)
    if not math.isfinite(days) or days <= 0:
        raise ValueError(f"days must be a positive number (got {days!r})")
    if days > 20_000:
        raise ValueError(f"days must be at most 20000 (got {days!r})")
    return _parse_start(start), max(1, int(round(days * _SECONDS_PER_DAY)))


def _events(rows, seed, start, days) -> _Events:
    start_s, span_s = parse_window(rows, start, days)
    return _simulate(int(rows), int(seed), start_s, span_s)


def _simulate(rows: int, seed: int, start_s: int, span_s: int) -> _Events:
    rng = np.random.default_rng(seed)
    cat = _catalog()
    ev, n_users, n_sessions, user_home = _simulate_batches(rng, cat, rows, start_s, span_s)
    _add_gift_certificates(rng, cat, ev, rows)
    _drop_sessions(rng, ev)
    _price_variants_in_time_order(cat, ev, start_s)
    user_ids = _user_ids(rng, n_users, user_home)
    session_ids = _uuid_like(rng, n_sessions)
    return _Events(
        time=start_s + ev.pop("time").astype(np.int64),
        etype=ev.pop("etype").astype(np.int8),
        pvar=ev.pop("product"),
        user=ev.pop("user"),
        session=ev.pop("session"),
        user_ids=user_ids,
        session_ids=session_ids,
        n_sessions=n_sessions,
    )


def _simulate_batches(rng: np.random.Generator, cat: _Catalog, rows: int, start_s: int,
                      span_s: int) -> tuple[dict, int, int, np.ndarray]:
    """Batches of shoppers until ``rows`` events fall inside the window: the events' arrays (times
    relative to ``start_s``, grouped by batch, user and session; user and session indices run over the
    whole run), the numbers of users and sessions, and each user's home position."""
    plan = _plan()
    lead_in = min(LEAD_IN_S, span_s)
    clock = _Clock(start_s - lead_in, span_s + lead_in)
    cdf, mean_sessions = _sessions_per_user_cdf(round(clock.span_s / _SECONDS_PER_DAY, 6))
    kept_share = span_s / (span_s + lead_in)

    parts = []
    remaining = rows
    user_base = 0
    session_base = 0
    while remaining > 0:
        target = min(remaining, BATCH_ROWS)  # bounded batches keep the temporaries small
        n_users = int(target / (EVENTS_PER_SESSION * mean_sessions * kept_share) * 1.04) + 8
        batch = _simulate_batch(rng, cat, plan, clock, lead_in, cdf, n_users, remaining)
        batch["user"] += user_base
        batch["session"] += session_base
        user_base += batch.pop("n_users")
        session_base += batch.pop("n_sessions")
        remaining -= len(batch["time"])
        parts.append(batch)

    ev = {}
    for key in list(parts[0]):
        ev[key] = np.concatenate([p.pop(key) for p in parts])
    del parts
    user_home = ev.pop("user_home")
    return ev, user_base, session_base, user_home


def _simulate_batch(rng: np.random.Generator, cat: _Catalog, plan: _Plan, clock: _Clock, lead_in: int,
                    cdf: np.ndarray, n_users: int, max_rows: int) -> dict:
    """A batch of ``n_users`` shoppers: users -> sessions -> events (grouped by user and session) with
    times relative to the window start, keeping at most ``max_rows`` events inside the window.
    ``clock`` covers the lead-in too. Steps 1-5 are in ``shoppers``, 6-11 in ``session_events``."""
    days = clock.span_s / _SECONDS_PER_DAY
    shoppers = _draw_shoppers(rng, cdf, n_users, days)
    sessions = _draw_sessions(rng, shoppers, days)
    _chain_orders(rng, sessions, days)
    sizes = _draw_session_sizes(rng, plan, sessions.kind)
    interest = _draw_interest_sets(rng, cat, clock, shoppers, sessions, sizes.items, days)
    is_order = sessions.kind == ORDER_S
    t_pos = clock.start_s + clock.quantile(sessions.pos)  # for the time-varying popularity
    views = _draw_views(rng, cat, interest, sizes.views, t_pos)
    carts = _draw_carts(rng, interest, sizes, is_order, views)
    removes = _draw_removes(rng, interest, sizes, is_order, carts)
    purchases = _purchases(interest, sizes.items)
    e_s, e_type, e_prod = _in_session_order(views, carts, removes, purchases)
    e_s, e_type, e_prod, e_copy = _add_duplicates(rng, plan, e_s, e_type, e_prod)
    offset, duration = _offsets_in_session(rng, e_s, e_type, e_copy, len(sessions.kind))
    start = _session_starts(rng, clock, sessions, duration)
    t = np.floor(start[e_s] + offset).astype(np.int64) - lead_in
    return _inside_window(t, clock.span_s - lead_in, max_rows, e_s, e_type, e_prod, sessions.user, shoppers.home)


def _add_gift_certificates(rng: np.random.Generator, cat: _Catalog, ev: dict, rows: int) -> None:
    """Gift-certificate lines (negative prices), mostly in orders: a few purchases change product."""
    k_neg = int(round(rows * NEGATIVE_ROW_SHARE))
    if rows >= 20_000:
        k_neg = max(k_neg, 1)
    purchases = np.flatnonzero(ev["etype"] == PURCHASE)
    if k_neg and len(purchases):
        pick = rng.choice(purchases, min(k_neg, len(purchases)), replace=False)
        ev["product"][pick] = cat.certificates[rng.choice(len(cat.certificates), len(pick),
                                                          p=np.asarray(NEGATIVE_WEIGHTS))]


def _drop_sessions(rng: np.random.Generator, ev: dict) -> None:
    """Rows without a session (never a purchase): their session index becomes -1."""
    missing = (rng.random(len(ev["time"])) < MISSING_SESSION_SHARE) & (ev["etype"] != PURCHASE)
    ev["session"][missing] = -1


def _price_variants_in_time_order(cat: _Catalog, ev: dict, start_s: int) -> None:
    """Each row's product index becomes 2 * product + price variant (the price after the product's
    change, when it happened before the row), then every array is put in time order (stable)."""
    variant = (start_s + ev["time"].astype(np.int64)) >= cat.change_time[ev["product"]]
    ev["product"] = 2 * ev["product"] + variant
    del variant
    order = np.argsort(ev["time"], kind="stable")
    for key in list(ev):
        ev[key] = ev[key][order]


def _uuid_like(rng: np.random.Generator, n: int) -> np.ndarray:
    """36-char UUID-like strings; ~85 % look like v4, the rest are plain random hex."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    v4 = rng.random(n) < 0.85
    raw[v4, 6] = (raw[v4, 6] & 0x0F) | 0x40
    raw[v4, 8] = (raw[v4, 8] & 0x3F) | 0x80
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    h = np.empty((n, 32), dtype=np.uint8)
    h[:, 0::2] = hexdigits[raw >> 4]
    h[:, 1::2] = hexdigits[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for (a, b), (c, d) in zip(((0, 8), (9, 13), (14, 18), (19, 23), (24, 36)),
                              ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32))):
        out[:, a:b] = h[:, c:d]
    return out.view("S36").ravel().astype("U36").astype(object)


def _user_ids(rng: np.random.Generator, n: int, home: np.ndarray) -> np.ndarray:
    """Unique user ids in the real range; 'new' (recent) ids grow with the user's home time."""
    lo, hi = 465_496, 622_090_237
    ids = np.zeros(0, dtype=np.int64)
    while len(ids) < n:
        k = int((n - len(ids)) * 1.05) + 16
        r = rng.random(k)
        cand = np.where(r < 0.05, rng.integers(lo, 200_000_000, k),
                        np.where(r < 0.25, rng.integers(200_000_000, 450_000_000, k),
                                 rng.integers(450_000_000, hi + 1, k)))
        merged = np.concatenate([ids, cand])
        _, first = np.unique(merged, return_index=True)
        ids = merged[np.sort(first)][:n]
    recent = np.flatnonzero(ids >= 450_000_000)
    ids[recent[np.argsort(home[recent], kind="stable")]] = np.sort(ids[recent])
    return ids

