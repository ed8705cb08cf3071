"""The sessions query's sink: abandoned carts -> the Delta outbox (idempotent by session id), and a
per-micro-batch row in ``ops/session_batches`` (Python calls, expired sessions by outcome, state size
and the sessions whose state was read or written)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa

from lib.delta_io import append_once
from lib.retarget.rules import SENT
from lib.retarget.store import DECISIONS, OUTBOX, RetargetStore
from lib.schema import arrow_schema

OPS_TABLE = "ops/session_batches"
OUTBOX_COLUMNS = arrow_schema(OUTBOX).names


@dataclass(frozen=True)
class SinkResult:
    python_calls: int
    rows_in: int
    live_sessions: int
    outcomes: dict[str, int]
    inserted: int
    state_bytes: int
    sessions_touched: int


def outbox_rows(sessions: pd.DataFrame, now: datetime) -> pa.Table:
    """Abandoned sessions (``lib.sessions`` output rows) -> outbox rows, one per session id: a session
    abandoned, resumed after the gap and abandoned again can expire twice in one micro-batch (a
    catch-up) — the first expiry is kept, as the MERGE keeps the first across batches."""
    ab = sessions[sessions["outcome"] == "abandoned"]
    ab = ab.sort_values(["expired_at", "user_session"], kind="stable").drop_duplicates("user_session", keep="first")
    data = {c: ab[c].tolist() for c in OUTBOX_COLUMNS if c in ab.columns}
    data["items"] = [json.loads(x) for x in ab["items_json"]]
    data["written_at"] = [now] * len(ab)
    for c, v in data.items():  # pandas NaT -> None for Arrow
        data[c] = [None if (x is pd.NaT or (isinstance(x, float) and x != x)) else x for x in v]
    return pa.table({c: data[c] for c in OUTBOX_COLUMNS}, schema=arrow_schema(OUTBOX))


def _ts(v) -> datetime | None:
    if v is None or v is pd.NaT:
        return None
    t = pd.Timestamp(v)
    return (t.tz_localize("UTC") if t.tzinfo is None else t).to_pydatetime()


def write_batch(store: RetargetStore, pdf: pd.DataFrame, batch_id: int, app_id: str, seconds: float) -> SinkResult:
    """Write one micro-batch of the sessions query (retry-safe)."""
    now = datetime.now(UTC)
    for c in ("first_event_at", "last_activity_at", "last_cart_at", "user_purchased_at", "expired_at",
              "detected_at", "watermark_at"):
        if c in pdf.columns:
            pdf[c] = pdf[c].map(_ts).astype(object)
    sessions = pdf[pdf["kind"] == "session"]
    stats = pdf[pdf["kind"] == "stats"]
    inserted = store.insert_new(OUTBOX, outbox_rows(sessions, now), "user_session")
    outcomes = {k: int(v) for k, v in sessions["outcome"].value_counts().items()}
    total = {c: int(stats[c].fillna(0).sum()) for c in ("rows_in", "live_sessions", "state_bytes", "sessions_touched")}
    res = SinkResult(len(stats), total["rows_in"], total["live_sessions"], outcomes, inserted,
                     total["state_bytes"], total["sessions_touched"])
    watermark = stats["watermark_at"].dropna().max() if len(stats) else None
    store.ensure(OPS_TABLE)
    ops = pa.table({
        "batch_id": [batch_id], "processed_at": [now], "watermark": [watermark], "python_calls": [res.python_calls],
        "rows_in": [res.rows_in], "live_sessions": [res.live_sessions], "expired": [len(sessions)],
        "abandoned": [outcomes.get("abandoned", 0)], "checked_out": [outcomes.get("checked_out", 0)],
        "emptied": [outcomes.get("emptied", 0)], "outbox_inserted": [inserted], "seconds": [seconds],
        "state_bytes": [res.state_bytes], "sessions_touched": [res.sessions_touched],
    }, schema=arrow_schema(OPS_TABLE))
    append_once(store.path(OPS_TABLE), ops, app_id, batch_id, store.storage_options)
    return res


@dataclass(frozen=True)
class CartProgress:
    """How far cart recovery has got: the sessions query's event-time watermark (its last micro-batch;
    None before it has one), expired carts in the outbox without a decision yet, and emails sent."""
    watermark: datetime | None
    awaiting_decision: int
    sent: int


def progress(store: RetargetStore) -> CartProgress:
    """``CartProgress`` from the lake (delta-rs, no Spark): what ``make demo`` waits on before it says
    where the emails are (jobs/ops/status.py --carts)."""
    ops = store.read(OPS_TABLE, ["watermark"])
    marks = [w for w in ops.column("watermark").to_pylist() if w is not None and w.year > 1970]  # 1970: none yet
    due = set(store.read(OUTBOX, ["user_session"]).column("user_session").to_pylist())
    decisions = store.read(DECISIONS, ["user_session", "decision"])
    decided = set(decisions.column("user_session").to_pylist())
    sent = sum(1 for d in decisions.column("decision").to_pylist() if d == SENT)
    watermark = max(marks) if marks else None
    return CartProgress(watermark.replace(tzinfo=UTC) if watermark and watermark.tzinfo is None else watermark,
                        len(due - decided), sent)
