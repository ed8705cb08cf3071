"""Does the email work? Intention-to-treat comparison of the carts we meant to mail against the control
group: purchase within N days of the cart's expiry, and revenue, with confidence intervals.

**Arms (intention to treat).** ``mailed`` = every cart decided to be mailed: ``sent``, ``failed``
(rejected by the mail provider) and ``uncertain`` (crash while sending, never retried); ``control`` =
the deterministic hold-out (``lib/retarget/rules.py``). Carts decided otherwise (not a subscriber, no
consent, unsubscribed, purchased since, capped) are in neither arm: those rules run before the
hold-out, so they filter both arms alike. Counting only the carts the mail server accepted would
compare a selected subset (valid addresses, no crash) with the whole control group.

**Units.** Both arms are anchored at the abandoned cart's expiry (the control group gets no email, so
"after the email" would not be comparable). Per arm and user, carts are walked in expiry order: the
first cart opens a unit whose window is (expiry, expiry + N days]; later carts of that user and arm
that expire inside the window join the unit (they do not extend it); the first cart expiring at or
after the window's end opens the next unit. So a user with several abandoned carts in one week is one
unit, not several, the windows of one user's units never overlap, and each purchase counts in at most
one unit per arm. A unit converts if the user bought anything in its window; its revenue is the sum of
those purchases (silver ``purchase`` rows). A user in both arms (only after ``control_share`` or
``control_salt`` changed: the hold-out is a hash of the user id) keeps separate units in each arm; the
run prints how many such users there are.

**Statistics** (``compare``, a pure function of the per-unit outcomes; statsmodels and numpy on the
driver — the per-unit table is one row per unit): difference in conversion rate mailed - control in
percentage points with the Newcombe hybrid score 95 % interval (from the two Wilson intervals), a
two-sided score test p-value, the revenue-per-unit difference with a percentile bootstrap 95 % interval
(2,000 resamples per arm, fixed seed), and the minimum detectable effect (pp) for alpha 0.05 / power
0.8 at the current unit counts (two-sided, arcsine effect size converted back around the control rate,
scipy's normal quantiles).
Verdict: ``too few carts`` while either arm has fewer than ``MIN_UNITS_PER_ARM`` (100) units;
``significant`` when p < 0.05 *and* the interval excludes 0; else ``not yet significant``.

``as_of`` is the latest event time in silver: units whose window has not fully elapsed yet are counted
but flagged (``window_complete_units``).
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.stats import norm
from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

from lib import delta_io
from lib.retarget.rules import CONTROL, FAILED, SENT, STALE, UNCERTAIN
from lib.schema import table_schema

MAILED_DECISIONS = (SENT, FAILED, UNCERTAIN, STALE)  # mailed intent: every cart we decided to email
ARMS = {**{d: "mailed" for d in MAILED_DECISIONS}, CONTROL: "control"}
MIN_UNITS_PER_ARM = 100
ALPHA = 0.05
POWER = 0.8
N_BOOT = 2000
SEED = 20260518
SIGNIFICANT, NOT_YET, TOO_FEW = "significant", "not yet significant", "too few carts"
TABLE = "gold/retarget_uplift"


# --- Spark: decisions + silver -> one row per unit ------------------------------------------------------

def unit_outcomes(decisions: DataFrame, silver: DataFrame, *, window_days: int = 7) -> DataFrame:
    """One row per unit (see the module docstring): arm, user_id, anchor (expiry of its first cart),
    carts, purchases, converted, revenue, window_complete, as_of."""
    window = F.make_dt_interval(days=F.lit(window_days))
    arm = F.create_map(*[F.lit(x) for kv in ARMS.items() for x in kv])[F.col("decision")]
    carts = (decisions.where(F.col("decision").isin(*ARMS) & F.col("expired_at").isNotNull())
             .select("user_session", "user_id", "expired_at", arm.alias("arm")))
    # the anchors of a user's units in one arm: a fold over the sorted expiries
    anchors = F.aggregate(
        F.array_sort(F.collect_list("expired_at")), F.array().cast("array<timestamp>"),
        lambda acc, x: F.when(F.coalesce(x >= F.try_element_at(acc, F.lit(-1)) + window, F.lit(True)),
                              F.array_append(acc, x)).otherwise(acc))
    units = (carts.groupBy("arm", "user_id").agg(anchors.alias("anchors"))
             .select("arm", "user_id", F.explode("anchors").alias("anchor")))
    c = carts.alias("c")
    u = units.alias("u")
    per_unit_carts = (u.join(c, (F.col("u.arm") == F.col("c.arm")) & (F.col("u.user_id") == F.col("c.user_id"))
                             & (F.col("c.expired_at") >= F.col("u.anchor"))
                             & (F.col("c.expired_at") < F.col("u.anchor") + window))
                      .groupBy("u.arm", "u.user_id", "u.anchor").agg(F.count("*").alias("carts")))
    buys = silver.where(F.col("event_type") == "purchase").select(
        F.col("user_id").alias("buyer"), F.col("event_time").alias("bought_at"), "price")
    as_of = silver.agg(F.max("event_time").alias("as_of"))
    joined = per_unit_carts.join(
        buys, (F.col("user_id") == F.col("buyer")) & (F.col("bought_at") > F.col("anchor"))
        & (F.col("bought_at") <= F.col("anchor") + window), "left")
    return (joined.groupBy("arm", "user_id", "anchor", "carts")
            .agg(F.count("bought_at").alias("purchases"), F.coalesce(F.sum("price"), F.lit(0.0)).alias("revenue"))
            .crossJoin(as_of)
            .select("arm", "user_id", "anchor", "carts", "purchases", (F.col("purchases") > 0).alias("converted"),
                    "revenue", (F.col("anchor") + window <= F.col("as_of")).alias("window_complete"), "as_of"))


# --- pure statistics on the per-unit outcomes -----------------------------------------------------------

def _none(x) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def bootstrap_mean_diff(a: np.ndarray, b: np.ndarray, *, n_boot: int = N_BOOT, seed: int = SEED,
                        level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mean(a) - mean(b), each arm resampled on its own.

    Exact ordinary bootstrap, computed cheaply for zero-heavy data: of the n draws with replacement,
    the number that land on non-zero values is Binomial(n, k/n), and those draws are uniform over the
    k non-zero values — so only non-zero values are ever drawn (most units have no revenue)."""
    if len(a) < 2 or len(b) < 2 or n_boot < 1:
        return None
    rng = np.random.default_rng(seed)

    def means(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        nz = x[x != 0]
        if len(nz) == 0:
            return np.zeros(n_boot)
        hits = rng.binomial(len(x), len(nz) / len(x), size=n_boot)
        sums = np.empty(n_boot)
        step = max(1, 4_000_000 // max(1, int(hits.mean())))  # bounded memory per chunk of resamples
        for start in range(0, n_boot, step):
            h = hits[start:start + step]
            cum = np.concatenate([[0.0], np.cumsum(nz[rng.integers(0, len(nz), size=int(h.sum()))])])
            ends = np.cumsum(h)
            sums[start:start + step] = cum[ends] - cum[ends - h]
        return sums / len(x)

    diff = means(a) - means(b)
    lo, hi = np.quantile(diff, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def min_detectable_effect_pp(n_mailed: int, n_control: int, control_rate: float, *, alpha: float = ALPHA,
                             power: float = POWER) -> float | None:
    """Smallest true uplift (pp, above the control rate) that a two-sided test at ``alpha`` finds with
    probability ``power`` at these sample sizes. Closed form on Cohen's arcsine effect size
    h = (z_{1-alpha/2} + z_power) * sqrt(1/n1 + 1/n0) (what statsmodels' NormalIndPower solves, less the
    negligible chance of rejecting in the wrong direction), converted back to a rate difference around
    the control rate — unlike the plain normal formula it stays sensible when the control rate is 0."""
    if n_mailed < 2 or n_control < 2 or control_rate is None or not np.isfinite(control_rate):
        return None
    h = (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * np.sqrt(1 / n_mailed + 1 / n_control)
    phi = 2 * np.arcsin(np.sqrt(control_rate)) + h
    p1 = 1.0 if phi >= np.pi else float(np.sin(phi / 2) ** 2)
    return (p1 - control_rate) * 100


def compare(mailed_converted, mailed_revenue, control_converted, control_revenue, *, alpha: float = ALPHA,
            power: float = POWER, n_boot: int = N_BOOT, seed: int = SEED,
            min_units: int = MIN_UNITS_PER_ARM) -> dict:
    """Mailed vs control from per-unit outcomes (converted 0/1 and revenue per unit, one entry per unit).
    Pure: no Spark, no clock; the same inputs give the same figures (fixed bootstrap seed)."""
    mc, cc = np.asarray(mailed_converted, dtype=bool), np.asarray(control_converted, dtype=bool)
    mr, cr = np.asarray(mailed_revenue, dtype=float), np.asarray(control_revenue, dtype=float)
    n1, n0, x1, x0 = len(mc), len(cc), int(mc.sum()), int(cc.sum())
    out: dict[str, Any] = {"uplift_pp": None, "uplift_ci_low_pp": None, "uplift_ci_high_pp": None, "p_value": None,
           "mde_pp": None, "revenue_per_unit_diff": None, "revenue_per_unit_diff_ci_low": None,
           "revenue_per_unit_diff_ci_high": None, "incremental_revenue": None, "verdict": TOO_FEW}
    if n1 == 0 or n0 == 0:
        return out
    p1, p0 = x1 / n1, x0 / n0
    rpu_diff = mr.mean() - cr.mean()
    out.update(uplift_pp=(p1 - p0) * 100, revenue_per_unit_diff=float(rpu_diff),
               incremental_revenue=float(rpu_diff * n1))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff", alpha=alpha)
        p = test_proportions_2indep(x1, n1, x0, n0, method="score", compare="diff").pvalue
    if not np.isfinite(p):  # no conversion in either arm (or every unit converted): no evidence of a difference
        p = 1.0
    out.update(uplift_ci_low_pp=_none(lo * 100), uplift_ci_high_pp=_none(hi * 100), p_value=float(p),
               mde_pp=_none(min_detectable_effect_pp(n1, n0, p0, alpha=alpha, power=power)))
    ci = bootstrap_mean_diff(mr, cr, n_boot=n_boot, seed=seed, level=1 - alpha)
    if ci is not None:
        out.update(revenue_per_unit_diff_ci_low=ci[0], revenue_per_unit_diff_ci_high=ci[1])
    if min(n1, n0) < min_units:
        out["verdict"] = TOO_FEW
    elif (out["p_value"] < alpha and out["uplift_ci_low_pp"] is not None
          and (out["uplift_ci_low_pp"] > 0 or out["uplift_ci_high_pp"] < 0)):
        out["verdict"] = SIGNIFICANT
    else:
        out["verdict"] = NOT_YET
    return out


def summarize(units: pd.DataFrame, *, window_days: int = 7, as_of: datetime | None = None,
              computed_at: datetime | None = None, n_boot: int = N_BOOT, seed: int = SEED) -> list[dict]:
    """Per-unit rows (columns arm, user_id, carts, converted, revenue, window_complete) -> one dict per arm
    present (mailed first), the comparison columns filled on the mailed row only."""
    rows = []
    arms = {a: units[units["arm"] == a] for a in ("mailed", "control")}
    for name, g in arms.items():
        if g.empty:
            continue
        n = len(g)
        rows.append({
            "arm": name, "carts": int(g["carts"].sum()), "users": int(g["user_id"].nunique()), "units": n,
            "converted_units": int(g["converted"].sum()), "conversion_rate": float(g["converted"].mean()),
            "revenue": round(float(g["revenue"].sum()), 2), "revenue_per_unit": float(g["revenue"].mean()),
            "window_complete_units": int(g["window_complete"].sum()), "window_days": window_days,
            "as_of": as_of, "computed_at": computed_at,
        })
    if rows and rows[0]["arm"] == "mailed":
        m, c = arms["mailed"], arms["control"]
        rows[0].update(compare(m["converted"].to_numpy(), m["revenue"].to_numpy(), c["converted"].to_numpy(),
                               c["revenue"].to_numpy(), n_boot=n_boot, seed=seed))
    return rows


def users_in_both_arms(units: pd.DataFrame) -> int:
    arms = units.groupby("user_id")["arm"].nunique()
    return int((arms > 1).sum())


# --- the report and the batch stage ---------------------------------------------------------------------

def report_rows(decisions: DataFrame, silver: DataFrame, *, window_days: int = 7, n_boot: int = N_BOOT,
                seed: int = SEED) -> tuple[list[dict], pd.DataFrame]:
    """The rows of ``gold/retarget_uplift`` and the per-unit frame they come from. The unit building
    and the purchase join run in Spark; the per-unit result (one row per unit) goes to the driver."""
    u = unit_outcomes(decisions, silver, window_days=window_days)
    units: pd.DataFrame = u.select("arm", "user_id", "anchor", "carts", "converted", "revenue", "window_complete",
                                   "as_of").toPandas()
    as_of = None
    if len(units) and not pd.isna(units["as_of"].iloc[0]):
        as_of = pd.Timestamp(units["as_of"].iloc[0]).to_pydatetime()
    units = units.drop(columns="as_of")
    rows = summarize(units, window_days=window_days, as_of=as_of, computed_at=datetime.now(UTC),
                     n_boot=n_boot, seed=seed)
    return rows, units


def _frame(spark, rows: list[dict]) -> DataFrame:
    schema = table_schema(TABLE)
    return spark.createDataFrame([tuple(r.get(f) for f in schema.fieldNames()) for r in rows], schema)


def uplift_report(decisions: DataFrame, silver: DataFrame, *, window_days: int = 7, n_boot: int = N_BOOT,
                  seed: int = SEED) -> DataFrame:
    """``retarget/decisions`` + ``silver/events`` -> one row per arm (``gold/retarget_uplift``)."""
    rows, _ = report_rows(decisions, silver, window_days=window_days, n_boot=n_boot, seed=seed)
    return _frame(decisions.sparkSession, rows)


def run(spark, cfg, window_days: int = 7) -> dict:
    """The ``retarget_uplift`` batch stage: ``gold/retarget_uplift`` recomputed (overwrite, schema
    included) from ``retarget/decisions`` and ``silver/events``. A lake without them yet (nothing
    decided: a batch-only lake, or before the streaming app ran) is reported, not an error, and no
    source table is created."""
    root = cfg.lake.root.rstrip("/")
    decisions_path, silver_path, out = f"{root}/retarget/decisions", f"{root}/silver/events", f"{root}/{TABLE}"
    missing = [name for path, name in ((decisions_path, "retarget/decisions"), (silver_path, "silver/events"))
               if not delta_io.spark_table_exists(spark, path)]
    if missing:
        print(f"[uplift] nothing to compare yet: no {' and no '.join(missing)} in the lake {root} "
              f"(the streaming app writes them: make demo)")
        return {"arms": {}, "skipped": f"no {' and no '.join(missing)}"}
    rows, units = report_rows(spark.read.format("delta").load(decisions_path),
                              spark.read.format("delta").load(silver_path), window_days=window_days)
    delta_io.replace_table(_frame(spark, rows), out)
    for r in rows:
        print(f"[uplift] {r['arm']}: {r['carts']} carts, {r['units']} units, {r['converted_units']} converted "
              f"({100 * r['conversion_rate']:.1f} %), revenue {r['revenue']}")
    mailed = next((r for r in rows if r["arm"] == "mailed"), None)
    if mailed is not None:
        ci = (f"[{mailed['uplift_ci_low_pp']:.2f}, {mailed['uplift_ci_high_pp']:.2f}]"
              if mailed["uplift_ci_low_pp"] is not None else "[–]")
        print(f"[uplift] mailed - control: {_fmt(mailed['uplift_pp'])} pp, 95 % CI {ci} pp, "
              f"p = {_fmt(mailed['p_value'], 3)}, MDE {_fmt(mailed['mde_pp'])} pp: {mailed['verdict']}")
    both = users_in_both_arms(units)
    if both:
        print(f"[uplift] {both} users are in both arms (control_share or control_salt changed); "
              f"their units count in each arm")
    if not rows:
        print("[uplift] no decided carts yet: the table is empty")
    keep = ("units", "carts", "converted_units", "revenue", "uplift_pp", "uplift_ci_low_pp", "uplift_ci_high_pp",
            "p_value", "mde_pp", "verdict")
    return {"arms": {r["arm"]: {k: r[k] for k in keep if k in r} for r in rows}, "users_in_both_arms": both}


def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"
