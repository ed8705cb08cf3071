"""Who shops, when, and for what: the first steps of a batch of shoppers (see ``simulation``).

In the order they draw from the run's generator:

1. ``_draw_shoppers``: sessions per user (heavy-tailed), correlated buy / cart propensities, each
   user's "home" position in the window and how far her visits spread around it;
2. ``_draw_sessions``: each session's position in the window and its kind (browse, cart, order);
   among a user's cart/order visits the ones that buy tend to come later;
3. ``_chain_orders``: a buyer's orders follow each other after log-normal gaps (weeks);
4. ``_draw_session_sizes``: views, adds, removes and order items per session;
5. ``_draw_interest_sets``: per user the products she keeps coming back to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lib.data.generator.calibration import (
    BROWSE_REMOVE_MEAN,
    BROWSE_REMOVE_SESSIONS,
    BROWSE_S,
    BUY_ACTIVITY_EXPONENT,
    CART_ACTIVITY_EXPONENT,
    CART_REMOVE_EXTRA,
    CART_S,
    CART_SHARE,
    CART_VIEWS,
    MAX_BUY_PROB,
    ORDER_CART_ITEM_PROB,
    ORDER_CART_PROB,
    ORDER_EXTRA_CARTS,
    ORDER_LATER_BIAS,
    ORDER_REMOVE_EXTRA,
    ORDER_REMOVE_RATIO,
    ORDER_S,
    ORDER_SHARE,
    ORDER_VIEWS,
    PROPENSITY_RHO,
    PROPENSITY_SIGMA_BUY,
    PROPENSITY_SIGMA_CART,
    REORDER_MEDIAN_DAYS,
    REORDER_SIGMA,
    SPREAD_MEDIAN_DAYS,
    SPREAD_SIGMA,
    _Clock,
    _Plan,
)
from lib.data.generator.catalogue import _Catalog


def _nb(rng: np.random.Generator, mean, shape: float, size=None) -> np.ndarray:
    """Negative-binomial counts with the given mean (scalar or array) and shape (dispersion)."""
    mean = np.maximum(np.asarray(mean, dtype=float), 0.0)
    return rng.negative_binomial(shape, shape / (shape + mean), size)


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


@dataclass
class _Shoppers:
    n_sessions: np.ndarray  # sessions per user in the window (lead-in included)
    buy: np.ndarray  # probability that a visit is an order
    cart: np.ndarray  # probability that a visit fills a cart without buying
    home: np.ndarray  # position of the user's visits in the window, days
    spread: np.ndarray  # spread of the visits around home, days


@dataclass
class _Sessions:
    user: np.ndarray  # user index per session (grouped by user)
    pos: np.ndarray  # quantile of the traffic curve (the session's start)
    kind: np.ndarray  # BROWSE_S, CART_S or ORDER_S


@dataclass
class _Sizes:
    views: np.ndarray  # per session
    carts: np.ndarray
    removes: np.ndarray
    items: np.ndarray  # purchase rows (order sessions)
    items_carted: np.ndarray  # of which added in the same session


@dataclass
class _Interest:
    """Each user's interest set (flat, one segment per user) seen from her sessions: a session
    starts its order's run of the set at ``offset``."""

    products: np.ndarray
    size: np.ndarray  # per session: size of its user's set
    first: np.ndarray  # per session: where its user's set starts in ``products``
    offset: np.ndarray  # per session: first item of the order's run
    items: np.ndarray  # per session: length of the order's run (purchase rows)

    def pick(self, rng: np.random.Generator, sess: np.ndarray, count: int) -> np.ndarray:
        """Any item of the session user's set."""
        return self.products[self.first[sess] + (rng.random(count) * self.size[sess]).astype(np.int64)]

    def run(self, sess: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Item ``j`` of the session's order run."""
        return self.products[self.first[sess] + (self.offset[sess] + j) % self.size[sess]]

    def outside_order(self, rng: np.random.Generator, sess: np.ndarray, count: int) -> np.ndarray:
        """An item of the set outside the session's order run."""
        span_k = np.maximum(self.size[sess] - self.items[sess], 1)
        pos = (self.offset[sess] + self.items[sess] + (rng.random(count) * span_k).astype(np.int64)) % self.size[sess]
        return self.products[self.first[sess] + pos]


def _draw_shoppers(rng: np.random.Generator, cdf: np.ndarray, n_users: int, days: float) -> _Shoppers:
    """Sessions per user from ``cdf``; buy and cart propensities (log-normal, correlated) scaled so
    the session-weighted means hit ORDER_SHARE and CART_SHARE after capping; home and spread."""
    n_ses = np.searchsorted(cdf, rng.random(n_users) * cdf[-1], side="right") + 1
    z1 = rng.standard_normal(n_users)
    z2 = PROPENSITY_RHO * z1 + math.sqrt(1 - PROPENSITY_RHO**2) * rng.standard_normal(n_users)
    buy = np.exp(PROPENSITY_SIGMA_BUY * z1) * n_ses ** -BUY_ACTIVITY_EXPONENT
    crt = np.exp(PROPENSITY_SIGMA_CART * z2) * n_ses ** CART_ACTIVITY_EXPONENT
    # nobody orders much faster than the re-order pace: expected orders <= 1 + days / (2 x median gap)
    buy_cap = np.minimum(MAX_BUY_PROB, (1.0 + days / (2 * REORDER_MEDIAN_DAYS)) / n_ses)
    for _ in range(6):  # session-weighted means on target after capping
        buy *= ORDER_SHARE / np.average(np.minimum(buy, buy_cap), weights=n_ses)
        crt *= CART_SHARE / np.average(np.minimum(crt, 0.95 - np.minimum(buy, buy_cap)), weights=n_ses)
    buy = np.minimum(buy, buy_cap)
    crt = np.minimum(crt, 0.95 - buy)
    home = rng.random(n_users) * days
    spread = SPREAD_MEDIAN_DAYS * np.exp(SPREAD_SIGMA * rng.standard_normal(n_users))
    return _Shoppers(n_sessions=n_ses, buy=buy, cart=crt, home=home, spread=spread)


def _draw_sessions(rng: np.random.Generator, shoppers: _Shoppers, days: float) -> _Sessions:
    """Sessions grouped by user: position around the user's home (reflected at the window's edges)
    and kind from her propensities; a user's order visits tend to come after her cart visits."""
    n_users = len(shoppers.n_sessions)
    s_user = np.repeat(np.arange(n_users), shoppers.n_sessions)
    n_s = len(s_user)
    x = shoppers.home[s_user] + shoppers.spread[s_user] * rng.standard_normal(n_s)
    x = np.mod(x, 2 * days)
    x = np.where(x > days, 2 * days - x, x)
    s_pos = x / days  # quantile of the traffic curve
    u = rng.random(n_s)
    buy, crt = shoppers.buy, shoppers.cart
    kind = np.where(u < buy[s_user], ORDER_S, np.where(u < buy[s_user] + crt[s_user], CART_S, BROWSE_S))
    # among a user's cart/order visits, the ones that buy tend to come later (add now, buy later)
    nb = np.flatnonzero(kind != BROWSE_S)
    key = (kind[nb] == ORDER_S) * ORDER_LATER_BIAS + rng.random(len(nb))
    slots = nb[np.lexsort((s_pos[nb], s_user[nb]))]
    kind[slots] = kind[nb[np.lexsort((key, s_user[nb]))]]
    return _Sessions(user=s_user, pos=s_pos, kind=kind)


def _chain_orders(rng: np.random.Generator, sessions: _Sessions, days: float) -> None:
    """A buyer's orders follow each other after log-normal gaps (days between repeat orders); a chain
    longer than the window is squeezed into it. Moves the order sessions' ``pos`` in place."""
    s_user, s_pos, kind = sessions.user, sessions.pos, sessions.kind
    o_idx = np.flatnonzero(kind == ORDER_S)
    if len(o_idx):
        o_idx = o_idx[np.lexsort((s_pos[o_idx], s_user[o_idx]))]
        o_user = s_user[o_idx]
        o_first = np.ones(len(o_idx), dtype=bool)
        o_first[1:] = o_user[1:] != o_user[:-1]
        o_gap = np.where(o_first, 0.0, rng.lognormal(math.log(REORDER_MEDIAN_DAYS), REORDER_SIGMA, len(o_idx)))
        o_grp = np.cumsum(o_first) - 1
        o_cs = np.cumsum(o_gap)
        o_chain = o_cs - o_cs[o_first][o_grp]
        o_len = np.zeros(int(o_first.sum()))
        np.maximum.at(o_len, o_grp, o_chain)
        n_chain = len(o_len)
        o_scale = np.where(o_len > days, days / np.maximum(o_len, 1e-9) * rng.uniform(0.3, 1.0, n_chain), 1.0)
        o_len = o_len * o_scale
        o_base = s_pos[o_idx[o_first]] * days
        overflow = o_base + o_len > days  # re-place such a chain at random where it fits
        o_base = np.where(overflow, rng.random(n_chain) * (days - o_len), o_base)
        s_pos[o_idx] = np.clip((o_base[o_grp] + o_chain * o_scale[o_grp]) / days, 0.0, 1.0)


def _draw_session_sizes(rng: np.random.Generator, plan: _Plan, kind: np.ndarray) -> _Sizes:
    """Views, adds, removes and order items per session, by kind, with the means of ``plan``."""
    n_s = len(kind)
    is_b, is_c, is_o = kind == BROWSE_S, kind == CART_S, kind == ORDER_S
    nv = np.zeros(n_s, dtype=np.int64)
    nc = np.zeros(n_s, dtype=np.int64)
    nr = np.zeros(n_s, dtype=np.int64)
    m = np.zeros(n_s, dtype=np.int64)
    m_carted = np.zeros(n_s, dtype=np.int64)
    k_b, k_c, k_o = int(is_b.sum()), int(is_c.sum()), int(is_o.sum())
    nv[is_b] = 1 + _nb(rng, plan.browse_views - 1, 1.2, k_b)
    nr[is_b] = np.where(rng.random(k_b) < BROWSE_REMOVE_SESSIONS, 1 + rng.poisson(BROWSE_REMOVE_MEAN - 1, k_b), 0)
    nv[is_c] = _nb(rng, CART_VIEWS, 0.9, k_c)
    nc[is_c] = 1 + _nb(rng, plan.cart_carts - 1, 1.1, k_c)
    nr[is_c] = rng.binomial(nc[is_c], plan.cart_remove_ratio) + rng.poisson(CART_REMOVE_EXTRA, k_c)
    m[is_o] = 1 + _nb(rng, plan.order_size - 1, 1.3, k_o)
    with_carts = rng.random(k_o) < ORDER_CART_PROB
    m_carted[is_o] = np.where(with_carts, rng.binomial(m[is_o], ORDER_CART_ITEM_PROB), 0)
    nc[is_o] = m_carted[is_o] + np.where(with_carts, rng.poisson(ORDER_EXTRA_CARTS, k_o), 0)
    nr[is_o] = rng.binomial(nc[is_o], ORDER_REMOVE_RATIO) + rng.poisson(ORDER_REMOVE_EXTRA, k_o)
    nv[is_o] = _nb(rng, ORDER_VIEWS, 1.0, k_o)
    return _Sizes(views=nv, carts=nc, removes=nr, items=m, items_carted=m_carted)


def _draw_interest_sets(rng: np.random.Generator, cat: _Catalog, clock: _Clock, shoppers: _Shoppers,
                        sessions: _Sessions, items: np.ndarray, days: float) -> _Interest:
    """Products a user keeps coming back to (price-tilted popularity at her home time): a few, more
    for active users, always enough for her largest order; each session's order run starts at random."""
    n_users = len(shoppers.n_sessions)
    s_user = sessions.user
    active = np.bincount(s_user, weights=(sessions.kind != BROWSE_S), minlength=n_users)
    max_order = np.zeros(n_users, dtype=np.int64)
    np.maximum.at(max_order, s_user, items)
    k_int = 3 + rng.poisson(2 + 1.5 * active)
    k_int = np.maximum(k_int, max_order + 2)
    i_start = _segment_starts(k_int)
    home_s = clock.start_s + clock.quantile(np.clip(shoppers.home / days, 0, 1))
    interest = cat.draw(rng, "interest", np.repeat(home_s, k_int))
    s_k = k_int[s_user]
    s_i0 = i_start[s_user]
    off = (rng.random(len(s_user)) * s_k).astype(np.int64)
    return _Interest(products=interest, size=s_k, first=s_i0, offset=off, items=items)
