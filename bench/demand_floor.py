"""How low can the demand model's WAPE go on the generated data? (issue #18)

The demand backtest (``ml.demand``) forecasts ``units_next_7d`` for the 1,000 busiest products on
the 21 days of 3 test blocks ending on ``max_date - 7``. This bench measures the noise floor of that
target on the data of ``lib.data.generator`` by generating the same window with the evaluated run
seed (42) and ``--seeds`` other run seeds, in memory (``simulation._events``: the very events that
``write_csv`` would render; exact duplicate rows are dropped as silver does).

What the generator fixes and what a run seed draws (read from ``lib/data/generator/``):

* fixed for every seed (``CATALOG_SEED`` and module constants): the catalogue, each product's Zipf
  popularity and price tilt, its demand group (steady / rising / falling / holiday; the 100 most
  popular are steady) and the group's calendar-anchored factor, the shop's hour/weekday/month/
  special-day rhythm. There is no per-seed product trend or product factor;
* drawn per seed: the shoppers - visit counts, propensities, home times, each shopper's *interest
  set* (products drawn from the time-varying popularity) and the sessions/orders that buy runs of it.

Hence the expected units of product ``p`` in a window are exactly ``w_p / W_g * E[N_g(window)]``
(``w_p``: the catalogue's purchase weight, ``W_g``: the weight of p's group, ``N_g``: units bought in
the window from group g), and ``E[N_g]`` is estimated almost without noise from the other seeds'
totals over thousands of products. That is the *oracle mean*: the expected demand given everything
the generator fixes. Its error on seed 42 is count noise plus the per-seed shopper structure
(a shopper who keeps an item in her interest set buys it again; an order may hold it twice) - the
latter is partly visible in a product's own history, so the oracle is not a strict lower bound.
The bench quantifies both parts (cross-seed variance vs. mean, units bought by shoppers who had
touched/bought the product before the forecast day, an oracle + own-history forecaster fitted on
the other seeds) and give a clairvoyant lower bound: even a forecaster who knew exactly the units
that shoppers with a trace on the product (any event on it by day d) will buy still faces the
Poisson noise of the units of shoppers without one.

Run: ``.venv/bin/python -m bench.demand_floor [--rows 1000000 --days 152 --seeds 30]`` (~5 s per
generation on one core, then ~20 s of analysis; ``--check-csv var/data/generated/batch_1000000_152d.csv``
also checks seed 42's labels against a CSV written by ``python -m tools.generate``).
Per-seed aggregates are cached under ``var/data/floor/`` (small .npz files, keyed by the
generator's source hash; ``--clean`` removes them at the end). Progress goes to stderr; the last
stdout line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from lib.data.generator.calibration import CART, PURCHASE
from lib.data.generator.catalogue import _catalog
from lib.data.generator.simulation import _events, _parse_start

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / "var" / "data" / "floor"
TARGET_SEED = 42
N_PANEL = 1000
HORIZON = 7
FOLDS = 3
BLOCK_DAYS = 7
PAST = 28  # history window of the oracle + history forecaster
_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[demand_floor {time.perf_counter() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# One generation -> compact aggregates
# --------------------------------------------------------------------------------------------
def _generator_hash() -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for src in sorted((ROOT / "lib" / "data" / "generator").glob("*.py")):
        digest.update(src.read_bytes())
    return digest.hexdigest()[:10]


def _aggregate(rows: int, seed: int, days: float, start: str) -> dict[str, np.ndarray]:
    """Generate one run in memory; keep per-(product, day) event/cart counts and, per purchase unit,
    the product, day, the day the same shopper first touched / first bought that product."""
    ev = _events(rows, seed, start, days)
    start_s = _parse_start(start)
    day = ((ev.time - start_s) // 86400).astype(np.int64)
    prod = (ev.pvar // 2).astype(np.int64)
    etype = ev.etype.astype(np.int64)
    user = ev.user.astype(np.int64)
    sess = ev.session.astype(np.int64)
    # silver keeps one row per exact duplicate (all fields equal; price follows from pvar)
    o = np.lexsort((sess, user, ev.pvar, etype, ev.time))
    keep = np.ones(len(o), dtype=bool)
    same = ((ev.time[o][1:] == ev.time[o][:-1]) & (etype[o][1:] == etype[o][:-1])
            & (ev.pvar[o][1:] == ev.pvar[o][:-1]) & (user[o][1:] == user[o][:-1]) & (sess[o][1:] == sess[o][:-1]))
    keep[1:] = ~same
    o = o[keep]
    day, prod, etype, user = day[o], prod[o], etype[o], user[o]
    n_dups = int((~keep).sum())
    n_prod = len(_catalog().product_id)

    def sparse(mask):
        key = prod[mask] * 100_000 + day[mask]
        k, n = np.unique(key, return_counts=True)
        return k // 100_000, k % 100_000, n

    ev_p, ev_d, ev_n = sparse(np.ones(len(prod), dtype=bool))
    ca_p, ca_d, ca_n = sparse(etype == CART)

    pair = user * n_prod + prod
    first_touch = _first_day(pair, day)
    is_p = etype == PURCHASE
    first_buy = _first_day(pair[is_p], day[is_p])
    pp = pair[is_p]
    return {
        "ev_p": ev_p, "ev_d": ev_d, "ev_n": ev_n, "ca_p": ca_p, "ca_d": ca_d, "ca_n": ca_n,
        "pu_p": prod[is_p], "pu_d": day[is_p],
        "pu_touch": first_touch[1][np.searchsorted(first_touch[0], pp)],
        "pu_buy": first_buy[1][np.searchsorted(first_buy[0], pp)],
        "n_rows": np.array(len(ev.time)), "n_dups": np.array(n_dups),
    }


def _first_day(key: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique keys, earliest day of each)."""
    o = np.lexsort((day, key))
    k, first = np.unique(key[o], return_index=True)
    return k, day[o][first]


def seed_aggregates(rows: int, seed: int, days: float, start: str, tag: str) -> dict[str, np.ndarray]:
    path = CACHE_DIR / f"agg_{tag}_r{rows}_d{days:g}_s{seed}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    t = time.perf_counter()
    agg = _aggregate(rows, seed, days, start)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **agg)
    tmp.replace(path)
    log(f"seed {seed}: {int(agg['n_rows']):,} rows, {int(agg['n_dups']):,} exact duplicates dropped, "
        f"{len(agg['pu_p']):,} units, {time.perf_counter() - t:.1f}s")
    return agg


# --------------------------------------------------------------------------------------------
# Panel, labels, windows
# --------------------------------------------------------------------------------------------
def window_sums(daily: np.ndarray, days: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """daily (..., n_days) -> (..., len(days)): sum over day d+lo .. d+hi (clipped to the data)."""
    cs = np.concatenate([np.zeros(daily.shape[:-1] + (1,)), np.cumsum(daily, axis=-1)], axis=-1)
    a = np.clip(days + lo, 0, daily.shape[-1])
    b = np.clip(days + hi + 1, 0, daily.shape[-1])
    return cs[..., b] - cs[..., a]


class Seed:
    """One run's arrays on the panel: units / carts per panel product and day, group totals."""

    def __init__(self, agg, panel_idx, group, n_prod, n_days, test_days, certificates):
        pos = np.full(n_prod, -1)
        pos[panel_idx] = np.arange(len(panel_idx))
        units_all = np.bincount(agg["pu_p"] * n_days + agg["pu_d"], minlength=n_prod * n_days).reshape(n_prod, n_days)
        units_all[certificates] = 0
        self.group_daily = np.vstack([units_all[group == g].sum(axis=0) for g in range(4)]).astype(float)
        self.units = units_all[panel_idx].astype(float)
        carts = np.zeros((len(panel_idx), n_days))
        m = pos[agg["ca_p"]] >= 0
        np.add.at(carts, (pos[agg["ca_p"][m]], agg["ca_d"][m]), agg["ca_n"][m])
        self.carts = carts
        self.y = window_sums(self.units, test_days, 1, HORIZON)  # (panel, test days)
        self.gy = window_sums(self.group_daily, test_days, 1, HORIZON)  # (4, test days)
        self.p28 = window_sums(self.units, test_days, -(PAST - 1), 0)
        self.p7 = window_sums(self.units, test_days, -6, 0)
        self.c7 = window_sums(self.carts, test_days, -6, 0)
        self.gp28 = window_sums(self.group_daily, test_days, -(PAST - 1), 0)
        # units of the label window bought by shoppers who had touched / bought the product by day d
        self.known_touch = np.zeros_like(self.y)
        self.known_buy = np.zeros_like(self.y)
        mp = pos[agg["pu_p"]] >= 0
        i, e = pos[agg["pu_p"][mp]], agg["pu_d"][mp]
        touch, buy = agg["pu_touch"][mp], agg["pu_buy"][mp]
        t0 = int(test_days[0])
        for k in range(1, HORIZON + 1):
            d = e - k
            j = d - t0
            ok = (j >= 0) & (j < len(test_days))
            np.add.at(self.known_touch, (i[ok & (touch <= d)], j[ok & (touch <= d)]), 1)
            np.add.at(self.known_buy, (i[ok & (buy <= d)], j[ok & (buy <= d)]), 1)


# --------------------------------------------------------------------------------------------
# Metrics and count distributions
# --------------------------------------------------------------------------------------------
def wape(y, f) -> float:
    return float(np.abs(y - f).sum() / y.sum())


def rmse(y, f) -> float:
    return float(np.sqrt(np.mean((y - f) ** 2)))


def _pmf_grid(mu: np.ndarray, r: float | None):
    """pmf of Poisson(mu) (r None) or NB(mean mu, shape r) on 0..kmax, rows x (kmax + 1)."""
    top = float(mu.max())
    kmax = int(top + 15 * np.sqrt(top * (1 + top / (r or np.inf))) + 30)
    k = np.arange(kmax + 1)
    m = mu.ravel()[:, None]
    if r is None:
        pmf = stats.poisson.pmf(k[None, :], m)
    else:
        pmf = stats.nbinom.pmf(k[None, :], r, r / (r + m))
    return k, pmf


def median_and_abs_dev(mu: np.ndarray, r: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the median of the count distribution (the WAPE-optimal point forecast) and
    E|Y - median|."""
    k, pmf = _pmf_grid(mu, r)
    cdf = np.cumsum(pmf, axis=1)
    med = (cdf < 0.5).sum(axis=1).astype(float)
    dev = (np.abs(k[None, :] - med[:, None]) * pmf).sum(axis=1)
    return med.reshape(mu.shape), dev.reshape(mu.shape)


def best_scale(ys: list[np.ndarray], fs: list[np.ndarray]) -> float:
    """The multiplier c of a forecast with the smallest pooled WAPE over other seeds (grid)."""
    grid = np.linspace(0.5, 1.3, 81)
    y = np.concatenate([a.ravel() for a in ys])
    f = np.concatenate([a.ravel() for a in fs])
    return float(grid[np.argmin([np.abs(y - c * f).sum() for c in grid])])


# --------------------------------------------------------------------------------------------
def check_csv(path: Path, target: Seed, panel_pid: np.ndarray, test_days: np.ndarray, start: str) -> float:
    """Labels of seed 42 from a written CSV (pandas, exact duplicates dropped) vs the in-memory ones:
    the largest absolute difference (0 = the bench sees what the pipeline sees)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df = df.drop_duplicates()
    df = df[df["event_type"] == "purchase"]
    t = pd.to_datetime(df["event_time"].str[:19], utc=True)
    day = ((t - pd.Timestamp(start, tz="UTC")).dt.days).to_numpy()
    pid = df["product_id"].astype(np.int64).to_numpy()
    pos = {p: i for i, p in enumerate(panel_pid.tolist())}
    units = np.zeros_like(target.units)
    for p, d in zip(pid.tolist(), day.tolist()):
        i = pos.get(p)
        if i is not None:
            units[i, d] += 1
    return float(np.abs(window_sums(units, test_days, 1, HORIZON) - target.y).max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.demand_floor", description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=152.0)
    ap.add_argument("--start", default="2019-10-01")
    ap.add_argument("--seeds", type=int, default=30, help="number of other run seeds (1..N, 42 skipped)")
    ap.add_argument("--check-csv", type=Path, help="also compare seed 42's labels with this generated CSV")
    ap.add_argument("--clean", action="store_true", help="delete the cached aggregates at the end")
    args = ap.parse_args(argv)

    tag = _generator_hash()
    others = [s for s in range(1, args.seeds + 2) if s != TARGET_SEED][: args.seeds]
    cat = _catalog()
    n_prod = len(cat.product_id)
    n_days = int(round(args.days))
    certificates = np.asarray(cat.certificates)

    # catalogue purchase weights (the 'interest' popularity) and each product's share of its group
    w = np.zeros(n_prod)
    w[cat.order["interest"]] = np.diff(np.concatenate([[0.0], cat.cdf["interest"]]))
    group = np.asarray(cat.group).astype(int)
    group[certificates] = -1
    share = np.zeros(n_prod)
    for gi in range(4):
        m = group == gi
        share[m] = w[m] / w[m].sum()

    # ---- seed 42: panel and test days exactly as ml.features.top_products / ml.demand.backtest_folds
    agg42 = seed_aggregates(args.rows, TARGET_SEED, args.days, args.start, tag)
    max_day = int(agg42["ev_d"].max())
    last = max_day - HORIZON
    test_days = np.arange(last - FOLDS * BLOCK_DAYS + 1, last + 1)
    first_test = int(test_days[0])
    before = agg42["ev_d"] < first_test
    busy = np.bincount(agg42["ev_p"][before], weights=agg42["ev_n"][before], minlength=n_prod)
    cand = np.flatnonzero(busy > 0)
    cand = cand[np.lexsort((cat.product_id[cand], -busy[cand]))]
    panel = cand[:N_PANEL]
    base = np.datetime64(args.start, "D")
    log(f"panel: {len(panel)} products (groups {np.bincount(group[panel], minlength=4).tolist()}), test days "
        f"{base + first_test} .. {base + int(test_days[-1])}, {len(panel) * len(test_days):,} test rows")

    def mk(agg):
        return Seed(agg, panel, group, n_prod, n_days, test_days, certificates)

    runs = {TARGET_SEED: mk(agg42)}
    del agg42
    for s in others:
        runs[s] = mk(seed_aggregates(args.rows, s, args.days, args.start, tag))
    seeds = [TARGET_SEED, *others]
    gp = group[panel]
    sh = share[panel][:, None]

    def mu_model(excl: int, attr: str = "gy") -> np.ndarray:
        gbar = np.mean([getattr(runs[s], attr) for s in seeds if s != excl], axis=0)
        return sh * gbar[gp]

    # ---- calibration of the catalogue-share oracle (all seeds, test rows and the whole window)
    y_all = np.stack([runs[s].y for s in seeds])
    mu_all = sh * np.mean([runs[s].gy for s in seeds], axis=0)[gp]
    calib_test = float(y_all.mean(axis=0).sum() / mu_all.sum())
    u_tot = np.mean([runs[s].units.sum(axis=1) for s in seeds], axis=0)
    mu_tot = share[panel] * np.mean([runs[s].group_daily.sum(axis=1) for s in seeds], axis=0)[gp]
    dec = np.argsort(-mu_tot)
    calib_deciles = [round(float(u_tot[d].sum() / mu_tot[d].sum()), 3) for d in np.array_split(dec, 10)]
    log(f"oracle calibration (units / catalogue-share mean): test rows {calib_test:.3f}; whole window by "
        f"popularity decile {calib_deciles}")

    # ---- dispersion across seeds (the same product-day, everything but the catalogue redrawn)
    m_row = y_all.mean(axis=0)
    v_row = y_all.var(axis=0, ddof=1)
    dispersion = float(v_row.sum() / m_row.sum())
    excess_share = float(max(0.0, 1 - m_row.sum() / v_row.sum()))
    # NB shape from var = mu + mu^2 / r (method of moments, pooled)
    excess = float((v_row - m_row).sum())
    r_nb = float((m_row**2).sum() / excess) if excess > 0 else None  # None: no overdispersion -> Poisson
    bins = [0, 1, 2, 4, 8, 16, np.inf]
    disp_bins = {}
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (m_row >= lo) & (m_row < hi)
        if m.any():
            disp_bins[f"{lo}-{hi}"] = {"rows": int(m.sum()), "var_over_mean": round(float(v_row[m].sum() / m_row[m].sum()), 3)}
    log(f"cross-seed dispersion var/mean = {dispersion:.3f} (Poisson = 1), NB shape r = {r_nb}; by mean: {disp_bins}")

    # ---- forecasts for seed 42
    T = runs[TARGET_SEED]
    y = T.y
    oth = [runs[s] for s in others]
    mu = mu_model(TARGET_SEED)
    xmean = np.mean([r.y for r in oth], axis=0)
    xmed = np.median([r.y for r in oth], axis=0)
    mu_real = sh * T.gy[gp]  # the catalogue share of seed 42's own realised group volume
    pois_med, pois_dev = median_and_abs_dev(mu)
    nb_med, nb_dev = median_and_abs_dev(mu, r_nb)
    seasonal = T.p7
    res = {}

    def rep(name, f):
        res[name] = {"wape": round(wape(y, f), 4), "rmse": round(rmse(y, f), 4)}

    rep("seasonal_naive_check", seasonal)
    rep("oracle_mean", mu)
    rep("oracle_cross_seed_mean", xmean)
    rep("oracle_cross_seed_median", xmed)
    rep("oracle_poisson_median", pois_med)
    rep("oracle_median", nb_med)
    rep("oracle_given_realised_volume", mu_real)
    # WAPE-optimal scalar of the oracle mean, chosen on the other seeds (each with its own leave-out mean)
    c = best_scale([runs[s].y for s in others], [mu_model(s) for s in others])
    rep("oracle_mean_scaled", c * mu)
    # a realistic classical reference: the product's mean of the last 28 days, as a mean and as a median
    mean28 = T.p28 * HORIZON / PAST
    rep("mean_28d", mean28)
    rep("mean_28d_poisson_median", median_and_abs_dev(mean28)[0])

    # oracle + own history: y ~ a*mu + b*(p28 - mu28) + c*(p7 - mu7) + d*(c7 - cmu7), fitted (least squares)
    # on the other seeds' rows, then the WAPE-best multiplier; evaluated on seed 42
    def design(s):
        r = runs[s]
        m = mu_model(s)
        m28 = mu_model(s, "gp28")
        m7 = m28 * 7 / PAST
        cbar = np.mean([runs[t].c7 for t in seeds if t != s], axis=0)
        return np.stack([m, r.p28 - m28, r.p7 - m7, r.c7 - cbar], axis=-1).reshape(-1, 4)

    X = np.concatenate([design(s) for s in others])
    Y = np.concatenate([runs[s].y.ravel() for s in others])
    beta, *_ = np.linalg.lstsq(X, Y, rcond=None)
    fit_o = [np.maximum(design(s) @ beta, 0).reshape(y.shape) for s in others]
    ch = best_scale([runs[s].y for s in others], fit_o)
    hist = ch * np.maximum(design(TARGET_SEED) @ beta, 0).reshape(y.shape)
    rep("oracle_plus_history", hist)
    r2_gain = float(1 - ((Y - X @ beta) ** 2).sum() / ((Y - X[:, 0] * (Y @ X[:, 0]) / (X[:, 0] @ X[:, 0])) ** 2).sum())
    log(f"oracle + history: beta {np.round(beta, 4).tolist()}, scale {ch:.2f}; "
        f"share of the oracle's squared error it explains on the other seeds {r2_gain:.3f}")

    target = 0.9 * 0.544
    log(f"seed 42: units / oracle mean on the test rows = {y.sum() / mu.sum():.3f}")
    # ---- floors: expected WAPE of the best point forecast if Y ~ Poisson / NB around the true mean
    poisson_floor = float(pois_dev.sum() / mu.sum())
    nb_floor = float(nb_dev.sum() / mu.sum())
    # the oracle (NB median of the leave-one-out mean) on every seed: the spread of its WAPE
    loo = []
    for s in seeds:
        ms = mu_model(s)
        loo.append(wape(runs[s].y, median_and_abs_dev(ms, r_nb)[0]))
    loo_mean_mu = [wape(runs[s].y, mu_model(s)) for s in seeds]
    log(f"oracle median (NB, or Poisson when not overdispersed) WAPE over {len(seeds)} seeds: mean {np.mean(loo):.4f} sd {np.std(loo, ddof=1):.4f} "
        f"min {min(loo):.4f} max {max(loo):.4f}; oracle mean: mean {np.mean(loo_mean_mu):.4f}")

    # ---- per-seed shopper structure that a forecaster could see in seed 42's history
    kt = float(T.known_touch.sum() / y.sum())
    kb = float(T.known_buy.sum() / y.sum())
    kt_all = float(np.mean([runs[s].known_touch.sum() / runs[s].y.sum() for s in seeds]))
    kb_all = float(np.mean([runs[s].known_buy.sum() / runs[s].y.sum() for s in seeds]))
    resid_var = float(((y - mu) ** 2).sum() / mu.sum())
    # A lower bound that grants the forecaster *every* unit of shoppers who had touched (or bought)
    # the product by day d: the rest N comes from shoppers with no trace on the product, whose interest
    # sets are independent draws - N ~ Poisson(mu_N) whatever else is known; the best forecast then
    # errs by E|N - median(N)|. mu_N = mu x the product's share of such units on the other seeds.
    bounds = {}
    for name in ("known_touch", "known_buy"):
        num = np.sum([runs[s].y - getattr(runs[s], name) for s in others], axis=(0, 2))
        den = np.sum([runs[s].y for s in others], axis=(0, 2))
        rho = np.where(den > 0, num / np.maximum(den, 1e-9), 1.0)[:, None]
        n_med, n_dev = median_and_abs_dev(mu * rho)
        bounds[name] = {"bound_wape": round(float(n_dev.sum() / mu.sum()), 4),
                        "seed42_wape_known_units_given": round(wape(y, getattr(T, name) + n_med), 4)}
    log(f"lower bounds granting the units of shoppers with a trace on the product: {bounds}")

    csv_diff = None
    if args.check_csv:
        csv_diff = check_csv(args.check_csv, T, cat.product_id[panel], test_days, args.start)
        log(f"labels from {args.check_csv} vs in-memory seed 42: max |diff| = {csv_diff}")

    out = {
        "seeds": seeds,
        "rows": args.rows,
        "days": args.days,
        "test_rows": int(y.size),
        "test_days": [str(base + first_test), str(base + int(test_days[-1]))],
        "mean_units": round(float(y.mean()), 4),
        "zero_share": round(float((y == 0).mean()), 4),
        "oracle_mean_wape": res["oracle_mean"]["wape"],
        "oracle_median_wape": res["oracle_median"]["wape"],
        "oracle_poisson_median_wape": res["oracle_poisson_median"]["wape"],
        "poisson_floor_wape": round(poisson_floor, 4),
        "poisson_floor_rmse_of_mean": round(float(np.sqrt(mu.mean())), 4),
        "oracle_median_share_of_seeds_at_or_below_target": round(float(np.mean(np.asarray(loo) <= target)), 4),
        "nb_floor_wape": round(nb_floor, 4),
        "oracle_median_wape_over_seeds": {"mean": round(float(np.mean(loo)), 4),
                                             "sd": round(float(np.std(loo, ddof=1)), 4),
                                             "min": round(float(min(loo)), 4), "max": round(float(max(loo)), 4)},
        "oracle_plus_history_wape": res["oracle_plus_history"]["wape"],
        "lower_bound_wape_known_touch_units_given": bounds["known_touch"]["bound_wape"],
        "lower_bound_wape_known_buy_units_given": bounds["known_buy"]["bound_wape"],
        "seed42_wape_known_touch_units_given": bounds["known_touch"]["seed42_wape_known_units_given"],
        "seed42_wape_known_buy_units_given": bounds["known_buy"]["seed42_wape_known_units_given"],
        "per_seed_structure_share": round(excess_share, 4),
        "cross_seed_var_over_mean": round(dispersion, 4),
        "cross_seed_var_over_mean_by_mean": disp_bins,
        "nb_shape": None if r_nb is None else round(r_nb, 3),
        "seed42_sq_error_of_oracle_over_mean": round(resid_var, 4),
        "units_by_shoppers_who_touched_before": round(kt, 4),
        "units_by_shoppers_who_bought_before": round(kb, 4),
        "units_by_shoppers_who_touched_before_all_seeds": round(kt_all, 4),
        "units_by_shoppers_who_bought_before_all_seeds": round(kb_all, 4),
        "oracle_calibration_test_rows": round(calib_test, 4),
        "oracle_calibration_by_decile": calib_deciles,
        "history_beta": [round(float(b), 5) for b in beta],
        "history_explained_sq_error_share": round(r2_gain, 4),
        "forecasts_seed42": res,
        "target_wape_0_9_x_croston": round(target, 4),
        "csv_check_max_abs_diff": csv_diff,
        "generator_sha1": tag,
        "seconds": round(time.perf_counter() - _T0, 1),
    }
    if args.clean:
        for p in CACHE_DIR.glob(f"agg_{tag}_r{args.rows}_d{args.days:g}_s*.npz"):
            p.unlink()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
