"""Tests for the synthetic event generator (lib.data.generator) and its command line (tools.generate).

The ✱ statistics of /work/shared/dataset-facts.md are checked over a 1M-row file written by the CLI
and read back (so the file format is checked too). Speed is measured by benchmark, not here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.data.generator.calibration import default_days
from lib.data.generator.subscribers import (
    DEFAULT_CONSENT_SHARE,
    DEFAULT_SUBSCRIBER_SHARE,
    generate_subscribers,
    write_subscribers_csv,
)
from lib.data.generator.writers import generate_events, iter_events, write_csv
from lib.schema import CSV_COLUMNS, EVENT_TYPES, SUBSCRIBER_COLUMNS
from tools.generate import main

REPO = Path(__file__).resolve().parents[2]
TIME_RE = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$"
PRICE_RE = r"^-?\d+\.\d{2}$"
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
EMAIL_RE = r"^[a-z0-9._]+@example\.(com|org|net)$"


def _read(path: Path) -> pd.DataFrame:
    """Read a generated CSV the way a strict consumer would: every field a string, '' = missing."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def _share(mask) -> float:
    return float(np.mean(np.asarray(mask, dtype=bool)))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """200k rows at the default density (~1.5 days) + the subscribers file, via the CLI."""
    out = tmp_path_factory.mktemp("gen_small") / "events.csv"
    assert main(["--rows", "200000", "--seed", "7", "--out", str(out), "--quiet"]) == 0
    return out, _read(out), _read(out.with_name("events_subscribers.csv"))


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """1M rows (default seed, start and density), written by the CLI and read back."""
    out = tmp_path_factory.mktemp("gen_big") / "events.csv"
    assert main(["--rows", "1000000", "--out", str(out), "--no-subscribers", "--quiet"]) == 0
    df = _read(out)
    df["price_f"] = df["price"].astype(float)
    return df


# ---------------------------------------------------------------------------------------------
# file format
# ---------------------------------------------------------------------------------------------
def test_header_and_field_formats(small):
    out, df, _ = small
    with open(out, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n")
        second = fh.readline()
    assert header == ",".join(CSV_COLUMNS)
    assert header == "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
    assert second.count(",") == len(CSV_COLUMNS) - 1 and not second.endswith("\r\n")
    assert len(df) == 200_000
    assert list(df.columns) == list(CSV_COLUMNS)
    assert df["event_time"].str.match(TIME_RE).all()
    assert set(df["event_type"]) == set(EVENT_TYPES)
    assert df["price"].str.match(PRICE_RE).all()
    for col in ("product_id", "category_id", "user_id"):
        assert df[col].str.match(r"^\d+$").all(), col
    assert df["category_id"].str.len().eq(19).all()
    sessions = df["user_session"]
    assert sessions[sessions != ""].str.match(UUID_RE).all()
    assert (df["brand"][df["brand"] != ""].str.lower() == df["brand"][df["brand"] != ""]).all()


def test_rows_in_time_order_within_default_window(small):
    _, df, _ = small
    times = df["event_time"]
    assert (times.values[1:] >= times.values[:-1]).all()  # fixed-width format: text order = time order
    first = pd.Timestamp(times.iloc[0][:19])
    last = pd.Timestamp(times.iloc[-1][:19])
    assert first >= pd.Timestamp("2019-10-01") and first < pd.Timestamp("2019-10-01 00:10")
    days = default_days(200_000)  # 200k / 136k per day
    assert pd.Timestamp("2019-10-01") + pd.Timedelta(days=days) - pd.Timedelta(minutes=10) < last
    assert last < pd.Timestamp("2019-10-01") + pd.Timedelta(days=days)


def test_no_purchase_without_session(small):
    _, df, _ = small
    assert not ((df["user_session"] == "") & (df["event_type"] == "purchase")).any()


def test_generate_events_matches_written_file(tmp_path):
    frame = generate_events(20_000, seed=3)
    out = tmp_path / "e.csv"
    summary = write_csv(out, 20_000, seed=3)
    back = _read(out)
    assert list(frame.columns) == list(CSV_COLUMNS) and len(frame) == summary.rows == 20_000
    assert str(frame["event_time"].dt.tz) == "UTC"
    assert (frame["event_time"].dt.strftime("%Y-%m-%d %H:%M:%S UTC").values == back["event_time"].values).all()
    assert (frame["product_id"].astype(str).values == back["product_id"].values).all()
    assert (frame["price"].map("{:.2f}".format).values == back["price"].values).all()
    assert (frame["user_id"].astype(str).values == back["user_id"].values).all()
    assert (frame["brand"].fillna("").values == back["brand"].values).all()
    assert (frame["user_session"].fillna("").values == back["user_session"].values).all()
    assert summary.users == back["user_id"].nunique()
    assert set(summary.user_ids.tolist()) == set(back["user_id"].astype(int))
    chunks = list(iter_events(20_000, seed=3, chunk_rows=7_000))
    assert [len(c) for c in chunks] == [7_000, 7_000, 6_000]
    assert pd.concat(chunks, ignore_index=True).equals(frame)


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    paths = []
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        out = tmp_path / f"{name}.csv"
        assert main(["--rows", "30000", "--seed", str(seed), "--out", str(out), "--quiet"]) == 0
        paths.append(out)
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b
    assert a != c
    subs = [p.with_name(f"{p.stem}_subscribers.csv").read_bytes() for p in paths]
    assert subs[0] == subs[1] and subs[0] != subs[2]


# ---------------------------------------------------------------------------------------------
# ✱ statistics over 1M rows (dataset-facts.md, tolerances as stated there)
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_star_statistics_1m(big):
    df = big
    n = len(df)
    assert n == 1_000_000

    mix = df["event_type"].value_counts(normalize=True)
    for event_type, target in (("view", 0.467), ("cart", 0.279), ("remove_from_cart", 0.192), ("purchase", 0.062)):
        assert abs(mix[event_type] - target) <= 0.02, (event_type, mix[event_type])

    dup = df.duplicated(subset=list(CSV_COLUMNS))
    assert abs(dup.mean() - 0.054) <= 0.015, dup.mean()
    assert df.loc[dup, "event_type"].value_counts(normalize=True).idxmax() == "remove_from_cart"

    code = df["category_code"]
    assert abs(_share(code == "") - 0.983) <= 0.015
    assert code[code != ""].nunique() == 12
    assert abs(_share(df["brand"] == "") - 0.423) <= 0.05

    no_session = df["user_session"] == ""
    assert 0.00005 <= no_session.mean() <= 0.001, no_session.mean()
    assert not (no_session & (df["event_type"] == "purchase")).any()

    price = df["price_f"]
    assert 0.002 <= _share(price == 0) <= 0.008
    always_zero = df.groupby("product_id")["price_f"].max() == 0
    assert always_zero.sum() > 0  # some products are always free
    negative = df[price < 0]
    assert 0 < len(negative) < 0.0001 * n
    assert (negative["event_type"] == "purchase").mean() > 0.5
    assert negative["category_id"].nunique() == 1
    assert set(negative["price"]) <= {"-7.94", "-15.87", "-79.37"}

    assert abs(price.median() / 4.05 - 1) <= 0.20, price.median()
    assert abs(price.mean() / 8.53 - 1) <= 0.20, price.mean()
    assert price.max() <= 327.78
    purchase = price[df["event_type"] == "purchase"]
    assert abs(purchase.median() / 3.00 - 1) <= 0.20, purchase.median()
    assert abs(purchase.mean() / 4.93 - 1) <= 0.20, purchase.mean()

    per_session = n / df.loc[~no_session, "user_session"].nunique()
    assert abs(per_session - 4.6) <= 1.0, per_session


@pytest.mark.slow
def test_shape_targets_1m(big):
    df = big
    purchases = df[df["event_type"] == "purchase"]
    orders = purchases.groupby("user_session")
    assert 6.5 <= len(purchases) / orders.ngroups <= 10.5  # ~8.3 rows per order
    assert 30 <= orders["price_f"].sum().mean() <= 52  # AOV ~40.8
    cart_sessions = set(df.loc[df["event_type"] == "cart", "user_session"]) - {""}
    assert 0.08 <= len(cart_sessions & set(orders.groups)) / len(cart_sessions) <= 0.25  # ~15 %
    # entities
    pid = df["product_id"].astype(np.int64)
    uid = df["user_id"].astype(np.int64)
    assert pid.min() >= 3_752 and pid.max() <= 5_932_595
    assert uid.min() >= 465_496 and uid.max() <= 622_090_237
    assert df["category_id"].str.startswith("148758000").mean() > 0.5
    brands = df.loc[df["brand"] != "", "brand"]
    assert 150 <= brands.nunique() <= 273 and {"runail", "irisk", "f.o.x"} <= set(brands)
    assert df["user_session"].str.len().isin([0, 36]).all()
    # long tail: the top 1 % of products carry a big share, but no product dominates
    counts = pid.value_counts()
    assert counts.iloc[: len(counts) // 100].sum() / len(df) > 0.2
    assert counts.iloc[0] / len(df) < 0.03
    # a product keeps its brand/category and (almost) its price
    per_product = df.groupby("product_id").agg(brands=("brand", "nunique"), cats=("category_id", "nunique"),
                                               prices=("price", "nunique"))
    assert (per_product["brands"] <= 1).all() and (per_product["cats"] == 1).all()
    assert (per_product["prices"] <= 2).all()
    # daily rhythm (UTC): night minimum, evening maximum
    hours = df["event_time"].str[11:13].astype(int).value_counts(normalize=True)
    assert hours.idxmax() in (18, 19, 20) and hours.idxmin() in (0, 1, 2, 3)
    assert hours[12] > hours[14] and hours[19] > hours[12]


def test_calendar_and_user_shapes_over_five_months():
    df = generate_events(400_000, seed=5, days=152)
    day = df["event_time"].dt.floor("D").value_counts().sort_index()
    base = day.median()
    assert day.loc["2019-11-21":"2019-11-24"].mean() > 1.4 * base  # Black Friday
    assert day.loc["2019-12-28":"2019-12-31"].mean() < 0.7 * base  # after Christmas
    weekday = df["event_time"].dt.day_of_week.value_counts()
    assert weekday.loc[[0, 1, 2, 3, 4]].mean() > 1.03 * weekday.loc[[5, 6]].mean()
    assert weekday.idxmax() == 3 and weekday.idxmin() == 5  # Thursday / Saturday
    month = df["event_time"].dt.month.value_counts(normalize=True)
    assert month.idxmax() == 11 and month.idxmin() == 12
    sessions = df.dropna(subset=["user_session"]).groupby("user_id")["user_session"].nunique()
    assert 2.2 <= sessions.mean() <= 3.4  # ~2.8 sessions per user over five months
    assert 0.6 <= (sessions == 1).mean() <= 0.75  # 67.7 % with one session


def test_short_window_looks_like_many_concurrent_shoppers():
    df = generate_events(60_000, seed=1, days=30 / 1440)
    t = df["event_time"]
    assert t.min() >= pd.Timestamp("2019-10-01", tz="UTC")
    assert t.max() < pd.Timestamp("2019-10-01 00:30", tz="UTC")
    per_minute = t.dt.floor("min").value_counts()
    assert per_minute.min() > 0.5 * per_minute.mean()  # no ramp-up at the edges
    assert df["user_id"].nunique() > 5_000
    assert df["user_id"].value_counts().iloc[0] < 200
    open_sessions = df.groupby("user_session")["event_time"].agg(["min", "max"])
    mid = pd.Timestamp("2019-10-01 00:15", tz="UTC")
    assert ((open_sessions["min"] <= mid) & (open_sessions["max"] >= mid)).sum() > 300


# ---------------------------------------------------------------------------------------------
# subscribers
# ---------------------------------------------------------------------------------------------
def test_subscribers_file(small):
    _, events, subs = small
    assert list(subs.columns) == list(SUBSCRIBER_COLUMNS)
    users = set(events["user_id"])
    assert subs["user_id"].is_unique and set(subs["user_id"]) <= users
    assert abs(len(subs) / len(users) - DEFAULT_SUBSCRIBER_SHARE) < 0.02
    assert set(subs["consent"]) == {"true", "false"}
    assert abs((subs["consent"] == "true").mean() - DEFAULT_CONSENT_SHARE) < 0.05
    assert subs["email"].is_unique
    assert subs["email"].str.match(EMAIL_RE).all()
    assert set(subs["email"].str.split("@").str[1]) <= {"example.com", "example.org", "example.net"}
    names = subs["first_name"]
    assert names.nunique() > 40
    assert (names.map(lambda s: not s.isascii())).mean() > 0.1
    assert names.str.contains("'").any()
    assert {"José", "Zoë", "Łukasz", "O'Brien"} <= set(names)
    assert set(subs["locale"]) == {"en_US", "fr_FR", "de_DE", "pl_PL", "es_ES", "ru_RU"}


def test_generate_subscribers_api():
    ids = np.arange(1_000, 11_000)
    a = generate_subscribers(ids, seed=1, share=0.5, consent_share=1.0)
    b = generate_subscribers(ids, seed=1, share=0.5, consent_share=1.0)
    assert a.equals(b) and len(a) == 5_000 and a["consent"].all()
    assert list(a.columns) == list(SUBSCRIBER_COLUMNS)
    assert len(generate_subscribers([], seed=1)) == 0
    with pytest.raises(ValueError):
        generate_subscribers(ids, share=1.5)


def test_write_subscribers_csv_returns_the_path_it_wrote(tmp_path):
    subs = generate_subscribers(np.arange(1_000, 1_100), seed=2, share=0.5)
    path = tmp_path / "people.csv"
    assert write_subscribers_csv(subs, path) == path
    back = _read(path)
    assert back["email"].tolist() == subs["email"].tolist()
    assert back["consent"].tolist() == ["true" if c else "false" for c in subs["consent"]]
    assert not list(tmp_path.glob(".people.csv.tmp-*"))


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["--rows", "0"],
        ["--rows", "-5"],
        ["--rows", "abc"],
        ["--rows", "10", "--days", "0"],
        ["--rows", "10", "--days", "1", "--minutes", "5"],
        ["--rows", "10", "--start", "yesterday"],
        ["--rows", "10", "--subscriber-share", "2"],
        ["--rows", "10", "--unknown-flag"],
    ],
)
def test_cli_bad_arguments_exit_2_with_one_line(args, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()


def test_cli_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert main(["--rows", "10", "--out", str(blocker / "events.csv")]) == 2  # parent is a file
    assert main(["--rows", "10", "--out", str(tmp_path)]) == 2  # a directory
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err


def test_cli_subprocess_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tools.generate", "--rows", "0", "--out", str(tmp_path / "x.csv")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "--rows" in proc.stderr


def test_cli_minutes_and_custom_subscribers_path(tmp_path, capsys):
    out = tmp_path / "stream.csv"
    subs = tmp_path / "people.csv"
    assert main(["--rows", "5000", "--minutes", "10", "--start", "2020-01-15 12:00:00", "--out", str(out),
                     "--subscribers", str(subs), "--subscriber-share", "0.5", "--consent-share", "0"]) == 0
    assert "5,000 events" in capsys.readouterr().out
    df = _read(out)
    assert len(df) == 5_000
    assert df["event_time"].iloc[0] >= "2020-01-15 12:00:00 UTC"
    assert df["event_time"].iloc[-1] < "2020-01-15 12:10:00 UTC"
    people = _read(subs)
    assert (people["consent"] == "false").all()
    assert abs(len(people) / df["user_id"].nunique() - 0.5) < 0.02
    assert not (tmp_path / "stream_subscribers.csv").exists()
