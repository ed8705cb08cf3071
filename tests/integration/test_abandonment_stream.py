"""Abandoned carts end to end: real broker -> the streaming app's sessions query -> outbox ->
dispatcher -> the project's real SMTP server, with a SIGKILL while the carts are open and no traffic
after the last event (the clock ticker must expire the sessions, not new shoppers): the restarted app
has nothing to re-run and no event to read, so only the clock's resume point can expire the carts.
(Killed before the commit, the restart re-runs the batch: that path is in tests/unit/test_sessions.py.)
Then, with the app running, a shopper starts a cart and a producer whose clock runs an hour fast sends
an event (its message timestamp and event time an hour ahead): the topic is stamped by the broker
(LogAppendTime), so that event is clamped to the broker's receive time and no live cart expires early;
in the quiet shop after them both carts expire on time by the ticks the ticker sends when each is due
(the buckets' reported expiries), with only a heartbeat every 10 minutes between."""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from lib.data.replayer import KafkaPublisher
from lib.kafka_admin import ensure_topic
from lib.retarget.catalogue import Product, write_products
from lib.retarget.store import RetargetStore
from lib.retarget.subscribers import load as load_subscribers
from lib.schema import encode_wire, format_wire_time, wire_key
from tests.helpers import delta_rows, kill_group, start_app, wait_for

pytestmark = pytest.mark.integration


def _event(t: datetime, kind: str, session: str, user: int, product: int, price: float) -> dict:
    return {"event_time": format_wire_time(t), "event_type": kind, "product_id": product,
            "category_id": 1487580005268456287, "category_code": "beauty.nail.polish", "brand": "runail",
            "price": price, "user_id": user, "user_session": session}


def _checkpointed(ops_path, checkpoint) -> bool:
    """The batch that brought the last of the 7 events is committed in the query's checkpoint: a
    restart has no batch to re-run, and no new event will come (the quiet shop after a restart)."""
    t = delta_rows(ops_path, columns=["batch_id", "rows_in"])
    if t is None:
        return False
    total, last = 0, None
    for r in sorted(t.to_pylist(), key=lambda r: r["batch_id"]):
        total += r["rows_in"] or 0
        if total >= 7:
            last = r["batch_id"]
            break
    return last is not None and (checkpoint / "commits" / str(last)).exists()


def _batch_after_watermark(ops_path, t: datetime) -> bool:
    """A sessions batch ran after one whose watermark reached ``t`` (Spark's own watermark, which expires
    the other buckets' sessions, is the previous batch's)."""
    table = delta_rows(ops_path, columns=["batch_id", "watermark"])
    rows = [] if table is None else table.to_pylist()
    reached = [r["batch_id"] for r in rows if r["watermark"] is not None and r["watermark"] >= t]
    return bool(reached) and max(r["batch_id"] for r in rows) > min(reached)


def test_abandoned_cart_is_mailed_once_across_a_crash_and_a_quiet_shop(kafka_broker, topic, smtp, tmp_path):
    clock_topic = f"{topic}-clock"
    ensure_topic(kafka_broker, topic, partitions=2)
    subs = tmp_path / "subscribers.csv"
    subs.write_text("user_id,email,consent,first_name,locale\n"
                    "101,ann@example.com,true,Ann,en_US\n102,bob@example.com,true,Bob,en_US\n")
    lake = tmp_path / "lake"
    load_subscribers(RetargetStore(str(lake)), subs)
    # the shop's catalogue: the email shows its brands and prices, never the events' (issue #14)
    write_products(RetargetStore(str(lake)), {p: Product("runail", "beauty.nail.polish", 1487580005268456287, price)
                                              for p, price in ((5001, 4.2), (5002, 9.9))})
    env = {
        "SHOP__KAFKA__BOOTSTRAP_SERVERS": kafka_broker, "SHOP__KAFKA__TOPIC": topic,
        "SHOP__SESSIONS__CLOCK_TOPIC": clock_topic, "SHOP__SESSIONS__GAP_MINUTES": "0.75",
        "SHOP__SESSIONS__WATERMARK_DELAY_SECONDS": "3", "SHOP__SESSIONS__TRIGGER_SECONDS": "1",
        "SHOP__SESSIONS__IDLE_SECONDS": "2", "SHOP__SESSIONS__TICK_SECONDS": "1",
        # between sessions due, one tick per 10 minutes: a cart that expires in time in the quiet shop
        # below was expired by the tick the ticker sent for it (the buckets' reported expiries)
        "SHOP__SESSIONS__QUIET_TICK_SECONDS": "600",
        # the tolerance for client clocks ahead of the broker, well inside this test's 45 s gap (as the
        # default 60 s is inside the shop's 30 min): a clamped fast event cannot expire a live cart
        "SHOP__SESSIONS__MAX_FUTURE_SECONDS": "5",
        "SHOP__RETARGET__SMTP_PORT": str(smtp.port), "SHOP__RETARGET__CONTROL_SHARE": "0",
        "SHOP__LAKE__ROOT": str(lake), "SHOP__LAKE__CHECKPOINTS": str(tmp_path / "checkpoints"),
        "SHOP__PATHS__RUN_DIR": str(tmp_path / "run"), "SHOP__SPARK__SHUFFLE_PARTITIONS": "2",
    }
    now = datetime.now(UTC)
    events = [
        _event(now - timedelta(seconds=20), "view", "s-ann", 101, 5001, 4.2),
        _event(now - timedelta(seconds=19), "cart", "s-ann", 101, 5001, 4.2),
        _event(now - timedelta(seconds=18), "cart", "s-ann", 101, 5002, 9.9),
        _event(now - timedelta(seconds=17), "cart", "s-ann", 101, 5001, 4.2),
        _event(now - timedelta(seconds=15), "cart", "s-bob", 102, 5003, 3.0),   # Bob checks out
        _event(now - timedelta(seconds=12), "purchase", "s-bob", 102, 5003, 3.0),
        _event(now - timedelta(seconds=10), "cart", "s-cat", 103, 5004, 7.0),   # not a subscriber
    ]
    pub = KafkaPublisher({"bootstrap.servers": kafka_broker}, topic)
    for e in events:
        pub.publish(wire_key(e), encode_wire(e))
    assert pub.flush() == 0

    log = tmp_path / "app.log"
    ops = lake / "ops" / "session_batches"
    app = start_app(env, log, "--queries", "sessions")
    try:  # the carts reach the state store (the query committed the batch that read all 7 events)...
        wait_for(lambda: _checkpointed(ops, tmp_path / "checkpoints" / "sessions"), timeout=240,
                 what=f"the events in the session state (log: {log})")
    finally:
        kill_group(app, signal.SIGKILL)  # ... then the app dies before any session expires
    assert smtp.messages() == []

    restarted = datetime.now(UTC)
    app = start_app(env, log, "--queries", "sessions")
    try:
        wait_for(lambda: len(smtp.messages()) >= 1, timeout=240, what=f"the email (log: {log})")
        decisions = {}

        def decided() -> bool:
            t = delta_rows(lake / "retarget" / "decisions")
            decisions.update({r["user_session"]: r for r in (t.to_pylist() if t is not None else [])})
            return {"s-ann", "s-cat"} <= decisions.keys()

        wait_for(decided, timeout=60, what="both abandoned carts decided")

        # Dan starts a cart now; Eve's device clock runs an hour fast (message timestamp and event time).
        # Stamped by the producer (CreateTime), Eve's event would move the watermark an hour ahead and
        # expire Dan's live cart at once; stamped by the broker it is clamped to now + 5 s.
        live = datetime.now(UTC)
        dan = _event(live, "cart", "s-dan", 104, 5001, 4.2)
        pub.publish(wire_key(dan), encode_wire(dan))
        assert pub.flush() == 0
        fast = live + timedelta(hours=1)
        eve = _event(fast, "cart", "s-eve", 105, 5002, 9.9)
        fast_producer = Producer({"bootstrap.servers": kafka_broker})
        fast_producer.produce(topic, key=wire_key(eve), value=encode_wire(eve), timestamp=int(fast.timestamp() * 1000))
        assert fast_producer.flush(30) == 0
        wait_for(lambda: _batch_after_watermark(ops, live + timedelta(seconds=1)), timeout=60,
                 what=f"the sessions query past Dan's and Eve's events (log: {log})")
        # then nobody shops: no tick but the heartbeat until a cart is due (the ticker knows when from
        # the buckets' reports), then one that expires it: Dan's at live + 45 s, Eve's 45 s after her
        # clamped time (never an hour ahead)
        def outbox() -> dict:
            t = delta_rows(lake / "retarget" / "outbox")
            return {r["user_session"]: r for r in (t.to_pylist() if t is not None else [])}

        wait_for(lambda: {"s-dan", "s-eve"} <= outbox().keys(), timeout=120,
                 what=f"Dan's and Eve's carts expired by the ticks sent for them (log: {log})")
    finally:
        kill_group(app, signal.SIGTERM)

    [msg] = smtp.messages()
    assert msg["X-Session-Id"] == "s-ann" and msg["To"].addresses[0].addr_spec == "ann@example.com"
    text = msg.get_body(("plain",)).get_content()
    assert "/product/5001?" in text and "/product/5002?" in text and "$18.30" in text
    assert decisions["s-ann"]["decision"] == "sent" and decisions["s-cat"]["decision"] == "not_subscriber"
    outbox = {r["user_session"]: r for r in delta_rows(lake / "retarget" / "outbox").to_pylist()}
    # Bob checked out; Dan's and Eve's carts expired 45 s after their broker-clamped times
    assert set(outbox) == {"s-ann", "s-cat", "s-dan", "s-eve"}, {s: str(r["expired_at"]) for s, r in outbox.items()}
    assert all(r["detected_at"] >= r["expired_at"] for r in outbox.values()), (
        "a session expired early", {s: str(r["detected_at"] - r["expired_at"]) for s, r in outbox.items()})
    assert outbox["s-eve"]["expired_at"] - outbox["s-dan"]["expired_at"] < timedelta(seconds=6), "Eve's clock counted"
    # in the quiet shop each was expired by a tick sent when it was due (+ the 3 s delay), not by a
    # heartbeat: the ticker waited on the buckets' reported expiries (it logs when it starts waiting)
    for sid in ("s-dan", "s-eve"):
        late = outbox[sid]["detected_at"] - outbox[sid]["expired_at"]
        assert late < timedelta(seconds=15), f"{sid} detected {late} after its expiry"
    assert "ticks slowed to one per 600 s: the next session expires at" in log.read_text()
    items = {i["product_id"]: i["qty"] for i in outbox["s-ann"]["items"]}
    assert items == {5001: 2, 5002: 1}
    # within the promise: from expiry (last activity + gap) to accepted by the SMTP server — counted
    # from the restart when the session expired while the app was down (latency: bench.abandonment)
    expired = outbox["s-ann"]["expired_at"]
    received = datetime.fromisoformat(msg["X-Received-At"])
    assert expired <= received and received - max(expired, restarted) < timedelta(minutes=3), json.dumps(
        {"expired": str(expired), "restarted": str(restarted), "received": str(received)})
