"""The shop's catalogue: fixed products, categories, brands and prices, independent of the event seed.

54,571 products in 525 categories and 273 brands, 12 category codes, 662 always-free products,
gift certificates with negative prices, occasional price changes, and per product a demand group
(steady, rising, falling, holiday) and two popularity tables (``view``: Zipf; ``interest``: Zipf
tilted towards cheap products, what carts and purchases draw from). ``_catalog()`` builds it once
per process from ``CATALOG_SEED``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lib.data.generator.calibration import (
    _SECONDS_PER_DAY,
    BRANDLESS_SHARE,
    CATALOG_SEED,
    CATEGORY_CODES,
    CODED_SHARE,
    DEMAND_GROUP_SHARES,
    FULL_PERIOD_DAYS,
    MAX_RUB,
    N_BRANDS,
    N_CATEGORIES,
    N_PRODUCTS,
    N_ZERO_PRODUCTS,
    NEGATIVE_RUB,
    PRICE_CHANGE_SHARE,
    PRICE_LOG_MU,
    PRICE_SIGMA_BRAND,
    PRICE_SIGMA_CATEGORY,
    PRICE_SIGMA_PRODUCT,
    PRICE_TILT,
    PRICE_TILT_CURVE,
    REAL_BRANDS,
    RUB_PER_USD,
    ZERO_PRICE_SHARE,
    ZIPF_EXPONENT,
    ZIPF_OFFSET,
    _group_factors,
)


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
    change_time = np.where(change, t0 + rng.integers(0, int(FULL_PERIOD_DAYS * _SECONDS_PER_DAY), n),
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
    brand = brands[product_brand]  # (fancy indexing: a new array)
    brand[brandless] = None

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

