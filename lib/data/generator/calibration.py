"""The generator's calibration: every tuning constant, and the curves and means derived from them.

Targets come from ``/work/shared/dataset-facts.md`` (``docs/data.md`` lists them with the measured
statistics); the rest are documented choices. Derived here, once per process:

* the shop's rhythm - hour-of-day profile x weekday x month level x special days - as a traffic
  intensity, and ``_Clock``, its inverse CDF over a window (when shoppers visit);
* ``_group_factors``: the calendar-anchored demand of the product groups (steady, rising, falling,
  holiday sets);
* ``_plan``: per-session-kind count means that reproduce the raw event mix and rows per session;
* ``_sessions_per_user_cdf``: sessions per observed user for a window length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lib.schema import EVENT_TYPES

# --------------------------------------------------------------------------------------------
# Parameters (targets come from dataset-facts.md; the rest are documented choices)
# --------------------------------------------------------------------------------------------
EVENTS_PER_DAY = 136_000  # the real shop's average density
DEFAULT_SEED = 42
DEFAULT_START = "2019-10-01"
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


def default_days(rows: int) -> float:
    """The window that gives the real shop's density (136k events/day), at least one day."""
    return max(1.0, rows / EVENTS_PER_DAY)


# --------------------------------------------------------------------------------------------
# The shop's rhythm
# --------------------------------------------------------------------------------------------
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
