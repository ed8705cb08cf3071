"""Streaming step load (issue #15): the highest event rate the full local app (all queries, the email
dispatcher, the dashboard) sustains with the real 30-minute session gap, while dashboard freshness
p95 <= 10 s and email p99 <= 60 s hold, with no email missed or sent twice.

    .venv/bin/python -m bench.step_load [--warmup-eps 1000] [--warmup-minutes 30]
                                        [--steps 500,1000,1500,2000,2500] [--step-seconds 180]

1. **Warm-up**: ``--warmup-minutes`` of shop time at ``--warmup-eps`` (generated shoppers), published as
   fast as the producer goes with their times shifted to end now (or, ``--warmup-speedup 1``, at 1:1
   pacing: the app lives through it), so ~30 minutes of live sessions exist when measuring starts (the
   sessions of the warm-up expire during the steps).
2. **Settle**: load at the first step's rate, 1:1 event-time pacing, until the app has caught up with the
   warm-up (a marked purchase is on the dashboard within 10 s and the sessions watermark is within 60 s
   of the wall clock).
3. **Steps**: each rate for ``--step-seconds`` at 1:1 pacing, one after the other; marked purchases time
   the dashboard's freshness. Stepping stops at the first step whose freshness p95 breaks or whose
   sessions watermark falls more than 60 s behind.
4. **Drain** and the **oracle**: every published event is kept; tools/abandonment_oracle computes which
   sessions must get an email; each step is judged on the sessions that expired during it (email p99
   from expiry to SMTP acceptance, missed, duplicates).

Per step it also reports the load achieved, micro-batch durations of each query (from the app's
progress log), live sessions and state bytes (ops/session_batches) and the app's resident memory.
Prints progress on stderr and, as the LAST line, one JSON object (``streaming_eps_sustained`` ...).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import threading
import time
import urllib.error
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson

from bench.freshness import MARK_PRODUCT_BASE, marked_purchase
from lib.data.files import iter_rows
from lib.data.generator.subscribers import generate_subscribers, write_subscribers_csv
from lib.data.generator.writers import write_csv
from lib.data.replayer import KafkaPublisher, last_event_time, replay
from lib.delta_io import read_table
from lib.retarget.store import RetargetStore
from lib.retarget.subscribers import load as load_subscribers
from lib.schema import encode_wire
from lib.spark import with_extra_task_slots
from tools.abandonment_oracle import abandoned_sessions, clean_event, decide_all
from tools.local_stack import ROOT, Stack, log
from tools.marked_load import RecordingPublisher, percentile, received_at

FRESHNESS_P95_MAX_S = 10.0
EMAIL_P99_MAX_S = 60.0
WATERMARK_LAG_MAX_S = 60.0
START = "2019-11-21 17:00:00"
PROGRESS = re.compile(r"^(\S+ \S+) shop\.progress (\w+) batch (\d+): (\d+) rows, (\d+) ms")


@dataclass
class Step:
    eps: float
    start: float = 0.0
    end: float = 0.0
    published: int = 0
    load_end: float = 0.0  # when the paced load had published its last event (the step's end if it never did)
    shop_seconds: float = 0.0  # the step's length of shop time (its file's events span at most this)
    marks: dict[int, float] = field(default_factory=dict)  # mark -> publish time

    def rate(self) -> float:
        """Events/s the load offered: its events over its own span, or over the step's shop time when
        the last event came earlier than that (a file's last event time is not its end). Not over the
        marks' loop, which ends ~0.4 s after 30 flushed publishes: 1,996 for 2,000 until 2026-12-01."""
        return self.published / max(self.load_end - self.start, self.shop_seconds)

    def as_window(self) -> tuple[datetime, datetime]:
        return datetime.fromtimestamp(self.start, UTC), datetime.fromtimestamp(self.end, UTC)


class Marks:
    """Marked purchases (product ids the generator never emits) and the seconds until the dashboard's
    API shows each, polled in a thread."""

    def __init__(self, stack: Stack):
        self.stack, self.run = stack, uuid.uuid4().hex[:8]
        self.pub = KafkaPublisher({"bootstrap.servers": stack.bootstrap}, stack.config().kafka.topic, linger_ms=0)
        self.published: dict[int, float] = {}
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def publish(self) -> int:
        i = len(self.published)
        event = marked_purchase(i, self.run)
        self.published[i] = time.time()
        self.pub.publish(str(event["user_id"]).encode(), encode_wire(event))
        self.pub.flush(10)
        return i

    def close(self) -> None:
        """Stop polling and end the producer (before the broker stops)."""
        self.stop.set()
        self.thread.join(timeout=10)
        self.pub.flush(10)
        del self.pub

    def latency(self, i: int) -> float | None:
        return self.seen[i] - self.published[i] if i in self.seen else None

    def latencies(self, marks) -> list[float]:
        """Sorted seconds to the dashboard of ``marks``; one never seen counts as infinite."""
        return sorted(self.seen[i] - self.published[i] if i in self.seen else float("inf") for i in marks)

    def _poll(self) -> None:
        while not self.stop.is_set():
            for i in [i for i in list(self.published) if i not in self.seen]:
                try:
                    body = self.stack.api(f"/api/sales/products/{MARK_PRODUCT_BASE + i}?minutes=60")
                except (urllib.error.URLError, TimeoutError, OSError):
                    continue
                if body.get("totals", {}).get("units", 0) >= 1 or body.get("today", {}).get("units", 0) >= 1:
                    self.seen[i] = time.time()
            time.sleep(0.2)


class Memory:
    """Resident memory (MB) of the app's process group (Python driver, JVM, Python workers), sampled."""

    def __init__(self, pgid: int):
        self.pgid = pgid
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def rss_mb(self) -> float:
        total = 0
        page = os.sysconf("SC_PAGE_SIZE")
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[2]) != self.pgid:
                    continue
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            except (OSError, ValueError, IndexError):
                continue
        return total / 2**20

    def _run(self) -> None:
        while not self.stop.wait(5):
            self.samples.append((time.time(), self.rss_mb()))

    def max_between(self, start: float, end: float) -> float | None:
        vals = [mb for t, mb in self.samples if start <= t <= end]
        return round(max(vals), 0) if vals else None


def generate(work: Path, name: str, eps: float, seconds: float, seed: int) -> tuple[Path, np.ndarray]:
    out = work / f"{name}.csv"
    summary = write_csv(out, rows=int(eps * seconds), seed=seed, start=START, days=seconds / 86400)
    return out, summary.user_ids


def sessions_lag_s(lake: Path, delay_s: float) -> float | None:
    """Wall clock minus the event time the sessions query has seen (watermark + its delay)."""
    table = read_table(lake / "ops" / "session_batches", columns=["watermark"])
    if table is None or table.num_rows == 0:
        return None
    wm = max((w for w in table.column("watermark").to_pylist() if w is not None), default=None)
    if wm is None:
        return None
    return time.time() - wm.replace(tzinfo=UTC).timestamp() - delay_s


def paced(csv: Path, pub, stop: threading.Event, counter: dict) -> threading.Thread:
    def run() -> None:
        rows = (r for r in iter_rows(csv) if not stop.is_set())
        replay(rows, pub, speedup=1.0, on_progress=lambda k: counter.__setitem__("n", counter["n"] + k))
        counter["end"] = time.time()  # the load's own span: the marks' loop may end later

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def progress_lines(log_file: Path) -> list[tuple[float, str, int, int]]:
    """(time, query, rows, ms) of each micro-batch the app logged (lib.streaming.log_progress)."""
    out: list[tuple[float, str, int, int]] = []
    if not log_file.exists():
        return out
    for line in log_file.read_text(errors="replace").splitlines():
        m = PROGRESS.match(line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
            out.append((t, m.group(2), int(m.group(4)), int(m.group(5))))
    return out


def _pct(values: list[float], q: float) -> float | None:
    """The percentile, rounded; None when there are no values or it falls on a mark never seen (inf)."""
    v = percentile(values, q) if values else float("nan")
    return round(v, 2) if math.isfinite(v) else None


def main(argv: list[str] | None = None) -> int:  # noqa: C901, PLR0915 — one measurement run, read top to bottom
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--warmup-eps", type=float, default=1000, help="warm-up rate, events/s of shop time (default 1000)")
    p.add_argument("--warmup-minutes", type=float, default=30, help="shop time published before the steps (default 30)")
    p.add_argument("--warmup-speedup", type=float, default=0,
                   help="0 (default): publish the warm-up as fast as possible; 1: at 1:1 pacing (the app sees it live)")
    p.add_argument("--steps", default="500,1000,1500,2000,2500", help="rates to step through, events/s")
    p.add_argument("--step-seconds", type=float, default=180, help="seconds per step (default 180)")
    p.add_argument("--marks", type=int, default=30, help="marked purchases per step (default 30)")
    p.add_argument("--gap-minutes", type=float, default=30, help="session gap (default 30)")
    p.add_argument("--settle-max", type=float, default=1200, help="max seconds to catch up with the warm-up")
    p.add_argument("--drain", type=float, default=90, help="seconds after the last step for its emails")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench" / "step_load")
    p.add_argument("--seed", type=int, default=31)
    args = p.parse_args(argv)
    try:
        steps = [Step(float(x)) for x in args.steps.split(",") if x.strip()]
    except ValueError:
        p.error(f"--steps must be comma-separated numbers, got {args.steps!r}")
    if not steps:
        p.error("--steps is empty")

    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    warm_s = args.warmup_minutes * 60
    log(f"generating the warm-up ({args.warmup_eps * warm_s:.0f} events over {args.warmup_minutes:.0f} min), "
        f"the settle load and {len(steps)} steps")
    warm_csv, users = generate(args.work, "warmup", args.warmup_eps, warm_s, args.seed)
    warm_last = last_event_time(warm_csv) if args.warmup_speedup <= 0 else None  # where the shift starts
    settle_csv, u = generate(args.work, "settle", steps[0].eps, args.settle_max, args.seed + 1)
    users = np.union1d(users, u)
    step_csvs = []
    for k, step in enumerate(steps):
        csv, u = generate(args.work, f"step{k}", step.eps, args.step_seconds, args.seed + 2 + k)
        step_csvs.append(csv)
        users = np.union1d(users, u)
    subs = generate_subscribers(users, seed=args.seed)
    subs_csv = args.work / "subscribers.csv"
    write_subscribers_csv(subs, subs_csv)
    subscribers = {int(r.user_id): {"consent": bool(r.consent)} for r in subs.itertuples()}

    stack = Stack(args.work, overrides={
        "SHOP__SESSIONS__GAP_MINUTES": str(args.gap_minutes), "SHOP__RETARGET__CONTROL_SHARE": "0",
        "SHOP__KAFKA__PARTITIONS": str(args.partitions),
    })
    cfg = stack.config()
    load_subscribers(RetargetStore(str(args.work / "lake")), subs_csv)
    lake = args.work / "lake"
    delay = cfg.sessions.watermark_delay_seconds
    run: list[Step] = []
    out: dict = {"bench": "step_load"}
    try:
        stack.start(topic_partitions=args.partitions)
        pub = RecordingPublisher(KafkaPublisher({"bootstrap.servers": stack.bootstrap}, cfg.kafka.topic))
        memory = Memory(os.getpgid(stack.app.pid))
        marks = Marks(stack)

        # 1. warm-up: shop time ending now, published as fast as the producer goes
        t0 = time.time()
        if args.warmup_speedup > 0:  # paced and re-timed to the wall clock (1 = real time)
            stats = replay(iter_rows(warm_csv), pub, speedup=args.warmup_speedup)
        else:  # as fast as the producer goes, times shifted to end now
            assert warm_last is not None  # noqa: S101 — a generated file has timed rows
            stats = replay(iter_rows(warm_csv), pub, speedup=0, shift=datetime.now(UTC) - warm_last)
        pub.flush()
        out["warmup"] = {"events": stats.published, "publish_s": round(time.time() - t0, 1),
                         "eps": args.warmup_eps, "minutes": args.warmup_minutes, "speedup": args.warmup_speedup}
        log(f"warm-up published: {stats.published} events in {time.time() - t0:.0f} s; settling at "
            f"{steps[0].eps:.0f} events/s until the app has caught up")

        # 2. settle at the first step's rate until caught up
        stop_settle, counter = threading.Event(), {"n": 0}
        settler = paced(settle_csv, pub, stop_settle, counter)
        t_settle = time.time()
        caught_up = None
        while time.time() - t_settle < args.settle_max:
            i = marks.publish()
            time.sleep(10)
            lag = sessions_lag_s(lake, delay)
            fresh = marks.latency(i)
            log(f"settle {time.time() - t_settle:.0f} s: mark {f'seen after {fresh:.1f} s' if fresh else 'not seen'}, "
                f"sessions lag {lag if lag is None else round(lag)} s")
            if fresh is not None and fresh <= FRESHNESS_P95_MAX_S and lag is not None and lag <= WATERMARK_LAG_MAX_S:
                caught_up = time.time() - t_settle
                break
        out["settle_s"] = None if caught_up is None else round(caught_up, 1)

        # 3. steps (the settle load stops as the first step starts)
        if caught_up is not None:
            for step, csv in zip(steps, step_csvs, strict=True):
                stop_step, counter = threading.Event(), {"n": 0}
                step.start = time.time()
                loader = paced(csv, pub, stop_step, counter)
                stop_settle.set()
                gap = args.step_seconds / args.marks
                for _ in range(args.marks):
                    i = marks.publish()
                    step.marks[i] = marks.published[i]
                    time.sleep(gap)
                loader.join(timeout=60)
                step.end = time.time()
                step.published = counter["n"]
                step.load_end = counter.get("end", step.end)
                step.shop_seconds = args.step_seconds
                run.append(step)
                time.sleep(5)
                fp95 = percentile(marks.latencies(step.marks), 0.95)
                step_lag = sessions_lag_s(lake, delay)
                log(f"step {step.eps:.0f} events/s: {step.rate():.0f} published/s, "
                    f"freshness p95 {fp95:.1f} s, sessions lag {step_lag if step_lag is None else round(step_lag)} s")
                if fp95 > FRESHNESS_P95_MAX_S or step_lag is None or step_lag > WATERMARK_LAG_MAX_S:
                    log("this step broke a target: stepping stops")
                    break
        stop_settle.set()
        settler.join(timeout=30)
        # 4. drain: the last step's sessions expire (clock ticks move event time) and are mailed
        log(f"load stopped; draining {args.drain:.0f} s")
        time.sleep(args.drain)
        marks.close()
        memory.stop.set()
        pub.flush()
        sent = pub.sent
        del pub  # its producer ends before the broker does (no reconnect noise)
        messages = stack.messages()
        ops = read_table(lake / "ops" / "session_batches")
        ops_rows = [] if ops is None else ops.to_pylist()
        progress = progress_lines(args.work / "log" / "streaming.log")
    finally:
        stack.stop()

    log(f"oracle over {len(sent)} published events")
    events = [c for c in (clean_event(orjson.loads(v)) for v in sent) if c is not None]
    sent.clear()
    carts, purchases = abandoned_sessions(events, timedelta(minutes=args.gap_minutes))
    del events
    decided = decide_all(carts, purchases, subscribers, cap_days=cfg.retarget.cap_days, control_share=0.0)
    want = {c.session: c for c in decided if c.decision == "send"}
    received = received_at(messages)
    duplicates = sum(len(v) - 1 for v in received.values())
    unexpected = [s for s in received if s not in want]

    results = []
    for step in run:
        lo, hi = step.as_window()
        due = [c for c in want.values() if lo <= c.expiry < hi]
        email = sorted((min(received[c.session]) - c.expiry).total_seconds() for c in due if c.session in received)
        missed = sum(1 for c in due if c.session not in received)
        fresh_s = marks.latencies(step.marks)
        batches = {q: sorted(ms / 1000 for t, qq, _, ms in progress if qq == q and step.start <= t <= step.end)
                   for q in ("lakehouse", "sessions", "bronze")}
        in_step = [r for r in ops_rows if r["processed_at"] is not None
                   and step.start <= r["processed_at"].replace(tzinfo=UTC).timestamp() <= step.end]
        wm_lag = max((0.0, *(r["processed_at"].replace(tzinfo=UTC).timestamp()
                             - r["watermark"].replace(tzinfo=UTC).timestamp() - delay
                             for r in in_step if r["watermark"] is not None)))
        res = {
            "eps_target": step.eps,
            "eps": round(step.rate(), 1),
            "seconds": round(step.end - step.start, 1),
            "freshness_p50_s": _pct(fresh_s, 0.5), "freshness_p95_s": _pct(fresh_s, 0.95),
            "freshness_unseen": sum(1 for x in fresh_s if x == float("inf")),
            "emails_due": len(due), "email_p50_s": _pct(email, 0.5), "email_p99_s": _pct(email, 0.99),
            "email_max_s": round(email[-1], 2) if email else None, "missed": missed,
            "batch_s": {q: {"n": len(v), "p50": _pct(v, 0.5), "p95": _pct(v, 0.95), "max": v[-1] if v else None}
                        for q, v in batches.items()},
            "sessions_watermark_lag_max_s": round(wm_lag, 1),
            "live_sessions_max": max((r["live_sessions"] or 0 for r in in_step), default=None),
            "state_mb_max": round(max((r["state_bytes"] or 0 for r in in_step), default=0) / 2**20, 1),
            "rss_mb_max": memory.max_between(step.start, step.end),
        }
        res["holds"] = bool(res["freshness_p95_s"] is not None and res["freshness_p95_s"] <= FRESHNESS_P95_MAX_S
                            and (res["email_p99_s"] is None or res["email_p99_s"] <= EMAIL_P99_MAX_S)
                            and missed == 0 and duplicates == 0 and res["emails_due"] > 0)
        results.append(res)
        log(f"step {step.eps:.0f}: {json.dumps(res)}")

    held = [r for r in results if r["holds"]]
    best = max(held, key=lambda r: r["eps"]) if held else None
    out.update({
        "streaming_eps_sustained": best["eps"] if best else 0.0,
        "gap_minutes": args.gap_minutes,
        "freshness_p95_s": best["freshness_p95_s"] if best else None,
        "email_p99_s": best["email_p99_s"] if best else None,
        "missed": sum(r["missed"] for r in results),
        "duplicates": duplicates,
        "unexpected": len(unexpected),
        "emails_expected_total": len(want),
        "emails_received_total": len(received),
        "steps": results,
        "cores": os.cpu_count(),
        # the app's settings that decide who gets the CPU (compare runs only with the same ones)
        "app_settings": {"master": with_extra_task_slots(cfg.spark.master, cfg.streaming.local_extra_task_slots),
                         "sessions_python_nice": cfg.sessions.python_nice,
                         "lakehouse_trigger_s": cfg.streaming.trigger_seconds,
                         "sessions_trigger_s": cfg.sessions.trigger_seconds, "buckets": cfg.sessions.buckets},
    })
    print(json.dumps(out, default=str))
    return 0 if best is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
