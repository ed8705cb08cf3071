"""The events of a batch's sessions: the last steps of a batch of shoppers (see ``simulation``).

In the order they draw from the run's generator:

6. ``_draw_views``, ``_draw_carts``, ``_draw_removes``, ``_purchases``: each event's product and its
   sort key inside the session (adds often follow a view, removes follow an add, purchases come
   last as a run of the interest set);
7. ``_in_session_order``: the events of each session in order;
8. ``_add_duplicates``: exact duplicate rows (the same row again in the same second);
9. ``_offsets_in_session``: the seconds between a session's events, hence each event's offset and
   each session's duration;
10. ``_session_starts``: each session's start on the traffic curve, a user's sessions >= 30 min apart;
11. ``_inside_window``: the events inside the window (at most ``max_rows``), with compact indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.data.generator.calibration import (
    CART,
    CART_FROM_VIEW,
    DUP_EXTRA_COPY,
    MAX_GAP_S,
    PURCHASE,
    REMOVE,
    REMOVE_FROM_SESSION_CART,
    SESSION_GAP_MIN_S,
    VIEW,
    VIEW_FROM_INTEREST,
    _Clock,
    _Plan,
)
from lib.data.generator.catalogue import _Catalog
from lib.data.generator.shoppers import _Interest, _segment_starts, _Sessions, _Sizes


def _within(counts: np.ndarray) -> np.ndarray:
    """0..n-1 inside each segment of np.repeat(..., counts)."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(_segment_starts(counts), counts)


@dataclass
class _Rows:
    """Events of one type: session index, product index, sort key inside the session."""

    session: np.ndarray
    product: np.ndarray
    key: np.ndarray


def _draw_views(rng: np.random.Generator, cat: _Catalog, interest: _Interest, nv: np.ndarray,
                t_pos: np.ndarray) -> _Rows:
    """Views: some from the user's interest set, the rest from the popularity at the session's time."""
    v_s = np.repeat(np.arange(len(nv)), nv)
    n_v = len(v_s)
    v_prod = np.empty(n_v, dtype=np.int64)
    fi = rng.random(n_v) < VIEW_FROM_INTEREST
    v_prod[fi] = interest.pick(rng, v_s[fi], int(fi.sum()))
    v_prod[~fi] = cat.draw(rng, "view", t_pos[v_s[~fi]])
    v_key = rng.random(n_v)
    return _Rows(session=v_s, product=v_prod, key=v_key)


def _draw_carts(rng: np.random.Generator, interest: _Interest, sizes: _Sizes, is_order: np.ndarray,
                views: _Rows) -> _Rows:
    """Adds: in an order session the order's run (then other items of the set); elsewhere often a
    product viewed earlier in the session (just after its view), else an item of the set."""
    nc, nv = sizes.carts, sizes.views
    c_s = np.repeat(np.arange(len(nc)), nc)
    c_j = _within(nc)
    n_c = len(c_s)
    c_prod = np.empty(n_c, dtype=np.int64)
    c_key = rng.random(n_c)
    in_order = is_order[c_s]
    run = in_order & (c_j < sizes.items_carted[c_s])
    idx = np.flatnonzero(run)
    c_prod[idx] = interest.run(c_s[idx], c_j[idx])
    idx = np.flatnonzero(in_order & ~run)
    c_prod[idx] = interest.outside_order(rng, c_s[idx], len(idx))
    fv = ~in_order & (rng.random(n_c) < CART_FROM_VIEW) & (nv[c_s] > 0)
    idx = np.flatnonzero(fv)
    vi = _segment_starts(nv)[c_s[idx]] + (rng.random(len(idx)) * nv[c_s[idx]]).astype(np.int64)
    c_prod[idx] = views.product[vi]
    c_key[idx] = views.key[vi] + 1e-6 + 1e-3 * rng.random(len(idx))
    idx = np.flatnonzero(~in_order & ~fv)
    c_prod[idx] = interest.pick(rng, c_s[idx], len(idx))
    return _Rows(session=c_s, product=c_prod, key=c_key)


def _draw_removes(rng: np.random.Generator, interest: _Interest, sizes: _Sizes, is_order: np.ndarray,
                  carts: _Rows) -> _Rows:
    """Removes: in an order session an item outside the order's run; elsewhere mostly a product added
    in the same session (after its add), else an item of the set."""
    nc, nr = sizes.carts, sizes.removes
    r_s = np.repeat(np.arange(len(nr)), nr)
    n_r = len(r_s)
    r_prod = np.empty(n_r, dtype=np.int64)
    r_key = rng.random(n_r)
    r_order = is_order[r_s]
    idx = np.flatnonzero(r_order)
    r_prod[idx] = interest.outside_order(rng, r_s[idx], len(idx))
    fc = ~r_order & (nc[r_s] > 0) & (rng.random(n_r) < REMOVE_FROM_SESSION_CART)
    idx = np.flatnonzero(fc)
    ci = _segment_starts(nc)[r_s[idx]] + (rng.random(len(idx)) * nc[r_s[idx]]).astype(np.int64)
    r_prod[idx] = carts.product[ci]
    r_key[idx] = carts.key[ci] + (1.5 - carts.key[ci]) * rng.uniform(0.01, 1.0, len(idx))
    idx = np.flatnonzero(~r_order & ~fc)
    r_prod[idx] = interest.pick(rng, r_s[idx], len(idx))
    return _Rows(session=r_s, product=r_prod, key=r_key)


def _purchases(interest: _Interest, m: np.ndarray) -> _Rows:
    """Purchases: the order's run of the interest set, at checkout (after every other event)."""
    p_s = np.repeat(np.arange(len(m)), m)
    p_j = _within(m)
    return _Rows(session=p_s, product=interest.run(p_s, p_j), key=2.0 + p_j)


def _in_session_order(views: _Rows, carts: _Rows, removes: _Rows,
                      purchases: _Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All events as (session, type, product), by session and then by sort key."""
    parts = ((views, VIEW), (carts, CART), (removes, REMOVE), (purchases, PURCHASE))
    e_s = np.concatenate([rows.session for rows, _ in parts])
    e_type = np.concatenate([np.full(len(rows.session), etype) for rows, etype in parts]).astype(np.int8)
    e_prod = np.concatenate([rows.product for rows, _ in parts])
    o = np.lexsort((np.concatenate([rows.key for rows, _ in parts]), e_s))
    return e_s[o], e_type[o], e_prod[o]


def _add_duplicates(rng: np.random.Generator, plan: _Plan, e_s: np.ndarray, e_type: np.ndarray,
                    e_prod: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact duplicates: the same row again (sometimes twice) in the same second. Returns the events
    with their copies and a mask of the copies."""
    dup = rng.random(len(e_s)) < plan.p_dup[e_type]
    reps = 1 + dup * (1 + (rng.random(len(e_s)) < DUP_EXTRA_COPY))
    e_copy = _within(reps) > 0
    src = np.repeat(np.arange(len(e_s)), reps)
    return e_s[src], e_type[src], e_prod[src], e_copy


def _offsets_in_session(rng: np.random.Generator, e_s: np.ndarray, e_type: np.ndarray, e_copy: np.ndarray,
                        n_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaps inside a session (seconds, by event type; 0 before a session's first event and a copy):
    each event's offset from its session's start, and each session's duration."""
    n_e = len(e_s)
    first = np.ones(n_e, dtype=bool)
    first[1:] = e_s[1:] != e_s[:-1]
    prev_type = np.concatenate([[VIEW], e_type[:-1]])
    lognormal = rng.lognormal(0.0, 1.0, n_e)
    r01 = rng.random(n_e)
    gap = 40.0 * lognormal  # views
    is_cart = e_type == CART
    gap[is_cart] = 15.0 * lognormal[is_cart] ** 0.9
    is_rm = e_type == REMOVE
    gap[is_rm] = np.where(r01[is_rm] < 0.4, np.floor(r01[is_rm] * 5), 10.0 * lognormal[is_rm])
    is_p = e_type == PURCHASE
    gap[is_p] = np.where(prev_type[is_p] == PURCHASE, (r01[is_p] < 0.35).astype(float),
                         45.0 * lognormal[is_p] ** 0.8)
    gap = np.minimum(gap, MAX_GAP_S)
    gap[first | e_copy] = 0.0
    cs = np.cumsum(gap)
    first_idx = np.flatnonzero(first)
    offset = cs - np.repeat(cs[first_idx], np.diff(np.append(first_idx, n_e)))
    dur = np.zeros(n_s)
    last_idx = np.append(first_idx[1:], n_e) - 1
    dur[e_s[last_idx]] = offset[last_idx]
    return offset, dur


def _session_starts(rng: np.random.Generator, clock: _Clock, sessions: _Sessions, dur: np.ndarray) -> np.ndarray:
    """Session starts (seconds after the clock's start): the sessions' positions mapped through the
    traffic curve (over the window plus a lead-in, so that shoppers are already mid-visit when the
    window opens); a user's sessions are then pushed >= 30 min apart where possible."""
    s_user = sessions.user
    ext_span = clock.span_s
    start = clock.quantile(sessions.pos)
    for _ in range(8):
        o = np.lexsort((start, s_user))
        su, st, du = s_user[o], start[o], dur[o]
        bad = np.flatnonzero((su[1:] == su[:-1]) & (st[1:] < st[:-1] + du[:-1] + SESSION_GAP_MIN_S))
        if len(bad) == 0:
            break
        pause = rng.uniform(SESSION_GAP_MIN_S, 3 * 3600, len(bad))
        later = st[bad] + du[bad] + pause
        earlier = st[bad] - pause - du[bad + 1]
        new = np.where(later < ext_span, later, earlier)
        ok = new >= 0
        start[o[bad + 1][ok]] = new[ok]
    return start


def _inside_window(t: np.ndarray, span: int, max_rows: int, e_s: np.ndarray, e_type: np.ndarray,
                   e_prod: np.ndarray, s_user: np.ndarray, home: np.ndarray) -> dict:
    """Keep what falls inside the window (visits cut by its edges are partial, as in the real monthly
    files), then cut at max_rows (drops trailing users; the last visit may be cut short). The kept
    sessions and users are renumbered 0.. in their order."""
    inside = np.flatnonzero((t >= 0) & (t < span))[:max_rows]
    e_s, t, e_type, e_prod = e_s[inside], t[inside], e_type[inside], e_prod[inside]
    sessions, e_s = np.unique(e_s, return_inverse=True)
    users, e_u = np.unique(s_user[sessions], return_inverse=True)
    return {  # compact dtypes: int32 holds 68 years of seconds and 2 billion users/sessions
        "time": t.astype(np.int32),
        "etype": e_type.astype(np.int8),
        "product": e_prod.astype(np.int32),
        "user": e_u[e_s].astype(np.int32),
        "session": e_s.astype(np.int32),
        "user_home": home[users],
        "n_users": len(users),
        "n_sessions": len(sessions),
    }
