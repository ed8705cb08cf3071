"""Cart sessions: the cart fold, the bucket state, the applyInPandasWithState function's protocol,
and the streaming operator on Spark (watermark, late events, clock ticks, restart from checkpoint)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lib.domain.carts import CartEvent, fold_cart
from lib.sessions import (
    INPUT_COLUMNS,
    OUTPUT_COLUMNS,
    BucketState,
    SessionTracker,
    bucket_expiries,
)

MIN = 60_000


def ev(t_min: float, kind: str, product: int, price: float = 10.0) -> CartEvent:
    return CartEvent(int(t_min * MIN), kind, product, price, "brandx", "beauty.nail", 42)


# --- fold_cart ------------------------------------------------------------------------------------------
def test_adds_count_units_and_keep_latest_price():
    cart = fold_cart([ev(1, "cart", 1, 5.0), ev(2, "cart", 1, 4.0), ev(3, "cart", 2, 10.0)])
    assert [(i.product_id, i.qty, i.price) for i in cart.items] == [(1, 2, 4.0), (2, 1, 10.0)]
    assert cart.value == 18.0 and cart.units == 3 and cart.outcome == "abandoned"
    assert cart.last_cart_ms == 3 * MIN


def test_removes_take_one_unit_and_never_go_below_zero():
    cart = fold_cart([ev(1, "cart", 1), ev(2, "cart", 1), ev(3, "remove_from_cart", 1),
                      ev(4, "remove_from_cart", 7)])
    assert [(i.product_id, i.qty) for i in cart.items] == [(1, 1)]
    emptied = fold_cart([ev(1, "cart", 1), ev(2, "remove_from_cart", 1), ev(3, "remove_from_cart", 1),
                         ev(4, "cart", 2), ev(5, "remove_from_cart", 2)])
    assert emptied.items == () and emptied.outcome == "emptied"


def test_remove_before_any_add_does_not_create_a_debt():
    cart = fold_cart([ev(1, "remove_from_cart", 1), ev(2, "cart", 1)])
    assert [(i.product_id, i.qty) for i in cart.items] == [(1, 1)]


def test_purchase_after_last_add_is_a_checkout_even_with_items_left():
    cart = fold_cart([ev(1, "cart", 1), ev(2, "cart", 2), ev(3, "purchase", 1)])
    assert [(i.product_id, i.qty) for i in cart.items] == [(2, 1)]  # bought 1 cleared, 2 left
    assert cart.outcome == "checked_out"


def test_add_after_purchase_is_abandoned_again():
    cart = fold_cart([ev(1, "cart", 1), ev(2, "purchase", 1), ev(3, "cart", 2)])
    assert [(i.product_id, i.qty) for i in cart.items] == [(2, 1)]
    assert cart.outcome == "abandoned" and cart.last_purchase_ms == 2 * MIN


def test_purchase_in_the_same_second_as_the_last_add_is_a_checkout():
    cart = fold_cart([ev(1, "purchase", 1), ev(1, "cart", 1)])  # given out of order
    assert cart.outcome == "checked_out" and cart.items == ()


def test_exact_duplicates_count_once():
    e = ev(1, "cart", 1)
    cart = fold_cart([e, e, ev(2, "cart", 1), ev(2, "cart", 1)])
    assert cart.items[0].qty == 2


def test_out_of_order_events_fold_in_event_time_order():
    in_order = [ev(1, "cart", 1), ev(2, "cart", 1), ev(3, "remove_from_cart", 1), ev(4, "purchase", 2),
                ev(5, "cart", 3)]
    shuffled = [in_order[i] for i in (4, 2, 0, 3, 1)]
    assert fold_cart(shuffled) == fold_cart(in_order)
    # a remove that arrives before its add still applies after it
    assert fold_cart([ev(3, "remove_from_cart", 1), ev(1, "cart", 1)]).items == ()


# --- BucketState -------------------------------------------------------------------------------------------
def batch(*rows) -> pd.DataFrame:
    """rows: (t_min, type, product, session, user[, price])"""
    out = []
    for r in rows:
        t, kind, product, session, user, *price = r
        at = pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=t)
        out.append({"bucket": 0, "t": at, "watermark_t": at, "event_type": kind,
                    "product_id": product, "category_id": 42, "category_code": None, "brand": "b",
                    "price": price[0] if price else 10.0, "user_id": user, "user_session": session})
    return pd.DataFrame(out, columns=INPUT_COLUMNS)


T0 = int(pd.Timestamp("2026-01-01", tz="UTC").timestamp() * 1000)
GAP = 30 * MIN


def test_views_alone_create_no_state_but_extend_live_sessions():
    st = BucketState()
    st.apply(batch((0, "view", 1, "s1", 7), (1, "view", 2, "s1", 7), (1, "view", 1, "s2", 8)), GAP)
    assert st.sessions == {}
    st.apply(batch((2, "cart", 1, "s1", 7)), GAP)
    st.apply(batch((20, "view", 5, "s1", 7)), GAP)
    s = st.sessions["s1"]
    assert (s.first_ms, s.last_ms) == (T0 + 2 * MIN, T0 + 20 * MIN)
    assert st.next_expiry_ms(GAP) == T0 + 50 * MIN
    assert st.expire(T0 + 50 * MIN - 1, GAP) == []
    [(sid, _, cart, purchased)] = st.expire(T0 + 50 * MIN, GAP)
    assert sid == "s1" and cart.outcome == "abandoned" and purchased is None and st.sessions == {}


def test_first_activity_counts_views_of_the_same_batch():
    st = BucketState()
    st.apply(batch((0, "view", 1, "s1", 7), (3, "cart", 1, "s1", 7)), GAP)
    assert st.sessions["s1"].first_ms == T0


def test_purchases_of_the_user_in_other_sessions_are_reported_and_pruned():
    st = BucketState()
    st.apply(batch((0, "cart", 1, "a", 7), (1, "cart", 2, "b", 7), (2, "purchase", 2, "b", 7)), GAP)
    expired = {sid: (cart.outcome, p) for sid, _, cart, p in st.expire(T0 + 40 * MIN, GAP)}
    assert expired == {"a": ("abandoned", T0 + 2 * MIN), "b": ("checked_out", T0 + 2 * MIN)}
    assert st.purchases == {}


def test_a_gap_inside_one_batch_closes_the_earlier_part_of_the_session():
    st = BucketState()
    ended = st.apply(batch((0, "cart", 1, "a", 7), (5, "view", 1, "a", 7), (50, "cart", 2, "a", 7),
                           (51, "view", 3, "b", 8), (90, "cart", 3, "b", 8)), GAP)
    [(sid, s, cart, _)] = ended
    assert sid == "a" and s.last_ms == T0 + 5 * MIN and [i.product_id for i in cart.items] == [1]
    assert st.sessions["a"].first_ms == T0 + 50 * MIN and [e.product_id for e in st.sessions["a"].events] == [2]
    assert st.sessions["b"].first_ms == T0 + 90 * MIN  # its view 39 min earlier belongs to an earlier part


def test_only_purchases_between_the_last_add_and_the_expiry_count():
    st = BucketState()
    st.apply(batch((0, "purchase", 9, "old", 7), (10, "cart", 1, "a", 7), (20, "cart", 2, "c", 7)), GAP)
    st.apply(batch((45, "purchase", 2, "c", 7)), GAP)  # after a's expiry (minute 40)
    expired = {sid: (cart.outcome, p) for sid, _, cart, p in st.expire(T0 + 40 * MIN, GAP)}
    assert expired == {"old": ("checked_out", None), "a": ("abandoned", None)}  # 0 is before a's add, 45 after
    st.apply(batch((60, "cart", 5, "d", 7), (61, "purchase", 5, "e", 7)), GAP)
    expired = {sid: p for sid, _, _, p in st.expire(T0 + 200 * MIN, GAP)}
    assert expired == {"c": T0 + 61 * MIN, "d": T0 + 61 * MIN, "e": None}


def test_state_round_trips_through_json():
    st = BucketState()
    st.apply(batch((0, "cart", 1, "a", 7, 3.5), (1, "purchase", 1, "a", 7, 3.5), (2, "cart", 9, "b", 8)), GAP)
    again = BucketState.loads(st.dumps())
    assert again.sessions == st.sessions and again.purchases == st.purchases
    assert json.loads(st.dumps())["v"] == 1


# --- the applyInPandasWithState function, with a stand-in GroupState ----------------------------------------
class FakeState:
    def __init__(self, watermark_ms: int, payload: str | None = None, timed_out: bool = False):
        self.watermark_ms, self.payload, self.hasTimedOut = watermark_ms, payload, timed_out
        self.timeout = None
        self.removed = False

    @property
    def exists(self):
        return self.payload is not None

    @property
    def get(self):
        return (self.payload,)

    def getCurrentWatermarkMs(self):  # noqa: N802 — Spark's name
        return self.watermark_ms

    def update(self, value):
        self.payload = value[0]

    def remove(self):
        self.payload, self.removed = None, True

    def setTimeoutTimestamp(self, ms):  # noqa: N802 — Spark's name
        assert ms > self.watermark_ms, "Spark rejects a timeout at or before the watermark"
        self.timeout = ms


def run(tracker, state, *frames):
    [out] = list(tracker((3,), iter(frames), state))
    assert list(out.columns) == OUTPUT_COLUMNS
    return out


def test_the_tracker_lowers_its_worker_process_priority_when_told(monkeypatch):
    calls = []
    monkeypatch.setattr("lib.sessions._lower_priority", calls.append)
    run(SessionTracker(30, clock=lambda: 0), FakeState(0), batch((0, "cart", 1, "a", 7)))
    assert calls == []  # nice 0: the process is left as it is
    run(SessionTracker(30, clock=lambda: 0, nice=5), FakeState(0), batch((0, "cart", 1, "a", 7)))
    assert calls == [5]


def test_lower_priority_raises_the_niceness_once_and_never_lowers_it():
    # in a child process: niceness cannot be taken back without root, and it is inherited
    if os.getpriority(os.PRIO_PROCESS, 0) > 14:
        pytest.skip("this process already runs at niceness > 14: no room to raise it by 5")
    code = ("import os; from lib.sessions import _lower_priority as f; b = os.getpriority(os.PRIO_PROCESS, 0)\n"
            "seen = []\nfor n in (b + 5, b + 5, b + 2): f(n); seen.append(os.getpriority(os.PRIO_PROCESS, 0) - b)\n"
            "print(seen)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[5, 5, 5]"


def test_after_its_first_call_the_worker_ignores_pysparks_padding_warning_and_only_that():
    # in a child process (warning filters are per process): PySpark's output serializer concatenates
    # empty padding frames after every call, which pandas warns about on every micro-batch
    code = ("import warnings, pandas as pd\n"
            "from tests.unit.test_sessions import FakeState, batch, run\n"
            "from lib.sessions import SessionTracker\n"
            "warnings.simplefilter('error', FutureWarning)\n"
            "pad = lambda: pd.concat([pd.DataFrame({'a': [1.0]}), pd.DataFrame(columns=['a'], index=[0])])\n"
            "try:\n    pad()\n    print('no warning before')\nexcept FutureWarning:\n    print('warned before')\n"
            "run(SessionTracker(30, clock=lambda: 0), FakeState(0), batch((0, 'cart', 1, 'a', 7)))\n"
            "pad()\nprint('quiet after')\n"
            "try:\n    warnings.warn('another deprecation', FutureWarning)\nexcept FutureWarning:\n    print('others still warn')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["warned", "before", "quiet", "after", "others", "still", "warn"], out.stderr[-2000:]


def test_tracker_sets_the_timeout_to_the_earliest_expiry_and_reports_stats():
    tracker, state = SessionTracker(30, clock=lambda: 0), FakeState(0)
    out = run(tracker, state, batch((0, "cart", 1, "a", 7), (5, "cart", 1, "b", 8), (9, "view", 1, "c", 9)))
    assert state.timeout == T0 + 30 * MIN
    assert out["kind"].tolist() == ["stats"] and out["rows_in"].tolist() == [3]
    assert out["live_sessions"].tolist() == [2] and out["bucket"].tolist() == [3]
    assert out["next_expiry_at"].tolist() == [pd.Timestamp(T0 + 30 * MIN, unit="ms", tz="UTC")]  # = the timeout


def test_the_buckets_expiries_come_from_the_stats_rows_none_for_a_bucket_without_live_sessions():
    """What the clock ticker waits for (lib.clock): per bucket called, the earliest pending expiry."""
    tracker, state = SessionTracker(30, clock=lambda: 0), FakeState(0)
    live = run(tracker, state, batch((0, "cart", 1, "a", 7), (5, "cart", 1, "b", 8)))
    state.watermark_ms, state.hasTimedOut = T0 + 31 * MIN, True  # a expires; b (35 min) stays
    one_left = run(tracker, state)
    state.watermark_ms = T0 + 40 * MIN
    empty = run(tracker, state).assign(bucket=5)  # b expires too: no live session
    out = pd.DataFrame([*live.assign(bucket=4).to_dict("records"), *one_left.to_dict("records"),
                        *empty.to_dict("records")], columns=OUTPUT_COLUMNS)
    assert bucket_expiries(out) == {4: T0 + 30 * MIN, 3: T0 + 35 * MIN, 5: None}
    assert bucket_expiries(out[out["kind"] == "session"]) == {}


def test_each_call_reports_its_state_size_and_the_sessions_whose_state_it_read_or_wrote():
    tracker, state = SessionTracker(30, clock=lambda: 0), FakeState(0)
    out = run(tracker, state, batch((0, "cart", 1, "a", 7), (5, "cart", 1, "b", 8), (9, "view", 1, "c", 9)))
    stats = out[out["kind"] == "stats"].iloc[0]
    assert stats["state_bytes"] == len(state.payload.encode()) > 0 and stats["sessions_touched"] == 2
    # one new cart session, a view of a live one: this design reads and rewrites all of them (2 + 1)
    out = run(tracker, state, batch((10, "cart", 2, "d", 10), (11, "view", 1, "a", 7)))
    stats = out[out["kind"] == "stats"].iloc[0]
    assert stats["sessions_touched"] == 3 and stats["live_sessions"] == 3
    assert stats["state_bytes"] == len(state.payload.encode())
    assert out[out["kind"] == "session"][["state_bytes", "sessions_touched"]].isna().all().all()
    state.watermark_ms, state.hasTimedOut = T0 + 60 * MIN, True  # all three expire: no state left
    out = run(tracker, state)
    stats = out[out["kind"] == "stats"].iloc[0]
    assert state.removed and stats["state_bytes"] == 0 and stats["sessions_touched"] == 3


def test_the_sink_writes_the_state_figures_also_into_a_table_of_an_older_version(tmp_path):
    """ops/session_batches created before state_bytes / sessions_touched existed gains the columns
    (nullable, old rows null) at the sink's next batch, and the batch's figures land in them."""
    import pyarrow as pa

    from lib import delta_io
    from lib.retarget.outbox import OPS_TABLE, write_batch
    from lib.retarget.store import RetargetStore
    from lib.schema import arrow_schema

    store = RetargetStore(str(tmp_path / "lake"))
    new = arrow_schema(OPS_TABLE)
    old = pa.schema([f for f in new if f.name not in ("state_bytes", "sessions_touched")])
    delta_io.create_table(store.path(OPS_TABLE), old)
    tracker, state = SessionTracker(30, clock=lambda: 0), FakeState(0)
    out = run(tracker, state, batch((0, "cart", 1, "a", 7), (5, "cart", 1, "b", 8)))
    res = write_batch(store, out.copy(), batch_id=0, app_id="test-app", seconds=0.5)
    assert res.state_bytes == len(state.payload.encode()) and res.sessions_touched == 2
    table = delta_io.read_table(store.path(OPS_TABLE))
    assert table.schema.names == new.names
    [row] = table.to_pylist()
    assert row["state_bytes"] == res.state_bytes and row["sessions_touched"] == 2 and row["live_sessions"] == 2


def test_tracker_expires_on_timeout_and_removes_empty_state():
    tracker = SessionTracker(30, clock=lambda: 1)
    state = FakeState(0)
    run(tracker, state, batch((0, "cart", 1, "a", 7, 2.5), (1, "cart", 1, "a", 7, 2.5)))
    state.watermark_ms, state.hasTimedOut = T0 + 31 * MIN, True
    out = run(tracker, state)
    row = out[out["kind"] == "session"].iloc[0]
    assert row["outcome"] == "abandoned" and row["cart_value"] == 5.0 and row["n_units"] == 2
    assert json.loads(row["items_json"]) == [{"product_id": 1, "qty": 2, "price": 2.5, "brand": "b",
                                              "category_code": None, "category_id": 42}]
    assert row["expired_at"] == pd.Timestamp(T0 + 31 * MIN, unit="ms", tz="UTC")
    assert row["last_cart_at"] == pd.Timestamp(T0 + MIN, unit="ms", tz="UTC")
    assert state.removed and not state.exists


def test_event_after_the_gap_does_not_revive_an_expired_session():
    tracker, state = SessionTracker(30, clock=lambda: 1), FakeState(0)
    run(tracker, state, batch((0, "cart", 1, "a", 7)))
    state.watermark_ms = T0 + 40 * MIN  # the bucket has new data and its session is overdue
    out = run(tracker, state, batch((41, "purchase", 1, "a", 7)))
    sessions = out[out["kind"] == "session"]
    assert sessions["outcome"].tolist() == ["abandoned"]  # expired with its old cart first
    assert BucketState.loads(state.payload).sessions["a"].events[0].event_type == "purchase"


def test_a_batch_expires_by_its_own_event_time_minus_the_delay_without_waiting_for_the_next_batch():
    """Spark's watermark lags one micro-batch; the bucket's own newest event time (minus the same
    delay) already proves the time, so a session due by it is emitted in this call."""
    tracker, state = SessionTracker(30, clock=lambda: 1, watermark_delay_seconds=20), FakeState(0)
    run(tracker, state, batch((0, "cart", 1, "a", 7), (10, "cart", 2, "b", 8), (10, "purchase", 2, "b", 8)))
    state.watermark_ms = T0 + 20 * MIN  # Spark's watermark: still before both expiries
    # newest event 30.5 min: 30.5 min - 20 s >= a's expiry (30 min); b's (40 min) is not due
    out = run(tracker, state, batch((30.5, "view", 9, "z", 9)))
    sessions = out[out["kind"] == "session"]
    assert sessions["user_session"].tolist() == ["a"] and sessions["outcome"].tolist() == ["abandoned"]
    assert out["watermark_at"].iloc[0] == pd.Timestamp(T0 + int(30.5 * MIN) - 20_000, unit="ms", tz="UTC")
    assert state.timeout == T0 + 40 * MIN  # b stays, with its own timeout
    # only 10 s of proof past b's expiry: not yet (the delay is 20 s)
    out = run(tracker, state, batch((40 + 1 / 6, "view", 9, "z", 9)))
    assert out[out["kind"] == "session"].empty


def test_a_clock_tick_expires_by_its_time_in_the_same_call_and_adds_nothing_to_carts():
    tracker, state = SessionTracker(30, clock=lambda: 1, watermark_delay_seconds=20), FakeState(0)
    run(tracker, state, batch((0, "cart", 1, "a", 7)))
    tick = batch((31, None, None, None, None)).assign(is_tick=True)
    out = run(tracker, state, tick)
    assert out[out["kind"] == "session"]["user_session"].tolist() == ["a"]
    assert out[out["kind"] == "stats"]["rows_in"].tolist() == [0] and state.removed


# --- the streaming operator on Spark --------------------------------------------------------------------------
BRONZE_DDL = ("key string, value string, topic string, partition int, offset long, "
              "kafka_timestamp timestamp, ingest_time timestamp")


class Feed:
    """Bronze-shaped rows written as parquet files into a folder a file stream reads."""

    def __init__(self, spark, folder):
        self.spark, self.folder, self.n = spark, folder, 0

    def send(self, *events, topic="events", received: dt.datetime | None = None):
        """``received``: the broker's receive time (message timestamp); by default an event's own time
        (a tick's: later than any tick time, as live)."""
        rows = []
        for e in events:
            self.n += 1
            t = dt.datetime.fromisoformat(e["event_time"].replace("Z", "")) if topic == "events" else dt.datetime(2026, 1, 1)
            rows.append((str(e.get("user_id")), json.dumps(e), topic, 0, self.n, received or t, dt.datetime(2026, 1, 1)))
        self.spark.createDataFrame(rows, BRONZE_DDL).coalesce(1).write.mode("append").parquet(str(self.folder))


def event(minute: float, kind: str, session: str, user: int, product: int = 1, price: float = 10.0) -> dict:
    t = dt.datetime(2020, 5, 1) + dt.timedelta(minutes=minute)
    return {"event_time": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "event_type": kind, "product_id": product,
            "category_id": 42, "category_code": "beauty.nail", "brand": "b", "price": price, "user_id": user,
            "user_session": session}


def tick(minute: float) -> dict:
    t = dt.datetime(2020, 5, 1) + dt.timedelta(minutes=minute)
    return {"event_time": t.strftime("%Y-%m-%dT%H:%M:%SZ")}


@pytest.fixture
def operator(spark, tmp_path):
    from lib.quality import load_rules
    from lib.sessions import session_events, sessionize

    feed = Feed(spark, tmp_path / "in")
    feed.send(event(0, "view", "warmup", 1))  # the file source needs a schema's worth of data to exist

    def start(max_future_seconds: float = 60, watermark_delay_seconds: float = 60):
        src = spark.readStream.schema(BRONZE_DDL).parquet(str(tmp_path / "in"))
        events = session_events(src, load_rules(), events_topic="events", clock_topic="clock", buckets=4,
                                max_future_seconds=max_future_seconds)
        out = sessionize(events, gap_minutes=30, watermark_delay_seconds=watermark_delay_seconds)
        return (out.writeStream.format("parquet").option("path", str(tmp_path / "out"))
                .option("checkpointLocation", str(tmp_path / "ck")).outputMode("append").start())

    def results():
        from pyspark.errors import AnalysisException
        from pyspark.sql import functions as F

        if not (tmp_path / "out").exists():  # nothing written yet
            return {}
        try:
            df = spark.read.parquet(str(tmp_path / "out"))
        except AnalysisException as exc:  # the sink made its folder but no file yet; anything else fails the test
            if "UNABLE_TO_INFER_SCHEMA" not in str(exc):
                raise
            return {}
        return {r.user_session: r for r in df.where(F.col("kind") == "session").collect()}

    return feed, start, results


def test_operator_end_to_end_with_ticks_late_events_and_a_restart(operator):
    feed, start, results = operator
    q = start()
    try:
        feed.send(event(0, "cart", "aband", 10, 1, 5.0), event(1, "cart", "aband", 10, 2, 7.0),
                  event(2, "cart", "bought", 11), event(3, "purchase", "bought", 11),
                  event(2, "view", "viewer", 12), event(4, "cart", "later", 13))
        q.processAllAvailable()
        feed.send(event(20, "view", "later", 13))  # keeps "later" alive until minute 50
        q.processAllAvailable()
        assert results() == {}  # nothing expired yet: the watermark is at ~minute 19
    finally:
        q.stop()

    q = start()  # restart: the carts come back from the checkpoint
    try:
        feed.send(tick(40), topic="clock")  # the shop is quiet; the clock moves the watermark to minute 39
        q.processAllAvailable()
        got = results()
        assert set(got) == {"aband", "bought"}
        assert got["aband"].outcome == "abandoned" and got["aband"].cart_value == 12.0
        assert got["bought"].outcome == "checked_out"
        feed.send(event(10, "cart", "late", 14))  # older than the watermark: dropped by Spark
        feed.send(tick(52), topic="clock")
        q.processAllAvailable()
        got = results()
        assert set(got) == {"aband", "bought", "later"}
        assert got["later"].last_activity_at == dt.datetime(2020, 5, 1, 0, 20)
    finally:
        q.stop()


def test_an_event_stamped_ahead_of_the_broker_moves_no_watermark_past_the_brokers_clock(operator):
    """A client clock ahead of the broker keeps its event time (within max_future_seconds) for its own
    session, but the watermark follows the broker's clock: no cart expires before its gap has passed
    there. With the watermark on the clamped time it ran max_future - delay ahead (here 4 min)."""
    feed, start, results = operator
    q = start(max_future_seconds=300, watermark_delay_seconds=60)
    try:
        feed.send(event(0, "cart", "live", 10))  # expires at minute 30 (broker time)
        q.processAllAvailable()
        # received at minute 28, stamped minute 40: its session's time is clamped to 28 + 5 = minute 33
        feed.send(event(40, "cart", "fast", 20), received=dt.datetime(2020, 5, 1, 0, 28))
        q.processAllAvailable()
        feed.send(event(28.5, "view", "other", 30))  # a next batch: Spark's own watermark is applied too
        q.processAllAvailable()
        assert results() == {}, "a cart expired before its gap had passed on the broker's clock"
        feed.send(tick(31.5), topic="clock")  # the broker's clock passes minute 30 + the 1-minute delay
        q.processAllAvailable()
        got = results()
        assert set(got) == {"live"}
        feed.send(tick(64.5), topic="clock")  # "fast" lasts until its clamped time + the gap (minute 63)
        q.processAllAvailable()
        got = results()
        assert set(got) == {"live", "fast"}
        assert got["fast"].last_activity_at == dt.datetime(2020, 5, 1, 0, 33)
    finally:
        q.stop()
