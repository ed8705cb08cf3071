"""Deterministic synthetic events shaped like the REES46 "eCommerce Events History in Cosmetics Shop".

The generator is calibrated to ``/work/shared/dataset-facts.md`` (see ``docs/data.md`` for the model,
the parameters and measured statistics). It simulates *shoppers*, not rows:

* users with heavy-tailed visit counts (log-normal visit rate, Poisson visits in the window), a
  "home" position in time so that a user's visits and orders cluster (days between repeat orders
  ~ weeks), and correlated cart / purchase propensities;
* sessions of three kinds - browse (views), cart (views, adds, removes) and order (a few views,
  adds, then ~8 purchase rows at checkout) - with gaps of seconds to minutes between events;
* a per-user interest set (products drawn from a price-tilted Zipf popularity) shared by the
  user's sessions, so items added in one visit are often bought in a later one;
* a fixed catalogue (54,571 products, 525 categories, 273 brands, 12 category codes, 662
  always-free products, gift certificates with negative prices, occasional price changes, a few
  products with a trend or a holiday season) that does not depend on the seed;
* the shop's rhythm: hour-of-day profile, weekday/weekend, monthly levels, Black Friday,
  the Christmas drop;
* the data-quality quirks: exact duplicate rows (mostly ``remove_from_cart``), rows without a
  session, zero and negative prices, missing brand and category code.

Everything is drawn from one ``numpy.random.Generator`` (PCG64) seeded with ``seed`` and
vectorised, so the same arguments give a byte-identical file. Public API:

``generate_events``, ``iter_events``, ``write_csv``, ``generate_subscribers``,
``write_subscribers_csv``, ``default_days``, ``main`` (CLI)::

    python -m lib.data.generator --rows 1000000 --out var/data/events.csv
    python -m lib.data.generator --rows 60000 --minutes 30 --seed 7 --out var/data/stream.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time as _time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from lib.schema import CSV_COLUMNS, EVENT_TYPES, SUBSCRIBER_COLUMNS, format_csv_time

__all__ = [
    "DEFAULT_CONSENT_SHARE",
    "DEFAULT_SEED",
    "DEFAULT_START",
    "DEFAULT_SUBSCRIBER_SHARE",
    "EVENTS_PER_DAY",
    "GenerationSummary",
    "default_days",
    "generate_events",
    "generate_subscribers",
    "iter_events",
    "main",
    "write_csv",
    "write_subscribers_csv",
]

# --------------------------------------------------------------------------------------------
# Parameters (targets come from dataset-facts.md; the rest are documented choices)
# --------------------------------------------------------------------------------------------
EVENTS_PER_DAY = 136_000  # the real shop's average density
DEFAULT_SEED = 42
DEFAULT_START = "2019-10-01"
DEFAULT_SUBSCRIBER_SHARE = 0.30
DEFAULT_CONSENT_SHARE = 0.85
FULL_PERIOD_DAYS = 152.0  # Oct 2019 - Feb 2020, the period the user-level targets describe
CATALOG_SEED = 20191001  # the catalogue is the same for every event seed

VIEW, CART, REMOVE, PURCHASE = (EVENT_TYPES.index(t) for t in ("view", "cart", "remove_from_cart", "purchase"))
BROWSE_S, CART_S, ORDER_S = 0, 1, 2  # session kinds

# ✱ per-row targets
TARGET_MIX = {VIEW: 0.467, CART: 0.279, REMOVE: 0.192, PURCHASE: 0.062}
DUP_SHARE = 0.050  # planned copies; accidental same-second repeats add ~0.4 points -> 5.4 %
DUP_COMPOSITION = {VIEW: 0.09, CART: 0.18, REMOVE: 0.70, PURCHASE: 0.03}
DUP_EXTRA_COPY = 0.15  # a duplicated event gets a second copy with this probability
EVENTS_PER_SESSION = 4.56  # raw rows per session (20,692,840 / 4,535,941)
MISSING_SESSION_SHARE = 0.00022
NEGATIVE_ROW_SHARE = 131 / 20_692_840
NEGATIVE_RUB = (-500, -1000, -5000)  # gift certificates: -7.94, -15.87, -79.37 USD
NEGATIVE_WEIGHTS = (0.5, 0.35, 0.15)
RUB_PER_USD = 63.0  # the real prices are round rouble prices / 63
MAX_RUB = 20_650  # -> 327.78, the real maximum

# users (fitted so that over 152 days: 2.8 sessions/user, 67.7 % with one session)
VISIT_RATE_LOG_MU = -6.2
VISIT_RATE_LOG_SIGMA = 2.8
MAX_SESSIONS_PER_USER = 2000
MAX_SESSIONS_PER_USER_DAY = 12  # the heaviest users visit up to ~12 times a day
SPREAD_MEDIAN_DAYS = 60.0  # a user's visits: home time +- N(0, spread); spread ~ lognormal
SPREAD_SIGMA = 0.6
PROPENSITY_SIGMA_BUY = 2.0
PROPENSITY_SIGMA_CART = 1.4
PROPENSITY_RHO = 0.7
BUY_ACTIVITY_EXPONENT = 0.0  # > 0: heavy visitors convert less per visit
CART_ACTIVITY_EXPONENT = 0.15  # regulars fill carts more often than one-off visitors
MAX_BUY_PROB = 0.8

# sessions
ORDER_SHARE = 155_617 / 4_535_941  # sessions with a purchase
CART_SHARE = 0.165  # sessions with adds but no purchase (=> ~15 % of cart sessions buy)
ORDER_CART_PROB = 0.85  # order sessions that also contain adds (the rest check out an old cart)
ORDER_CART_ITEM_PROB = 0.70  # share of the order's items added in the same session
ORDER_EXTRA_CARTS = 0.5
ORDER_VIEWS = 2.5
ORDER_REMOVE_RATIO = 0.10
ORDER_REMOVE_EXTRA = 0.3
CART_VIEWS = 3.0
CART_REMOVE_EXTRA = 0.6
CART_FROM_VIEW = 0.35  # an add picks a product viewed earlier in the session
BROWSE_REMOVE_SESSIONS = 0.05
BROWSE_REMOVE_MEAN = 2.0
VIEW_FROM_INTEREST = 0.30
REMOVE_FROM_SESSION_CART = 0.80
ORDER_LATER_BIAS = 0.5  # sort key shift of order visits among a user's cart/order visits
REORDER_MEDIAN_DAYS = 21.0  # days between a buyer's orders ~ lognormal
REORDER_SIGMA = 1.05
LEAD_IN_S = 1800  # sessions may start up to 30 min before the window (only their tail is kept)
SESSION_GAP_MIN_S = 1800  # a user's sessions are >= 30 min apart (30-min timeout recovers them)
MAX_GAP_S = 1200.0

# catalogue
N_PRODUCTS = 54_571
N_CATEGORIES = 525
N_BRANDS = 273
N_ZERO_PRODUCTS = 662
ZERO_PRICE_SHARE = 0.0045
BRANDLESS_SHARE = 0.423
CODED_SHARE = 0.017
PRICE_LOG_MU = math.log(7.2 * RUB_PER_USD)  # tuned: 1M-row medians/means on target
PRICE_SIGMA_CATEGORY = 0.5
PRICE_SIGMA_BRAND = 0.3
PRICE_SIGMA_PRODUCT = 1.1
PRICE_TILT = 0.9  # carts/purchases favour cheap products: weight * price^-tilt ...
PRICE_TILT_CURVE = 0.25  # ... * exp(-curve * ln(price / pivot)^2): expensive ones are rarely bought
ZIPF_EXPONENT = 1.05
ZIPF_OFFSET = 30.0
PRICE_CHANGE_SHARE = 0.10

CATEGORY_CODES = (
    "appliances.environment.vacuum",
    "furniture.bathroom.bath",
    "furniture.living_room.cabinet",
    "accessories.bag",
    "apparel.glove",
    "accessories.cosmetic_bag",
    "appliances.personal.hair_cutter",
    "stationery.cartrige",
    "furniture.living_room.chair",
    "sport.diving",
    "appliances.environment.air_conditioner",
    "furniture.bathroom.toilet",
)

REAL_BRANDS = (
    "runail", "irisk", "masura", "grattol", "bpw.style", "ingarden", "estel", "kapous", "jessnail",
    "uno", "concept", "f.o.x", "cnd", "strong", "lianail", "haruyama", "domix", "shik", "italwax",
    "bluesky", "freedecor", "polarus", "staleks", "beautix", "yoko", "kinetics", "severina", "artex",
    "metzger", "milv", "levissime", "marathon", "nagaraku", "zinger", "lovely", "smart", "roubloff",
    "beauty-free", "de.lux", "pnb", "oniq", "emil", "airnails", "entity", "lador", "farmstay",
    "matrix", "cutrin", "londa", "estelare", "kaypro", "insight", "ollin", "solomeya", "trind",
    "orly", "essie", "bioaqua", "mavala", "depilflax", "carmex", "sophin", "nitrimax", "keen",
    "tertio", "s.care", "coifin", "farmona", "missha", "petitfee", "koelf", "elizavecca",
    "lebelage", "mixit", "skinlite", "cosmoprofi", "protokeratin", "inm", "naomi", "kares",
    "provoc", "rosi", "zeitun", "yu.r", "gehwol", "deoproce", "ecolab", "barex", "fedua", "profhenna",
)

# rhythm (UTC)
HOUR_PROFILE = (0.30, 0.22, 0.24, 0.32, 0.50, 0.75, 0.95, 1.10, 1.25, 1.38, 1.42, 1.45, 1.50,
                1.42, 1.27, 1.25, 1.35, 1.50, 1.72, 1.85, 1.78, 1.50, 0.90, 0.55)
WEEKDAY_FACTOR = (1.03, 1.03, 1.03, 1.07, 0.99, 0.89, 0.96)  # Monday .. Sunday
MONTH_DAILY_ROWS = {10: 4_102_283 / 31, 11: 4_635_837 / 30, 12: 3_533_286 / 31,
                    1: 4_264_752 / 31, 2: 4_156_682 / 29}
SPECIAL_DAYS = {(11, 7): 1.30, (11, 8): 1.35, (11, 21): 1.60, (11, 22): 2.00, (11, 23): 1.80,
                (11, 24): 1.60, (12, 27): 0.62, (12, 28): 0.52, (12, 29): 0.45, (12, 30): 0.38,
                (12, 31): 0.30, (1, 1): 0.55, (1, 2): 0.80}
_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}

# product demand groups: stable, rising, falling, holiday gift sets
DEMAND_GROUP_SHARES = (0.85, 0.05, 0.05, 0.05)
TREND_ANCHOR = np.datetime64("2019-12-15T00:00:00", "s").astype(np.int64)
TREND_SCALE_S = 76 * 86400
TREND_STRENGTH = 0.9

_SECONDS_PER_DAY = 86400
BATCH_ROWS = 1_000_000  # events simulated per batch of users (memory bound)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def default_days(rows: int) -> float:
    """The window that gives the real shop's density (136k events/day), at least one day."""
    return max(1.0, rows / EVENTS_PER_DAY)


def _nb(rng: np.random.Generator, mean, shape: float, size=None) -> np.ndarray:
    """Negative-binomial counts with the given mean (scalar or array) and shape (dispersion)."""
    mean = np.maximum(np.asarray(mean, dtype=float), 0.0)
    return rng.negative_binomial(shape, shape / (shape + mean), size)


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


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _within(counts: np.ndarray) -> np.ndarray:
    """0..n-1 inside each segment of np.repeat(..., counts)."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(_segment_starts(counts), counts)


def _calendar(seconds: np.ndarray):
    """Epoch seconds -> (month 1..12, day of month 1..31, weekday 0=Mon, hour as float)."""
    sec = np.asarray(seconds, dtype=np.int64)
    days = sec // _SECONDS_PER_DAY
    d64 = days.astype("datetime64[D]")
    m64 = d64.astype("datetime64[M]")
    month = m64.astype(np.int64) % 12 + 1
    dom = (d64 - m64.astype("datetime64[D]")).astype(np.int64) + 1
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    hour = (sec - days * _SECONDS_PER_DAY) / 3600.0
    return month, dom, weekday, hour


@lru_cache(maxsize=1)
def _day_factor_table() -> np.ndarray:
    """(13, 32) table of day factors: month level x special days, mean over a month ~ its level."""
    table = np.ones((13, 32))
    for month in range(1, 13):
        target = MONTH_DAILY_ROWS.get(month, EVENTS_PER_DAY) / EVENTS_PER_DAY
        n = _DAYS_IN_MONTH[month]
        specials = {d: f for (m, d), f in SPECIAL_DAYS.items() if m == month}
        base = (target * n - sum(specials.values())) / (n - len(specials))
        table[month, :] = base
        for d, f in specials.items():
            table[month, d] = f * (1.0 if month == 11 else target)
    return table


def _intensity(seconds: np.ndarray) -> np.ndarray:
    month, dom, weekday, hour = _calendar(seconds)
    centers = np.arange(-1, 25) + 0.5
    profile = np.asarray(HOUR_PROFILE)
    values = np.concatenate([[profile[-1]], profile, [profile[0]]])
    h = np.interp(hour, centers, values)
    return _day_factor_table()[month, dom] * np.asarray(WEEKDAY_FACTOR)[weekday] * h


class _Clock:
    """Inverse CDF of the shop's traffic intensity over [start, start + span), minute bins."""

    def __init__(self, start_s: int, span_s: int):
        self.start_s = start_s
        self.span_s = span_s
        edges = np.arange(0, span_s, 60, dtype=np.int64)
        width = np.minimum(60, span_s - edges).astype(float)
        weight = _intensity(start_s + edges + (width / 2).astype(np.int64)) * width
        self.edges = edges.astype(float)
        self.width = width
        self.weight = weight
        self.cum = np.cumsum(weight)
        self.total = float(self.cum[-1])

    def quantile(self, u: np.ndarray) -> np.ndarray:
        """u in [0, 1) -> seconds after start (float)."""
        v = np.clip(u, 0.0, 1.0 - 1e-12) * self.total
        idx = np.minimum(np.searchsorted(self.cum, v, side="right"), len(self.cum) - 1)
        before = self.cum[idx] - self.weight[idx]
        frac = np.clip((v - before) / np.maximum(self.weight[idx], 1e-300), 0.0, 1.0)
        return self.edges[idx] + frac * self.width[idx]


def _group_factors(seconds: np.ndarray) -> np.ndarray:
    """(4, n) demand multipliers of the product groups at the given times (calendar anchored)."""
    sec = np.asarray(seconds, dtype=np.float64)
    trend = np.exp(TREND_STRENGTH * np.clip((sec - TREND_ANCHOR) / TREND_SCALE_S, -1.5, 1.5))
    month, dom, _, _ = _calendar(sec.astype(np.int64))
    # day of year (non-leap approximation is fine for a season bump)
    cum_days = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    doy = cum_days[month - 1] + dom
    dist = (doy - 352 + 182) % 365 - 182  # days from Dec 18
    black_friday = (month == 11) & (dom >= 21) & (dom <= 24)
    season = 1.0 + 2.5 * np.exp(-((dist / 12.0) ** 2)) + 1.5 * black_friday
    return np.vstack([np.ones_like(sec), trend, 1.0 / trend, season])


# --------------------------------------------------------------------------------------------
# Catalogue (fixed, independent of the event seed)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Catalog:
    product_id: np.ndarray  # int64, n_products + certificates
    category_id: np.ndarray  # int64
    category_code: np.ndarray  # object (str or None)
    brand: np.ndarray  # object (str or None)
    price: np.ndarray  # (n, 2) float: list price, price after the change
    change_time: np.ndarray  # int64 epoch seconds of the price change (max int64: none)
    group: np.ndarray  # demand group per product
    certificates: np.ndarray  # product indices with negative prices
    # sampling tables per kind ("view", "interest"): products ordered by group + cumulative weights
    order: dict
    cdf: dict
    group_start: dict
    group_mass: dict
    fragments: np.ndarray  # object: "product_id,category_id,category_code,brand,price" per 2*p+variant

    def draw(self, rng: np.random.Generator, kind: str, seconds: np.ndarray) -> np.ndarray:
        """Products drawn from the popularity of ``kind`` at the given (epoch) times."""
        n = len(seconds)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        mass = self.group_mass[kind][:, None] * _group_factors(seconds)
        cum = np.cumsum(mass, axis=0)
        u = rng.random(n) * cum[-1]
        group = (u[None, :] >= cum).sum(axis=0)
        group = np.minimum(group, len(self.group_mass[kind]) - 1)
        v = self.group_start[kind][group] + rng.random(n) * self.group_mass[kind][group]
        cdf = self.cdf[kind]
        idx = np.minimum(np.searchsorted(cdf, v, side="right"), len(cdf) - 1)
        return self.order[kind][idx]


def _brand_names(rng: np.random.Generator) -> list[str]:
    names = list(dict.fromkeys(REAL_BRANDS))
    onsets = ["b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kr",
              "st", "tr", "fl", "gl", "pr", "sh", "ch"]
    vowels = ["a", "e", "i", "o", "u", "ia", "ea", "io"]
    codas = ["", "", "", "n", "s", "x", "l", "r", "nt", "ss", "ks"]
    seen = set(names)
    while len(names) < N_BRANDS:
        syll = int(rng.integers(2, 4))
        word = "".join(onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))]
                       for _ in range(syll)) + codas[rng.integers(len(codas))]
        r = rng.random()
        if r < 0.06:
            word = word[:3] + "." + word[3:]
        elif r < 0.10:
            word = word + "-" + ["pro", "lab", "nail", "spa", "art"][rng.integers(5)]
        if word not in seen and len(word) >= 3:
            seen.add(word)
            names.append(word)
    return names


def _unique_ints(rng: np.random.Generator, lo: int, hi: int, k: int) -> np.ndarray:
    """k distinct integers in [lo, hi), in random order (k much smaller than hi - lo)."""
    out = np.zeros(0, dtype=np.int64)
    while len(out) < k:
        merged = np.concatenate([out, rng.integers(lo, hi, int((k - len(out)) * 1.1) + 8)])
        _, first = np.unique(merged, return_index=True)
        out = merged[np.sort(first)][:k]
    return out


def _nice_rub(rub: np.ndarray) -> np.ndarray:
    """Round rouble prices the way a shop does (1, 5, 10, 50 rouble steps)."""
    step = np.select([rub < 100, rub < 1000, rub < 5000], [1, 5, 10], 50)
    return np.maximum(np.round(rub / step) * step, 1.0)


def _rub_to_usd(rub: np.ndarray) -> np.ndarray:
    return np.round(rub / RUB_PER_USD, 2)


def _scale_to_share(weights: dict, mask: np.ndarray, share: float, blend: dict) -> None:
    """Rescale the weights of ``mask`` products (in place) so their blended event mass ~ share."""
    for _ in range(4):
        m = sum(blend[k] * weights[k][mask].sum() / weights[k].sum() for k in weights)
        if m <= 0:
            return
        factor = share * (1 - m) / (m * (1 - share))
        for k in weights:
            weights[k][mask] *= factor


@lru_cache(maxsize=2)
def _catalog(seed: int = CATALOG_SEED) -> _Catalog:
    rng = np.random.default_rng(seed)
    n = N_PRODUCTS

    # product ids: mostly recent (5.0M - 5.93M), some old ones; the extremes are the real ones
    n_old = int(n * 0.09)
    old = _unique_ints(rng, 3_753, 1_000_000, n_old - 1)
    new = _unique_ints(rng, 5_000_000, 5_932_595, n - n_old - 1)
    pids = np.concatenate([[3_752], old, new, [5_932_595]]).astype(np.int64)
    rng.shuffle(pids)

    # popularity: Zipf over a random ranking
    popularity = (np.arange(n) + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    popularity = popularity[rng.permutation(n)]

    # categories: 525 19-digit ids, most starting 148758000; Zipf-sized
    n_main = int(N_CATEGORIES * 0.88)
    prefixes = np.array([1_602_943_681, 2_195_085_255, 2_007_399_943, 1_783_999_064, 2_018_287_324])
    main_ids = 1_487_580_000_000_000_000 + _unique_ints(rng, 0, 10**10, n_main)
    other_ids = prefixes[rng.integers(0, len(prefixes), N_CATEGORIES - n_main)] * 10**9 + rng.integers(
        0, 10**9, N_CATEGORIES - n_main
    )
    cat_ids = np.unique(np.concatenate([main_ids, other_ids]).astype(np.int64))
    while len(cat_ids) < N_CATEGORIES:  # (collisions are practically impossible)
        cat_ids = np.unique(np.concatenate([cat_ids, 1_487_580_000_000_000_000 + rng.integers(0, 10**10, 1)]))
    cat_ids = cat_ids[rng.permutation(len(cat_ids))]
    cat_size = (np.arange(N_CATEGORIES) + 3.0) ** -1.2
    product_cat = rng.choice(N_CATEGORIES, n, p=cat_size / cat_size.sum())

    # brands: Zipf-sized, the real names first
    brands = np.array(_brand_names(rng), dtype=object)
    brand_size = (np.arange(N_BRANDS) + 2.0) ** -1.1
    product_brand = rng.choice(N_BRANDS, n, p=brand_size / brand_size.sum())

    # prices: category x brand x product level, log-normal, round roubles, <= 327.78
    log_rub = (PRICE_LOG_MU + rng.normal(0, PRICE_SIGMA_CATEGORY, N_CATEGORIES)[product_cat]
               + rng.normal(0, PRICE_SIGMA_BRAND, N_BRANDS)[product_brand]
               + rng.normal(0, PRICE_SIGMA_PRODUCT, n))
    rub = _nice_rub(np.clip(np.exp(log_rub), 10, MAX_RUB))
    rub[np.argmax(log_rub)] = MAX_RUB
    list_price = _rub_to_usd(rub)

    # price changes: ~10 % of products change once by a few per cent
    change = rng.random(n) < PRICE_CHANGE_SHARE
    t0 = int(np.datetime64("2019-10-01T00:00:00", "s").astype(np.int64))
    change_time = np.where(change, t0 + rng.integers(0, FULL_PERIOD_DAYS * _SECONDS_PER_DAY, n),
                           np.iinfo(np.int64).max)
    factor = np.where(rng.random(n) < 0.6, rng.uniform(0.85, 0.97, n), rng.uniform(1.03, 1.12, n))
    new_price = np.where(change, _rub_to_usd(np.minimum(_nice_rub(rub * factor), MAX_RUB)), list_price)

    lp = np.log(np.maximum(list_price, 0.3) * RUB_PER_USD) - PRICE_LOG_MU
    weights = {"view": popularity.copy(),
               "interest": popularity * np.exp(-PRICE_TILT * lp - PRICE_TILT_CURVE * lp * lp)}
    blend = {"view": 0.4, "interest": 0.6}

    # 662 always-free products (samples / gifts), outside the top sellers, ~0.45 % of events
    rank = np.argsort(-popularity)
    zero = np.zeros(n, dtype=bool)
    zero[rng.choice(rank[300:], N_ZERO_PRODUCTS, replace=False)] = True
    _scale_to_share(weights, zero, ZERO_PRICE_SHARE, blend)
    list_price = np.where(zero, 0.0, list_price)
    new_price = np.where(zero, 0.0, new_price)

    # 12 category codes on 12 small categories, ~1.7 % of events
    cat_rank = np.argsort(-cat_size)
    coded_cats = rng.choice(cat_rank[40:200], len(CATEGORY_CODES), replace=False)
    code_of_cat = np.full(N_CATEGORIES, None, dtype=object)
    code_of_cat[coded_cats] = CATEGORY_CODES
    coded = np.isin(product_cat, coded_cats)
    _scale_to_share(weights, coded, CODED_SHARE, blend)
    category_code = code_of_cat[product_cat]

    # brand missing on products carrying ~42.3 % of events
    mass = sum(blend[k] * weights[k] / weights[k].sum() for k in weights)
    perm = rng.permutation(n)
    brandless = np.zeros(n, dtype=bool)
    brandless[perm[np.cumsum(mass[perm]) <= BRANDLESS_SHARE]] = True
    brand = np.where(brandless, None, brands[product_brand])

    # demand groups
    group = rng.choice(len(DEMAND_GROUP_SHARES), n, p=np.asarray(DEMAND_GROUP_SHARES))
    group[rank[:100]] = 0  # the best sellers are steady

    # gift certificates: one category, negative prices
    cert_rub = np.asarray(NEGATIVE_RUB, dtype=float)
    n_cert = len(cert_rub)
    cert_ids = np.array([5_818_001, 5_818_002, 5_818_003], dtype=np.int64)
    cert_ids = cert_ids[: n_cert]
    cert_cat = np.int64(1_487_580_013_053_116_551)
    all_pid = np.concatenate([pids, cert_ids])
    if len(np.unique(all_pid)) != len(all_pid):  # an explicit check: `assert` vanishes under python -O
        raise AssertionError("product ids are not unique")
    all_cat = np.concatenate([cat_ids[product_cat], np.full(n_cert, cert_cat)])
    all_code = np.concatenate([category_code, np.full(n_cert, None, dtype=object)])
    all_brand = np.concatenate([brand, np.full(n_cert, None, dtype=object)])
    cert_price = _rub_to_usd(cert_rub)
    price = np.column_stack([np.concatenate([list_price, cert_price]), np.concatenate([new_price, cert_price])])
    all_change = np.concatenate([change_time, np.full(n_cert, np.iinfo(np.int64).max)])
    all_group = np.concatenate([group, np.zeros(n_cert, dtype=group.dtype)])

    order, cdf, gstart, gmass = {}, {}, {}, {}
    for kind, w in weights.items():
        o = np.argsort(group, kind="stable")
        order[kind] = o
        cdf[kind] = np.cumsum(w[o])
        gmass[kind] = np.array([w[group == g].sum() for g in range(len(DEMAND_GROUP_SHARES))])
        gstart[kind] = np.concatenate([[0.0], np.cumsum(gmass[kind])[:-1]])

    heads = [f"{p},{c},{code or ''},{b or ''},"
             for p, c, code, b in zip(all_pid.tolist(), all_cat.tolist(), all_code.tolist(), all_brand.tolist())]
    fragments = np.empty(2 * len(all_pid), dtype=object)
    fragments[0::2] = [f"{h}{x:.2f}" for h, x in zip(heads, price[:, 0].tolist())]
    fragments[1::2] = [f"{h}{x:.2f}" for h, x in zip(heads, price[:, 1].tolist())]

    return _Catalog(
        product_id=all_pid,
        category_id=all_cat,
        category_code=all_code,
        brand=all_brand,
        price=price,
        change_time=all_change,
        group=all_group,
        certificates=np.arange(n, n + n_cert),
        order=order,
        cdf=cdf,
        group_start=gstart,
        group_mass=gmass,
        fragments=fragments,
    )


# --------------------------------------------------------------------------------------------
# Session plan: per-session-kind count means derived from the row-level targets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    browse_views: float
    cart_carts: float
    cart_remove_ratio: float
    order_size: float
    p_dup: np.ndarray  # probability that an event of each type is duplicated


@lru_cache(maxsize=1)
def _plan() -> _Plan:
    """Per-kind count means that reproduce the raw event mix and rows/session (see docs/data.md)."""
    r = EVENTS_PER_SESSION  # raw rows per session
    # rows per session by type before the planned copies (natural same-second repeats are inside)
    nd = {t: r * (TARGET_MIX[t] - DUP_SHARE * DUP_COMPOSITION[t]) for t in TARGET_MIX}
    browse = 1.0 - ORDER_SHARE - CART_SHARE
    order_size = nd[PURCHASE] / ORDER_SHARE
    order_carts = ORDER_CART_PROB * (ORDER_CART_ITEM_PROB * order_size + ORDER_EXTRA_CARTS)
    cart_carts = (nd[CART] - ORDER_SHARE * order_carts) / CART_SHARE
    removes_other = (browse * BROWSE_REMOVE_SESSIONS * BROWSE_REMOVE_MEAN
                     + ORDER_SHARE * (ORDER_REMOVE_RATIO * order_carts + ORDER_REMOVE_EXTRA))
    cart_remove_ratio = ((nd[REMOVE] - removes_other) / CART_SHARE - CART_REMOVE_EXTRA) / cart_carts
    browse_views = (nd[VIEW] - CART_SHARE * CART_VIEWS - ORDER_SHARE * ORDER_VIEWS) / browse
    p_dup = np.zeros(4)
    for t in TARGET_MIX:
        p_dup[t] = DUP_SHARE * DUP_COMPOSITION[t] * r / nd[t] / (1 + DUP_EXTRA_COPY)
    return _Plan(browse_views, cart_carts, min(max(cart_remove_ratio, 0.0), 1.0), order_size, p_dup)


@lru_cache(maxsize=16)
def _sessions_per_user_cdf(days: float) -> tuple[np.ndarray, float]:
    """CDF of sessions per *observed* user for a window of ``days``, and its mean.

    Visit rate over 152 days ~ lognormal(VISIT_RATE_LOG_MU, VISIT_RATE_LOG_SIGMA); visits in the
    window ~ Poisson(rate * days / 152), at most 12 a day; users with no visit are not observed
    (zero-truncated mixture).
    """
    f = days / FULL_PERIOD_DAYS
    n_max = int(min(MAX_SESSIONS_PER_USER, max(1, math.ceil(MAX_SESSIONS_PER_USER_DAY * days))))
    z = np.linspace(-6, 6, 241)
    wz = np.exp(-z * z / 2)
    wz /= wz.sum()
    lam = np.exp(VISIT_RATE_LOG_MU + VISIT_RATE_LOG_SIGMA * z) * f
    n = np.arange(0, n_max + 1)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n_max + 1)))])
    logp = n[None, :] * np.log(lam[:, None]) - lam[:, None] - log_fact[None, :]
    pmf = (wz[:, None] * np.exp(logp)).sum(axis=0)[1:]
    pmf /= pmf.sum()
    return np.cumsum(pmf), float((pmf * n[1:]).sum())


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------
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


def _simulate(rows: int, seed: int, start_s: int, span_s: int) -> _Events:
    rng = np.random.default_rng(seed)
    cat = _catalog()
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
        batch = _simulate_users(rng, cat, plan, clock, lead_in, cdf, n_users, remaining)
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
    n_events = len(ev["time"])

    # gift-certificate lines (negative prices), mostly in orders
    k_neg = int(round(rows * NEGATIVE_ROW_SHARE))
    if rows >= 20_000:
        k_neg = max(k_neg, 1)
    purchases = np.flatnonzero(ev["etype"] == PURCHASE)
    if k_neg and len(purchases):
        pick = rng.choice(purchases, min(k_neg, len(purchases)), replace=False)
        ev["product"][pick] = cat.certificates[rng.choice(len(cat.certificates), len(pick),
                                                          p=np.asarray(NEGATIVE_WEIGHTS))]
    del purchases

    # rows without a session (never a purchase)
    missing = (rng.random(n_events) < MISSING_SESSION_SHARE) & (ev["etype"] != PURCHASE)
    ev["session"][missing] = -1
    del missing

    # price variant (a product's price may change once), then everything in time order
    variant = (start_s + ev["time"].astype(np.int64)) >= cat.change_time[ev["product"]]
    ev["product"] = 2 * ev["product"] + variant
    del variant
    order = np.argsort(ev["time"], kind="stable")
    for key in list(ev):
        ev[key] = ev[key][order]
    del order
    user_ids = _user_ids(rng, user_base, user_home)
    session_ids = _uuid_like(rng, session_base)
    return _Events(
        time=start_s + ev.pop("time").astype(np.int64),
        etype=ev.pop("etype").astype(np.int8),
        pvar=ev.pop("product"),
        user=ev.pop("user"),
        session=ev.pop("session"),
        user_ids=user_ids,
        session_ids=session_ids,
        n_sessions=session_base,
    )


def _simulate_users(rng, cat: _Catalog, plan: _Plan, clock: _Clock, lead_in: int, cdf: np.ndarray,
                    n_users: int, max_rows: int) -> dict:
    """Users -> sessions -> events (grouped by user and session) with times relative to the window
    start, keeping at most ``max_rows`` events inside the window. ``clock`` covers the lead-in too."""
    span = clock.span_s - lead_in
    days = clock.span_s / _SECONDS_PER_DAY

    # ---- users
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

    # ---- sessions (grouped by user)
    s_user = np.repeat(np.arange(n_users), n_ses)
    n_s = len(s_user)
    x = home[s_user] + spread[s_user] * rng.standard_normal(n_s)
    x = np.mod(x, 2 * days)
    x = np.where(x > days, 2 * days - x, x)
    s_pos = x / days  # quantile of the traffic curve
    u = rng.random(n_s)
    kind = np.where(u < buy[s_user], ORDER_S, np.where(u < buy[s_user] + crt[s_user], CART_S, BROWSE_S))
    # among a user's cart/order visits, the ones that buy tend to come later (add now, buy later)
    nb = np.flatnonzero(kind != BROWSE_S)
    key = (kind[nb] == ORDER_S) * ORDER_LATER_BIAS + rng.random(len(nb))
    slots = nb[np.lexsort((s_pos[nb], s_user[nb]))]
    kind[slots] = kind[nb[np.lexsort((key, s_user[nb]))]]

    # a buyer's orders follow each other after log-normal gaps (days between repeat orders);
    # a chain longer than the window is squeezed into it
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

    # ---- interest sets: products a user keeps coming back to (price-tilted popularity)
    active = np.bincount(s_user, weights=(kind != BROWSE_S), minlength=n_users)
    max_order = np.zeros(n_users, dtype=np.int64)
    np.maximum.at(max_order, s_user, m)
    k_int = 3 + rng.poisson(2 + 1.5 * active)
    k_int = np.maximum(k_int, max_order + 2)
    i_start = _segment_starts(k_int)
    home_s = clock.start_s + clock.quantile(np.clip(home / days, 0, 1))
    interest = cat.draw(rng, "interest", np.repeat(home_s, k_int))
    s_k = k_int[s_user]
    s_i0 = i_start[s_user]
    off = (rng.random(n_s) * s_k).astype(np.int64)
    t_pos = clock.start_s + clock.quantile(s_pos)  # for the time-varying popularity

    def from_interest(sess, count):
        return interest[s_i0[sess] + (rng.random(count) * s_k[sess]).astype(np.int64)]

    def off_order(sess, count):  # interest items outside the order's run
        span_k = np.maximum(s_k[sess] - m[sess], 1)
        pos = (off[sess] + m[sess] + (rng.random(count) * span_k).astype(np.int64)) % s_k[sess]
        return interest[s_i0[sess] + pos]

    # views
    v_s = np.repeat(np.arange(n_s), nv)
    n_v = len(v_s)
    v_prod = np.empty(n_v, dtype=np.int64)
    fi = rng.random(n_v) < VIEW_FROM_INTEREST
    v_prod[fi] = from_interest(v_s[fi], int(fi.sum()))
    v_prod[~fi] = cat.draw(rng, "view", t_pos[v_s[~fi]])
    v_key = rng.random(n_v)
    v_start = _segment_starts(nv)

    # carts
    c_s = np.repeat(np.arange(n_s), nc)
    c_j = _within(nc)
    n_c = len(c_s)
    c_prod = np.empty(n_c, dtype=np.int64)
    c_key = rng.random(n_c)
    in_order = is_o[c_s]
    run = in_order & (c_j < m_carted[c_s])
    idx = np.flatnonzero(run)
    c_prod[idx] = interest[s_i0[c_s[idx]] + (off[c_s[idx]] + c_j[idx]) % s_k[c_s[idx]]]
    idx = np.flatnonzero(in_order & ~run)
    c_prod[idx] = off_order(c_s[idx], len(idx))
    fv = ~in_order & (rng.random(n_c) < CART_FROM_VIEW) & (nv[c_s] > 0)
    idx = np.flatnonzero(fv)
    vi = v_start[c_s[idx]] + (rng.random(len(idx)) * nv[c_s[idx]]).astype(np.int64)
    c_prod[idx] = v_prod[vi]
    c_key[idx] = v_key[vi] + 1e-6 + 1e-3 * rng.random(len(idx))
    idx = np.flatnonzero(~in_order & ~fv)
    c_prod[idx] = from_interest(c_s[idx], len(idx))
    c_start = _segment_starts(nc)

    # removes
    r_s = np.repeat(np.arange(n_s), nr)
    n_r = len(r_s)
    r_prod = np.empty(n_r, dtype=np.int64)
    r_key = rng.random(n_r)
    r_order = is_o[r_s]
    idx = np.flatnonzero(r_order)
    r_prod[idx] = off_order(r_s[idx], len(idx))
    fc = ~r_order & (nc[r_s] > 0) & (rng.random(n_r) < REMOVE_FROM_SESSION_CART)
    idx = np.flatnonzero(fc)
    ci = c_start[r_s[idx]] + (rng.random(len(idx)) * nc[r_s[idx]]).astype(np.int64)
    r_prod[idx] = c_prod[ci]
    r_key[idx] = c_key[ci] + (1.5 - c_key[ci]) * rng.uniform(0.01, 1.0, len(idx))
    idx = np.flatnonzero(~r_order & ~fc)
    r_prod[idx] = from_interest(r_s[idx], len(idx))

    # purchases: a run of the interest set, at checkout
    p_s = np.repeat(np.arange(n_s), m)
    p_j = _within(m)
    p_prod = interest[s_i0[p_s] + (off[p_s] + p_j) % s_k[p_s]]
    p_key = 2.0 + p_j

    e_s = np.concatenate([v_s, c_s, r_s, p_s])
    e_type = np.concatenate([np.full(n_v, VIEW), np.full(n_c, CART), np.full(n_r, REMOVE),
                             np.full(len(p_s), PURCHASE)]).astype(np.int8)
    e_prod = np.concatenate([v_prod, c_prod, r_prod, p_prod])
    o = np.lexsort((np.concatenate([v_key, c_key, r_key, p_key]), e_s))
    e_s, e_type, e_prod = e_s[o], e_type[o], e_prod[o]

    # exact duplicates: the same row again in the same second
    dup = rng.random(len(e_s)) < plan.p_dup[e_type]
    reps = 1 + dup * (1 + (rng.random(len(e_s)) < DUP_EXTRA_COPY))
    e_copy = _within(reps) > 0
    src = np.repeat(np.arange(len(e_s)), reps)
    e_s, e_type, e_prod = e_s[src], e_type[src], e_prod[src]

    # gaps inside a session (seconds)
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

    # session starts: the user's positions mapped through the traffic curve (over the window plus a
    # lead-in, so that shoppers are already mid-visit when the window opens); a user's sessions are
    # then pushed >= 30 min apart where possible
    ext_span = clock.span_s
    start = clock.quantile(s_pos)
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
    t = np.floor(start[e_s] + offset).astype(np.int64) - lead_in

    # keep what falls inside the window (visits cut by its edges are partial, as in the real
    # monthly files), then cut at max_rows (drops trailing users; the last visit may be cut short)
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


# --------------------------------------------------------------------------------------------
# Output: DataFrames and the CSV file
# --------------------------------------------------------------------------------------------
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


def _window(rows, start, days) -> tuple[int, int]:
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows <= 0:
        raise ValueError(f"rows must be a positive integer (got {rows!r})")
    days = default_days(int(rows)) if days is None else float(days)
    if not math.isfinite(days) or days <= 0:
        raise ValueError(f"days must be a positive number (got {days!r})")
    if days > 20_000:
        raise ValueError(f"days must be at most 20000 (got {days!r})")
    return _parse_start(start), max(1, int(round(days * _SECONDS_PER_DAY)))


def _events(rows, seed, start, days) -> _Events:
    start_s, span_s = _window(rows, start, days)
    return _simulate(int(rows), int(seed), start_s, span_s)


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


def _tmp_path(path: Path) -> Path:
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
    tmp = _tmp_path(path)
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


# --------------------------------------------------------------------------------------------
# Newsletter subscribers
# --------------------------------------------------------------------------------------------
SUBSCRIBER_DOMAINS = ("example.com", "example.org", "example.net")  # reserved (RFC 2606)
_LOCALE_WEIGHTS = {"ru_RU": 0.40, "en_US": 0.20, "de_DE": 0.10, "pl_PL": 0.10, "fr_FR": 0.10, "es_ES": 0.10}
# (display name, ASCII form for the e-mail address)
_FIRST_NAMES = {
    "ru_RU": (("Анна", "anna"), ("Мария", "maria"), ("Екатерина", "ekaterina"), ("Ольга", "olga"),
              ("Наталья", "natalya"), ("Юлия", "yulia"), ("Ирина", "irina"), ("Дмитрий", "dmitry"),
              ("Алексей", "alexey"), ("Сергей", "sergey"), ("Svetlana", "svetlana"), ("Olga", "olga"),
              ("Tatiana", "tatiana"), ("Elena", "elena"), ("Ksenia", "ksenia"), ("Darya", "darya"),
              ("Алёна", "alena"), ("Viktoria", "viktoria")),
    "en_US": (("Olivia", "olivia"), ("Emma", "emma"), ("Ava", "ava"), ("Sophia", "sophia"),
              ("Isabella", "isabella"), ("Mia", "mia"), ("Liam", "liam"), ("Noah", "noah"),
              ("James", "james"), ("Zoë", "zoe"), ("Chloë", "chloe"), ("O'Brien", "obrien"),
              ("D'Angelo", "dangelo"), ("Mary-Kate", "marykate"), ("Renée", "renee"),
              ("Madison", "madison"), ("Abigail", "abigail"), ("Harper", "harper")),
    "de_DE": (("Anna", "anna"), ("Lena", "lena"), ("Lukas", "lukas"), ("Jürgen", "juergen"),
              ("Jörg", "joerg"), ("Sören", "soeren"), ("Björn", "bjoern"), ("Käthe", "kaethe"),
              ("Mia", "mia"), ("Felix", "felix"), ("Hannah", "hannah"), ("Günther", "guenther"),
              ("Marie", "marie"), ("Lea", "lea")),
    "pl_PL": (("Łukasz", "lukasz"), ("Zofia", "zofia"), ("Małgorzata", "malgorzata"),
              ("Agnieszka", "agnieszka"), ("Paweł", "pawel"), ("Michał", "michal"),
              ("Katarzyna", "katarzyna"), ("Żaneta", "zaneta"), ("Bożena", "bozena"), ("Anna", "anna"),
              ("Joanna", "joanna"), ("Magdalena", "magdalena"), ("Jędrzej", "jedrzej"), ("Ewa", "ewa")),
    "fr_FR": (("Camille", "camille"), ("Léa", "lea"), ("Chloé", "chloe"), ("Manon", "manon"),
              ("Inès", "ines"), ("Anaïs", "anais"), ("Hélène", "helene"), ("Émilie", "emilie"),
              ("Gaëlle", "gaelle"), ("François", "francois"), ("Jean-Luc", "jeanluc"), ("Hugo", "hugo"),
              ("Noël", "noel"), ("Margaux", "margaux")),
    "es_ES": (("José", "jose"), ("María", "maria"), ("Lucía", "lucia"), ("Sofía", "sofia"),
              ("Martina", "martina"), ("Álvaro", "alvaro"), ("Jesús", "jesus"), ("Nuria", "nuria"),
              ("Begoña", "begona"), ("Iñigo", "inigo"), ("Carmen", "carmen"), ("Raúl", "raul"),
              ("Paula", "paula"), ("Elena", "elena")),
}
_LAST_NAMES = {
    "ru_RU": ("ivanova", "petrova", "smirnova", "kuznetsova", "popova", "sokolova", "volkova", "ivanov",
              "petrov", "sokolov", "morozova", "novikova", "fedorova", "pavlova", "lebedeva", "kozlova",
              "vasilieva", "semenova", "egorova", "orlova", "andreeva", "makarova", "nikitina", "zaitseva",
              "soloveva", "borisova", "yakovleva", "grigorieva", "romanova", "vorobieva"),
    "en_US": ("smith", "johnson", "williams", "brown", "jones", "miller", "davis", "wilson", "taylor",
              "obrien", "anderson", "clark", "thomas", "moore", "jackson", "white", "harris", "martin",
              "thompson", "garcia", "robinson", "lewis", "walker", "young", "allen", "king", "wright"),
    "de_DE": ("mueller", "schmidt", "schneider", "fischer", "weber", "meyer", "wagner", "becker",
              "hoffmann", "schulz", "koch", "richter", "klein", "wolf", "schroeder", "neumann", "schwarz",
              "zimmermann", "braun", "krueger", "hofmann", "hartmann", "lange", "schmitt", "werner"),
    "pl_PL": ("nowak", "kowalska", "wisniewska", "wojcik", "kowalczyk", "kaminska", "lewandowska",
              "zielinska", "nowakowski", "mazur", "krawczyk", "piotrowska", "grabowska", "pawlowska",
              "michalska", "krol", "wieczorek", "jablonska", "wrobel", "majewska", "olszewska", "stepien"),
    "fr_FR": ("martin", "bernard", "dubois", "thomas", "robert", "richard", "petit", "durand",
              "lefebvre", "moreau", "laurent", "simon", "michel", "garcia", "david", "bertrand", "roux",
              "vincent", "fournier", "morel", "girard", "andre", "mercier", "dupont", "lambert"),
    "es_ES": ("garcia", "fernandez", "gonzalez", "rodriguez", "lopez", "martinez", "sanchez", "perez",
              "gomez", "martin", "jimenez", "ruiz", "hernandez", "diaz", "moreno", "munoz", "alvarez",
              "romero", "alonso", "gutierrez", "navarro", "torres", "dominguez", "vazquez", "ramos"),
}


def generate_subscribers(user_ids: Sequence[int] | np.ndarray, seed: int = DEFAULT_SEED,
                         share: float = DEFAULT_SUBSCRIBER_SHARE,
                         consent_share: float = DEFAULT_CONSENT_SHARE) -> pd.DataFrame:
    """Newsletter subscribers for a share of ``user_ids`` (deterministic for a seed).

    Columns ``lib.schema.SUBSCRIBER_COLUMNS``: ``user_id`` (int), ``email`` (unique, at
    example.com/.org/.net only), ``consent`` (bool, true for ~``consent_share``), ``first_name``
    (varied, some non-ASCII and some with an apostrophe), ``locale`` (``ru_RU``, ``en_US``, ...).
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1 (got {share!r})")
    if not 0.0 <= consent_share <= 1.0:
        raise ValueError(f"consent_share must be between 0 and 1 (got {consent_share!r})")
    ids = np.sort(np.asarray(user_ids, dtype=np.int64))
    if len(ids):
        ids = ids[np.concatenate([[True], ids[1:] != ids[:-1]])]
    rng = np.random.default_rng([int(seed), 0x5B5C])
    k = int(round(share * len(ids)))
    if share > 0 and len(ids) and k == 0:
        k = 1
    chosen = np.sort(rng.choice(ids, k, replace=False)) if k else np.zeros(0, dtype=np.int64)
    locales = list(_LOCALE_WEIGHTS)
    loc = rng.choice(len(locales), k, p=np.asarray(list(_LOCALE_WEIGHTS.values())))
    names_idx = rng.random(k)
    last_idx = rng.random(k)
    pattern = rng.choice(5, k, p=[0.35, 0.25, 0.15, 0.15, 0.10])
    numbers = rng.integers(1, 100, k)
    domain = rng.choice(len(SUBSCRIBER_DOMAINS), k, p=[0.6, 0.25, 0.15])
    consent = rng.random(k) < consent_share

    first_names, emails, seen, next_suffix = [], [], set(), {}
    for li, ni, lni, pat, num, dom in zip(loc.tolist(), names_idx.tolist(), last_idx.tolist(),
                                          pattern.tolist(), numbers.tolist(), domain.tolist()):
        locale = locales[li]
        names = _FIRST_NAMES[locale]
        display, slug = names[int(ni * len(names))]
        last = _LAST_NAMES[locale][int(lni * len(_LAST_NAMES[locale]))]
        if pat == 0:
            local = f"{slug}.{last}"
        elif pat == 1:
            local = f"{slug}{last}{num:02d}" if num < 60 else f"{slug}.{last}{1900 + num}"
        elif pat == 2:
            local = f"{slug}_{last}"
        elif pat == 3:
            local = f"{slug[0]}{last}"
        else:
            local = f"{last}.{slug}{num}"
        domain_name = SUBSCRIBER_DOMAINS[dom]
        email = f"{local}@{domain_name}"
        while email in seen:  # taken: next free number for this local part
            suffix = next_suffix.get(email, 2)
            next_suffix[email] = suffix + 1
            email = f"{local}{suffix}@{domain_name}"
        seen.add(email)
        first_names.append(display)
        emails.append(email)
    return pd.DataFrame(
        {
            "user_id": chosen,
            "email": np.asarray(emails, dtype=object),
            "consent": consent,
            "first_name": np.asarray(first_names, dtype=object),
            "locale": np.asarray([locales[i] for i in loc], dtype=object),
        },
        columns=list(SUBSCRIBER_COLUMNS),
    )


def write_subscribers_csv(subscribers: pd.DataFrame, out) -> Path:
    """Write ``generate_subscribers`` output: UTF-8, header SUBSCRIBER_COLUMNS, consent ``true``/``false``."""
    path = Path(out)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(SUBSCRIBER_COLUMNS)
            cols = [subscribers[c].tolist() for c in SUBSCRIBER_COLUMNS]
            ci = SUBSCRIBER_COLUMNS.index("consent")
            cols[ci] = ["true" if v else "false" for v in cols[ci]]
            writer.writerows(zip(*cols))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise _ArgumentError(message)


def _count(text: str) -> int:
    try:
        value = float(text.replace("_", "")) if any(c in text for c in ".eE") else int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value != int(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m lib.data.generator",
        description="Write synthetic REES46 cosmetics-shop events (and newsletter subscribers) as CSV.",
    )
    p.add_argument("--rows", type=_count, required=True, help="number of events to write")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    p.add_argument("--start", default=DEFAULT_START,
                   help=f"first day/time, UTC (default {DEFAULT_START})")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--days", type=_positive,
                        help=f"window length in days (default rows / {EVENTS_PER_DAY:,}, at least 1)")
    window.add_argument("--minutes", type=_positive, help="window length in minutes (instead of --days)")
    p.add_argument("--out", required=True, help="events CSV to write")
    subs = p.add_mutually_exclusive_group()
    subs.add_argument("--subscribers", help="subscribers CSV (default: <out stem>_subscribers.csv beside --out)")
    subs.add_argument("--no-subscribers", action="store_true", help="do not write a subscribers file")
    p.add_argument("--subscriber-share", type=_share, default=DEFAULT_SUBSCRIBER_SHARE,
                   help=f"share of users who subscribed (default {DEFAULT_SUBSCRIBER_SHARE})")
    p.add_argument("--consent-share", type=_share, default=DEFAULT_CONSENT_SHARE,
                   help=f"share of subscribers with marketing consent (default {DEFAULT_CONSENT_SHARE})")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def _check_writable(path: Path, what: str) -> None:
    if path.exists() and path.is_dir():
        raise _ArgumentError(f"{what} {str(path)!r} is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = _tmp_path(path)
        with open(probe, "w", encoding="utf-8"):
            pass
        probe.unlink()
    except OSError as exc:
        raise _ArgumentError(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (2 with a one-line message on bad arguments)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        days = args.minutes / 1440.0 if args.minutes is not None else args.days
        try:
            _window(args.rows, args.start, days)
        except ValueError as exc:
            raise _ArgumentError(str(exc)) from None
        out = Path(args.out)
        subs_path = None
        if not args.no_subscribers:
            subs_path = Path(args.subscribers) if args.subscribers else out.with_name(f"{out.stem}_subscribers.csv")
            if subs_path.resolve() == out.resolve():
                raise _ArgumentError("--subscribers must differ from --out")
        _check_writable(out, "--out")
        if subs_path is not None:
            _check_writable(subs_path, "--subscribers")
    except _ArgumentError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)

    try:
        summary = write_csv(out, args.rows, seed=args.seed, start=args.start, days=days)
        n_subs = 0
        if subs_path is not None:
            subscribers = generate_subscribers(summary.user_ids, seed=args.seed, share=args.subscriber_share,
                                               consent_share=args.consent_share)
            write_subscribers_csv(subscribers, subs_path)
            n_subs = len(subscribers)
    except OSError as exc:
        print(f"{parser.prog}: error: cannot write output: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        subs_note = f"; {n_subs:,} subscribers -> {subs_path}" if subs_path is not None else ""
        print(f"wrote {summary.rows:,} events ({summary.users:,} users, {summary.sessions:,} sessions, "
              f"{summary.first_event_time} .. {summary.last_event_time}) -> {summary.path} "
              f"in {summary.seconds:.1f}s{subs_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
