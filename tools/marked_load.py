"""Marked load for the benchmarks and the chaos run: the background load of generated shoppers, marked
sessions whose cart is certainly abandoned, a publisher that keeps what it sent (for the oracle), the
times the SMTP server accepted each email, and the percentile every benchmark reports.

Used by ``bench/abandonment.py``, ``bench/freshness.py`` and :mod:`tools.chaos` (``make chaos`` and
``tests/integration/test_chaos.py``); moved here from bench/ so that tests never import bench/.
"""

from __future__ import annotations

import argparse
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from lib.data.files import RawLine, iter_rows
from lib.data.generator.subscribers import generate_subscribers, write_subscribers_csv
from lib.data.generator.writers import write_csv
from lib.data.replayer import KafkaPublisher
from lib.schema import encode_wire, format_wire_time
from tools.local_stack import ROOT, log

MARK_USER_BASE = 990_000_000
MARK_PRODUCT_BASE = 9_800_000


def add_load_arguments(p: argparse.ArgumentParser, *, duration: float, duration_help: str, marks: int | None,
                       marks_help: str, gap_minutes: bool = True) -> None:
    """The load options the benchmarks and the chaos run share (``--eps --duration [--gap-minutes] --marks
    --partitions``); each program gives its own defaults and wording for what differs."""
    p.add_argument("--eps", type=float, default=500, help="background load, events/s (default 500)")
    p.add_argument("--duration", type=float, default=duration, help=duration_help)
    if gap_minutes:
        p.add_argument("--gap-minutes", type=float, default=2.0, help="session gap for the run (default 2)")
    p.add_argument("--marks", type=int, default=marks, help=marks_help)
    p.add_argument("--partitions", type=int, default=4, help="Kafka topic partitions (default 4)")


def add_work_arguments(p: argparse.ArgumentParser, *, name: str, seed: int) -> None:
    """``--work`` (default ``var/bench/<name>``) and ``--seed``."""
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / name)
    p.add_argument("--seed", type=int, default=seed)


class RecordingPublisher:
    """Publishes like KafkaPublisher and keeps every event it sent (for the oracle)."""

    def __init__(self, inner: KafkaPublisher):
        self.inner, self.lock = inner, threading.Lock()
        self.sent: list[bytes] = []

    def publish(self, key, value) -> None:
        self.inner.publish(key, value)
        with self.lock:
            self.sent.append(value)

    def flush(self, timeout: float = 60.0) -> int:
        return self.inner.flush(timeout)


def marked_session(i: int, run: str, now: datetime) -> list[dict]:
    user, session = MARK_USER_BASE + i, f"{run}-mark-{i:04d}"
    base = {"category_id": 1487580005092295511, "category_code": "beauty.skin.care", "brand": "benchmark",
            "user_id": user, "user_session": session}
    times = [now, now + timedelta(seconds=1), now + timedelta(seconds=2)]
    return [dict(base, event_time=format_wire_time(times[0]), event_type="view", product_id=MARK_PRODUCT_BASE + i,
                 price=12.5),
            dict(base, event_time=format_wire_time(times[1]), event_type="cart", product_id=MARK_PRODUCT_BASE + i,
                 price=12.5),
            dict(base, event_time=format_wire_time(times[2]), event_type="cart", product_id=MARK_PRODUCT_BASE + i + 5000,
                 price=3.0)]


def publish_marked(pub, i: int, run: str) -> None:
    """Publish marked session ``i`` (3 events, its cart certainly abandoned), timed now."""
    for e in marked_session(i, run, datetime.now(UTC)):
        pub.publish(str(e["user_id"]).encode(), encode_wire(e))


def prepare_load(work: Path, eps: float, duration: float, marks: int, seed: int) -> tuple[Path, Path, dict]:
    """Empty ``work``; write the background load (``eps`` x ``duration`` generated events, 1:1 pacing
    when replayed) and the subscribers (the load's users plus ``marks`` marked users, all consenting).
    Returns the load CSV, the subscribers CSV and the oracle's subscriber dict."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = int(eps * duration)
    load_csv = work / "load.csv"
    log(f"generating {rows} events over {duration:.0f} s of event time")
    write_csv(load_csv, rows=rows, seed=seed, start="2019-11-21 17:00:00", days=duration / 86400)
    users = sorted({int(r["user_id"]) for r in iter_rows(load_csv)
                    if not isinstance(r, RawLine) and r["user_id"].strip().isdigit()})  # generated: no raw lines
    subs = generate_subscribers(users, seed=seed)
    marked = [{"user_id": MARK_USER_BASE + i, "email": f"mark{i}@example.com", "consent": True,
               "first_name": f"Mark{i}", "locale": "en_US"} for i in range(marks)]
    subs = pd.concat([subs, pd.DataFrame(marked)], ignore_index=True)
    subs_csv = work / "subscribers.csv"
    write_subscribers_csv(subs, subs_csv)
    return load_csv, subs_csv, {int(r.user_id): {"consent": bool(r.consent)} for r in subs.itertuples()}


def received_at(messages) -> dict[str, list[datetime]]:
    """Session id -> the times (X-Received-At) the SMTP server accepted an email about it."""
    received: dict[str, list[datetime]] = {}
    for m in messages:
        received.setdefault(str(m["X-Session-Id"]), []).append(datetime.fromisoformat(m["X-Received-At"]))
    return received



def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
