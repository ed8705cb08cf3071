"""`make run-once` on a generated file: exactly the emails an independent batch oracle expects, once each,
and every input event accounted for (lakehouse) — through the real broker, app and SMTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from bench.abandonment_oracle import expected
from lib.config import PROJECT_ROOT
from lib.data.files import iter_rows
from lib.data.generator import write_csv
from lib.retarget.mailbox import messages
from lib.schema import csv_row_to_wire

pytestmark = pytest.mark.integration


def test_run_once_mails_exactly_the_expected_sessions(tmp_path):
    csv = tmp_path / "events.csv"
    write_csv(csv, rows=4000, seed=8, start="2019-10-03", days=0.5)
    # one row dated years ahead (quarantined: future_event_time): run-once must move its clock to the
    # newest *valid* event, not wait its whole timeout for a watermark that is never allowed to get there
    with csv.open("a") as f:
        f.write("2031-01-01 00:00:00 UTC,view,5809910,1487580005092295511,,runail,2.62,999999999,"
                "f0000000-0000-4000-8000-000000000000\n")
    rows = list(iter_rows(csv))
    import pandas as pd

    from lib.data.generator import generate_subscribers, write_subscribers_csv

    users = sorted({int(r["user_id"]) for r in rows if r["user_id"].strip().isdigit()})
    subs = generate_subscribers(users, seed=8, share=0.6)
    subs_csv = tmp_path / "subs.csv"
    write_subscribers_csv(subs, subs_csv)
    out = tmp_path / "out"
    env = dict(os.environ, SHOP__RETARGET__CONTROL_SHARE="0", SHOP__SESSIONS__TRIGGER_SECONDS="2",
               SHOP__STREAMING__TRIGGER_SECONDS="1", SHOP__STREAMING__BRONZE_TRIGGER_SECONDS="2")
    # the README's command, as a user types it
    proc = subprocess.run(["make", "--no-print-directory", "run-once", f"INPUT={csv}", f"SUBSCRIBERS={subs_csv}",
                           f"OUT={out}", "RUN_ONCE_ARGS=--timeout 600"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=1200, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "the file's newest row (2031-01-01" in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    lh = summary["lakehouse"]
    assert lh["read"] == len(rows) == lh["valid"] + lh["quarantined"] + lh["duplicates"]

    published = [csv_row_to_wire(r) for r in rows]
    subscribers = {int(r.user_id): {"consent": bool(r.consent)} for r in subs.itertuples()}
    carts = expected(published, subscribers, gap=timedelta(minutes=30), cap_days=7, control_share=0.0)
    want = sorted(c.session for c in carts if c.decision == "send")
    got = [str(m["X-Session-Id"]) for m in messages(out / "mail")]
    assert len(want) > 20, "the generated input should produce a fair number of emails"
    assert sorted(got) == want  # the same sessions, each exactly once
    assert summary["outbox"] == len(carts)
    decided = pd.Series([c.decision for c in carts]).value_counts().to_dict()
    assert {k: v for k, v in summary["decisions"].items()} == {("sent" if k == "send" else k): v
                                                                for k, v in decided.items()}


def test_run_once_stopped_with_sigterm_stops_what_it_started(tmp_path):
    """SIGTERM (a CI runner's or a supervisor's stop) is handled like Ctrl-C: the broker, the SMTP
    server and the streaming app it started are stopped, nothing is left running."""
    import signal
    import time

    from lib.data.generator import generate_subscribers, write_subscribers_csv
    from tests.checkout import processes_under

    csv = tmp_path / "events.csv"
    write_csv(csv, rows=500, seed=3, start="2019-10-03", days=0.1)
    subs_csv = tmp_path / "subs.csv"
    write_subscribers_csv(generate_subscribers([1, 2, 3], seed=3, share=1.0), subs_csv)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "lib.run_once", "--input", str(csv), "--subscribers", str(subs_csv),
                             "--out", str(out), "--timeout", "300"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        for line in proc.stderr:  # the broker, SMTP server and app are up once it replays
            if "replaying" in line or time.monotonic() > deadline:
                break
        assert processes_under(out), "run-once started nothing under OUT"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted; the services it started are stopped" in err and "Traceback" not in err
    assert processes_under(out) == []
