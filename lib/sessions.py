"""Cart sessions and their expiry: which sessions were abandoned, seconds after they expire.

A session (``user_session``) expires after ``sessions.gap_minutes`` without any event (event time).
At expiry it is **abandoned** when its cart (adds minus removes minus what was purchased) is not empty
and no purchase happened after its last add-to-cart (a later purchase means the shopper checked out).
(The cart and its outcome: ``lib.domain.carts``; this module runs them on the stream.)

How it runs (``sessionize``), and why so:

* Native Spark does the per-row work: parse and validate with the same rule table as silver
  (``lib.quality``), clamp event times that run ahead of the broker clock (``LogAppendTime`` topics:
  the message timestamp is the broker's receive time), set the watermark.
* ``applyInPandasWithState`` holds the carts. Each Python call costs ~2-3 ms whatever it does
  (DESIGN.md; measured again here: 5,000 groups in a batch took ~16 s on 2 cores), so one call per
  session per micro-batch cannot keep up with a busy shop. The grouping key is therefore a
  **bucket of users** (``pmod(xxhash64(user_id), buckets)``): one call per bucket per micro-batch,
  whatever the traffic, and inside each bucket the state is keyed by ``user_session``. Keeping a
  user's sessions in one bucket also lets a session see the user's purchases in other sessions.
* State exists only for sessions that had a cart action (``cart``, ``remove_from_cart``,
  ``purchase``); views only move the ``last activity`` of sessions that already have state.
  A session keeps its (deduplicated) cart events and the cart is folded from them in event-time
  order, so exact duplicates and out-of-order events inside the watermark give the right cart.
* Expiry uses an **event-time timeout** per bucket (the earliest expiry in it) on the RocksDB state
  store. When the shop goes quiet the watermark would stall; ``lib.clock`` then publishes clock ticks
  to ``sessions.clock_topic`` that advance event time at wall-clock pace, so emails are not held back.

The output has one row per expired cart session (``kind='session'``, with ``outcome`` abandoned /
checked_out / emptied) and one statistics row per Python call (``kind='stats'``: rows in, live
sessions, state bytes, sessions whose state was read or written): the sink sums them per micro-batch
into ``ops/session_batches``.
"""

from __future__ import annotations

import gc
import json
import os
import time
import warnings
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql.streaming.state import GroupStateTimeout

from lib.domain.carts import CART_TYPES, Cart, CartEvent, fold_cart
from lib.domain.carts import TYPE_RANK as _TYPE_RANK
from lib.domain.sales import PURCHASE
from lib.quality import is_valid
from lib.transforms.silver import parse_events

STATE_VERSION = 1

OUTPUT_DDL = (
    "kind STRING, user_session STRING, user_id BIGINT, outcome STRING, items_json STRING, "
    "cart_value DOUBLE, n_units INT, first_event_at TIMESTAMP, last_activity_at TIMESTAMP, "
    "last_cart_at TIMESTAMP, user_purchased_at TIMESTAMP, expired_at TIMESTAMP, detected_at TIMESTAMP, "
    "watermark_at TIMESTAMP, bucket INT, rows_in INT, live_sessions INT, state_bytes BIGINT, sessions_touched INT, "
    "next_expiry_at TIMESTAMP"
)
OUTPUT_COLUMNS = [c.strip().split(" ")[0] for c in OUTPUT_DDL.split(",")]
STATE_DDL = "payload STRING"
# ``t``: the event time sessions are built from (ahead of the broker by up to sessions.max_future_seconds);
# ``watermark_t``: the time the watermark follows, the event time capped at the broker's receive time
INPUT_COLUMNS = ["bucket", "t", "watermark_t", "event_type", "product_id", "category_id", "category_code", "brand",
                 "price", "user_id", "user_session"]


Expired = tuple  # (session id, SessionState, Cart, user's purchase after the last add and before expiry | None)


# --- the state of one bucket ------------------------------------------------------------------------------
@dataclass
class SessionState:
    user_id: int
    first_ms: int
    last_ms: int  # last activity (any event type)
    events: list[CartEvent]

    def expiry_ms(self, gap_ms: int) -> int:
        return self.last_ms + gap_ms


@contextmanager
def _no_cyclic_gc():
    """Python's cyclic GC paused while a bucket's state is parsed or written: the millions of small
    lists it makes hold no cycles, and every collection in between re-walks all live objects — 80 %
    of ``loads`` at ~13k live sessions a bucket (0.48 s with, 0.09 s without; docs/performance.md).
    Reference counting frees everything as usual; the collector resumes right after."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Sessions(MutableMapping):
    """Session id -> :class:`SessionState`, decoded from the state's JSON lists only when used.

    A micro-batch touches a few of a bucket's live sessions; the others are carried from ``loads`` to
    ``dumps`` as the plain lists JSON gave (``[user_id, first_ms, last_ms, events]``), and the scans
    every batch needs (expiry, users with live sessions) read those lists directly. Decoding every live
    session into objects in every batch was most of the state's cost (``make bench-state``: 164 → 48 µs
    per live session per batch; docs/performance.md)."""

    def __init__(self, items: dict | None = None):
        self._d: dict[str, SessionState | list] = dict(items or {})

    def __getitem__(self, sid: str) -> SessionState:
        v = self._d[sid]
        if type(v) is list:
            u, f, last, evs = v
            v = self._d[sid] = SessionState(u, f, last, [CartEvent.from_list(e) for e in evs])
        return v  # type: ignore[return-value]

    def __setitem__(self, sid: str, value: SessionState) -> None:
        self._d[sid] = value

    def __delitem__(self, sid: str) -> None:
        del self._d[sid]

    def __iter__(self):
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, sid: object) -> bool:
        return sid in self._d

    def keys(self):  # a set-like view: `ids & sessions.keys()` stays a C-level set operation
        return self._d.keys()

    def last_and_user(self):
        """``(session id, last activity ms, user id)`` of every session, without decoding any."""
        for sid, v in self._d.items():
            if type(v) is list:
                yield sid, v[2], v[0]
            else:
                yield sid, v.last_ms, v.user_id

    def as_lists(self) -> dict[str, list]:
        return {sid: v if type(v) is list else [v.user_id, v.first_ms, v.last_ms,  # type: ignore[union-attr]
                                                 [e.as_list() for e in v.events]]  # type: ignore[union-attr]
                for sid, v in self._d.items()}


class BucketState:
    """Live cart sessions of one bucket, plus the purchases of their users."""

    def __init__(self, sessions: dict[str, SessionState] | Sessions | None = None,
                 purchases: dict[int, list[int]] | None = None):
        self.sessions = sessions if isinstance(sessions, Sessions) else Sessions(sessions)
        self.purchases = purchases or {}  # user_id -> purchase times (ms), kept while the user has live sessions
        self.created = 0  # sessions given state since loading (the state I/O a call does: see SessionTracker)

    # JSON: readable with Spark's state data source, versioned for future changes. orjson writes the same
    # JSON as json.dumps(separators=(",", ":")) did (UTF-8 text instead of \u escapes) ~5x faster; parsing
    # is fast with either library only while the cyclic GC is paused (docs/performance.md).
    def dumps_bytes(self) -> bytes:
        with _no_cyclic_gc():
            return orjson.dumps({
                "v": STATE_VERSION,
                "s": self.sessions.as_lists(),
                "p": {str(u): t for u, t in self.purchases.items()},
            }, option=orjson.OPT_NON_STR_KEYS)  # keys as json.dumps wrote them (sessions ids are text already)

    def dumps(self) -> str:
        return self.dumps_bytes().decode()

    @classmethod
    def loads(cls, text: str | bytes) -> BucketState:
        with _no_cyclic_gc():
            d = orjson.loads(text)
        if d.get("v") != STATE_VERSION:
            raise ValueError(f"unknown session state version {d.get('v')!r}")
        return cls(Sessions(d["s"]), {int(u): t for u, t in d["p"].items()})

    def apply(self, pdf: pd.DataFrame, gap_ms: int) -> list[Expired]:
        """Fold a micro-batch's events of this bucket (columns ``INPUT_COLUMNS``) into the state.

        Returns the sessions that ended *inside* the batch: an event more than the gap after the
        previous one of its session closes the earlier part first (it would have expired in between;
        a fast replay puts hours of event time into one micro-batch).
        """
        if pdf.empty:
            return []
        pdf = pdf.assign(t=epoch_ms(pdf["t"]))
        is_cart = pdf["event_type"].isin(CART_TYPES)
        buys = pdf[pdf["event_type"] == PURCHASE]
        for u, t in zip(buys["user_id"], buys["t"]):
            times = self.purchases.setdefault(int(u), [])
            if int(t) not in times:
                times.append(int(t))
        relevant = set(pdf.loc[is_cart, "user_session"]) | (set(pdf["user_session"]) & self.sessions.keys())
        if not relevant:
            return []
        rows = pdf[pdf["user_session"].isin(relevant)]
        rows = rows.assign(_rank=rows["event_type"].map(_TYPE_RANK).fillna(-1)).sort_values(
            ["user_session", "t", "_rank"], kind="stable")
        ended = []
        prev_sid, prev_t, seg_first = None, None, None
        for row in rows.itertuples(index=False):
            sid, t = row.user_session, int(row.t)
            s = self.sessions.get(sid)
            if sid != prev_sid:
                prev_sid, prev_t = sid, (s.last_ms if s is not None else None)
                seg_first = s.first_ms if s is not None else t
            if prev_t is not None and t > prev_t + gap_ms:  # a new part of the session starts here
                if s is not None:
                    ended.append(self._close(sid, gap_ms))
                    s = None
                seg_first = t
            prev_t = t if prev_t is None else max(prev_t, t)
            if row.event_type in CART_TYPES:
                if s is None:  # first cart action: the session gets state now
                    # seg_first is set on the first row (user_session is never null: rule missing_user_session)
                    first = t if seg_first is None else seg_first
                    s = self.sessions[sid] = SessionState(int(row.user_id), first, t, [])
                    self.created += 1
                ev = CartEvent(t, row.event_type, int(row.product_id), float(row.price), _text(row.brand),
                               _text(row.category_code), _int(row.category_id))
                if ev not in s.events:  # exact duplicates count once
                    s.events.append(ev)
            if s is not None:
                s.last_ms = max(s.last_ms, t)
        return ended

    def _close(self, sid: str, gap_ms: int) -> Expired:
        s = self.sessions.pop(sid)
        cart = fold_cart(s.events)
        expiry = s.expiry_ms(gap_ms)
        since = cart.last_cart_ms if cart.last_cart_ms is not None else s.first_ms
        bought = [t for t in self.purchases.get(s.user_id, ()) if since < t <= expiry]
        return sid, s, cart, max(bought, default=None)

    def expire(self, watermark_ms: int, gap_ms: int) -> list[Expired]:
        """Remove and return the sessions whose expiry is at or before the watermark."""
        last_due = watermark_ms - gap_ms  # expiry = last activity + gap
        due = sorted((last + gap_ms, sid) for sid, last, _ in self.sessions.last_and_user() if last <= last_due)
        out = [self._close(sid, gap_ms) for _, sid in due]
        self.prune()
        return out

    def prune(self) -> None:
        """A user's purchases matter only while the user has live sessions."""
        if not self.purchases:
            return
        live_users = {u for _, _, u in self.sessions.last_and_user()}
        self.purchases = {u: t for u, t in self.purchases.items() if u in live_users}

    def next_expiry_ms(self, gap_ms: int) -> int | None:
        last = min((last for _, last, _ in self.sessions.last_and_user()), default=None)
        return None if last is None else last + gap_ms


def epoch_ms(times: pd.Series) -> pd.Series:
    """Timestamps (naive UTC, as Spark hands them over, or aware) or numbers -> epoch milliseconds."""
    if pd.api.types.is_numeric_dtype(times):
        return times.astype("int64")
    ts = pd.to_datetime(times, utc=True)
    return (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def _text(v) -> str | None:
    return None if v is None or (isinstance(v, float) and v != v) else str(v)


def _int(v) -> int | None:
    return None if v is None or (isinstance(v, float) and v != v) else int(v)


def _ts(ms: int | None) -> pd.Timestamp | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms", tz="UTC")


def _lower_priority(nice: int) -> None:
    """Raise this process's niceness to ``nice`` (once; never lowers it: that needs root). Runs in
    Spark's Python workers, which locally only the sessions query uses in the streaming app (on GCP a
    clock tick's small Spark job may pass a reused, niced worker: only while the shop is quiet)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current < nice:
        os.setpriority(os.PRIO_PROCESS, 0, nice)


# PySpark's applyInPandasWithState serializer pads each output batch with empty pandas frames and
# concatenates them (pyspark/sql/pandas/serializers.py), which pandas 2 answers with a FutureWarning
# on every call: two lines in the streaming log per micro-batch, forever, about PySpark's own padding.
PADDING_WARNING = "The behavior of DataFrame concatenation with empty or all-NA entries is deprecated"
_worker_ready = False


def _quiet_padding_warning() -> None:
    """In the Python worker (once): ignore that one warning, nothing else."""
    global _worker_ready
    if not _worker_ready:
        warnings.filterwarnings("ignore", message=PADDING_WARNING, category=FutureWarning)
        _worker_ready = True


class SessionTracker:
    """The ``applyInPandasWithState`` function (picklable; one instance per query)."""

    def __init__(self, gap_minutes: float, clock=time.time, watermark_delay_seconds: float | None = None,
                 nice: int = 0):
        self.gap_ms = int(gap_minutes * 60_000)
        self.clock = clock
        self.nice = nice  # OS niceness the Python worker takes at its first call (sessions.python_nice)
        # None: expire only by Spark's watermark (the previous batch's); else also by this batch's own
        # event time minus the delay (see __call__)
        self.delay_ms = None if watermark_delay_seconds is None else int(watermark_delay_seconds * 1000)

    def __call__(self, key: tuple, pdfs: Iterator[pd.DataFrame], state) -> Iterator[pd.DataFrame]:
        _quiet_padding_warning()
        if self.nice:
            _lower_priority(self.nice)
        bucket = int(key[0])
        st = BucketState.loads(state.get[0]) if state.exists else BucketState()
        loaded = len(st.sessions)  # this design reads (and rewrites) every live session of the bucket
        watermark = state.getCurrentWatermarkMs()
        rows_in = 0
        # Sessions already due expire first: an event after the gap starts over, it does not revive them.
        expired = st.expire(watermark, self.gap_ms)
        if not state.hasTimedOut:
            max_t = None
            for pdf in pdfs:
                if len(pdf) and self.delay_ms is not None:  # clock ticks count here, and only here
                    m = int(epoch_ms(pdf["watermark_t"]).max())
                    max_t = m if max_t is None else max(max_t, m)
                if "is_tick" in pdf.columns:
                    pdf = pdf[~pdf["is_tick"].astype(bool)]
                rows_in += len(pdf)
                expired += st.apply(pdf, self.gap_ms)
            if max_t is not None and self.delay_ms is not None and max_t - self.delay_ms > watermark:
                # Spark's watermark is the *previous* batch's max event time minus the delay; this
                # batch's rows already prove that time. Expiring by it now is as safe — Spark will
                # drop every later row older than it (the query's max is >= this bucket's) — and
                # saves one micro-batch of email latency.
                watermark = max_t - self.delay_ms
                expired += st.expire(watermark, self.gap_ms)
            st.prune()
        now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
        rows = [self._row(bucket, sid, s, cart, purchased, now, watermark) for sid, s, cart, purchased in expired]
        nxt = st.next_expiry_ms(self.gap_ms)
        payload = b"" if nxt is None else st.dumps_bytes()
        if nxt is None:
            state.remove()
        else:
            state.update((payload.decode(),))
            state.setTimeoutTimestamp(nxt)
        rows.append(self._stats(bucket, rows_in, len(st.sessions), now, watermark, state_bytes=len(payload),
                                touched=loaded + st.created, next_expiry=nxt))
        yield pd.DataFrame(rows, columns=OUTPUT_COLUMNS)

    def _row(self, bucket, sid, s: SessionState, cart: Cart, purchased_ms, now, watermark) -> dict:
        return {
            "kind": "session", "user_session": sid, "user_id": s.user_id, "outcome": cart.outcome,
            "items_json": json.dumps([i.as_dict() for i in cart.items], separators=(",", ":")),
            "cart_value": cart.value, "n_units": cart.units, "first_event_at": _ts(s.first_ms),
            "last_activity_at": _ts(s.last_ms), "last_cart_at": _ts(cart.last_cart_ms),
            "user_purchased_at": _ts(purchased_ms), "expired_at": _ts(s.expiry_ms(self.gap_ms)),
            "detected_at": now, "watermark_at": _ts(watermark), "bucket": bucket, "rows_in": None,
            "live_sessions": None, "state_bytes": None, "sessions_touched": None, "next_expiry_at": None,
        }

    @staticmethod
    def _stats(bucket, rows_in, live, now, watermark, *, state_bytes: int, touched: int,
               next_expiry: int | None) -> dict:
        """One per call: rows in, live sessions after it, the bucket's state size after it, the
        sessions whose state it read or wrote (here every live one, read and rewritten: the cost that
        grows with live sessions, not with the batch; issue #15, docs/performance.md), and the
        bucket's earliest pending expiry after it (its timeout; None: no live session), which the
        clock ticker waits for (``bucket_expiries``)."""
        return {c: None for c in OUTPUT_COLUMNS} | {
            "kind": "stats", "detected_at": now, "watermark_at": _ts(watermark), "bucket": bucket,
            "rows_in": rows_in, "live_sessions": live, "state_bytes": state_bytes, "sessions_touched": touched,
            "next_expiry_at": _ts(next_expiry),
        }


def bucket_expiries(out: pd.DataFrame) -> dict[int, int | None]:
    """A micro-batch's output (``OUTPUT_COLUMNS``) -> {bucket: its earliest pending expiry in epoch ms,
    or None when it holds no live session}, for the buckets the batch called (one stats row each):
    what the clock ticker needs to tick only when a session is due (``lib.clock``)."""
    stats = out[out["kind"] == "stats"]
    ms = epoch_ms(stats["next_expiry_at"].dropna()).reindex(stats.index)  # NaN where no live session
    return {int(b): (None if pd.isna(m) else int(m)) for b, m in zip(stats["bucket"], ms, strict=True)}


# --- the Spark side ----------------------------------------------------------------------------------------
def session_events(bronze_df, rules, *, events_topic: str, clock_topic: str, buckets: int,
                   max_future_seconds: float):
    """Bronze-shaped rows of the events and clock topics -> the stateful operator's input.

    Events are parsed and validated exactly like silver (invalid ones are silver's quarantine's
    business, here they are skipped). ``t`` is the event time, clamped to the broker's receive time +
    ``max_future_seconds``: a client clock a little ahead keeps its times (its session lasts that much
    longer), one far ahead cannot stretch a session. ``watermark_t`` — what the watermark follows — is
    the event time capped at the receive time itself: event time never runs ahead of the broker's clock,
    so no session is declared expired before its gap has passed on that clock (with ``t`` the watermark
    could lead it by ``max_future_seconds`` minus the watermark delay and expire carts that early; a
    test saw 2 s of 45). The receive time is the message timestamp (``kafka_timestamp``): the topics are
    ``LogAppendTime`` (``lib.kafka_admin.TOPIC_CONFIG``, Terraform), so the broker sets it, never the
    producer's clock.
    Clock ticks keep only ``t`` and ``is_tick`` and go to *every* bucket: each bucket then expires its
    sessions by the tick's time in the same micro-batch (see ``SessionTracker``), also when the shop
    is quiet.
    """
    parsed = parse_events(bronze_df)
    is_tick = F.col("topic") == F.lit(clock_topic)
    is_event = (F.col("topic") == F.lit(events_topic)) & is_valid(rules)
    clamp = F.col("kafka_timestamp") + F.make_dt_interval(secs=F.lit(float(max_future_seconds)))
    return (
        parsed.where(is_tick & F.col("event_time").isNotNull() | is_event)
        .select(
            is_tick.alias("is_tick"),
            F.least(F.col("event_time"), clamp).alias("t"),
            F.least(F.col("event_time"), F.col("kafka_timestamp")).alias("watermark_t"),
            F.explode(F.when(is_tick, F.sequence(F.lit(0), F.lit(buckets - 1))).otherwise(
                F.array(F.pmod(F.xxhash64("user_id"), F.lit(buckets)).cast("int")))).alias("bucket"),
            "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id",
            "user_session", F.col("kafka_timestamp").alias("received_at"),  # for the clock ticker only
        )
    )


def sessionize(events_df, *, gap_minutes: float, watermark_delay_seconds: float, clock=time.time,
               python_nice: int = 0):
    """``session_events`` output -> expired cart sessions + per-call stats (``OUTPUT_DDL``), append mode.
    ``python_nice``: the OS niceness of the Python workers that run the tracker (0: unchanged)."""
    tracker = SessionTracker(gap_minutes, clock, watermark_delay_seconds=watermark_delay_seconds, nice=python_nice)
    return (
        events_df.withWatermark("watermark_t", f"{int(watermark_delay_seconds * 1000)} milliseconds")
        # Ticks stay in: they move the watermark and reach every bucket (the tracker skips them when
        # folding carts). Never filter them out here without mentioning `watermark_t`: Spark pushes
        # filters that do not reference the event-time column below the watermark, and ticks would
        # never move it.
        .select("is_tick", *INPUT_COLUMNS)  # Spark drops rows whose `watermark_t` is behind the watermark
        .groupBy("bucket")
        .applyInPandasWithState(tracker, OUTPUT_DDL, STATE_DDL, "append", GroupStateTimeout.EventTimeTimeout)
    )
