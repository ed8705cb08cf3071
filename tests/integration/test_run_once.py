"""`make run-once` on a generated file: exactly the emails an independent batch oracle expects, once each,
every input event accounted for (lakehouse), no subscriber address outside the tables that must hold
them, and `make erase-user` on the result — through the real broker, app and SMTP server, one run.
The same input carries the hostile-input corpus as CSV lines (tests/hostile.py, issue #14): each line
quarantined with exactly its reasons, its valid neighbours in silver (one run-once for both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib.config import PROJECT_ROOT
from lib.data.files import count_rows, iter_rows
from lib.data.generator.subscribers import generate_subscribers, write_subscribers_csv
from lib.data.generator.writers import write_csv
from lib.retarget.mailbox import messages
from lib.retarget.personal_data import Needles, scan
from lib.retarget.redact import pseudonym
from lib.schema import csv_row_to_wire
from tests.helpers import bronze_values, delta_rows
from tests.hostile import NEIGHBOUR_SESSION_PREFIX, csv_block, published_value
from tools.abandonment_oracle import expected

pytestmark = pytest.mark.integration


def test_run_once_mails_exactly_the_expected_sessions_and_leaves_no_address_behind(tmp_path, spark):
    """One `make run-once` (the README's command) checked three ways: (1) exactly the emails the oracle
    expects, once each, every event accounted for; (2) personal data (issue #14): with one subscriber the
    SMTP server refuses and one whose address no server would take, no subscriber address is anywhere
    outside retarget/subscribers, retarget/unsubscribes and the Maildir — not in a log, any file of any
    table (old versions, tombstoned files, Delta logs), the checkpoints or the broker's data — and the
    scanner finds a planted one; (3) `make erase-user` removes one mailed user from retarget/*, rows and
    history; and (4) the hostile CSV lines appended to the input (after the generated day, at 12:00:
    run-once's closing tick must lie in the broker's past): each quarantined with exactly its reasons,
    every valid neighbour in silver once, bronze and the loader keep every line."""
    csv = tmp_path / "events.csv"
    write_csv(csv, rows=3000, seed=11, start="2019-10-03", days=0.4)
    generated = list(iter_rows(csv))
    hostile_now = datetime(2019, 10, 3, 12, 0, tzinfo=UTC)
    kinds, hostile_lines = csv_block(hostile_now)
    with csv.open("ab") as f:
        f.write(b"\n".join(hostile_lines) + b"\n")
    # one row dated years ahead (quarantined: future_event_time): run-once must move its clock to the
    # newest *valid* event, not wait its whole timeout for a watermark that is never allowed to get there
    with csv.open("a") as f:
        f.write("2031-01-01 00:00:00 UTC,view,5809910,1487580005092295511,,runail,2.62,999999999,"
                "f0000000-0000-4000-8000-000000000000\n")
    records = list(iter_rows(csv))
    assert len(records) == count_rows(csv) == len(generated) + 3 * len(kinds) + 1, "the loader yields every line"
    hostile_at = {len(generated) + 3 * j + 1: k for j, k in enumerate(kinds)}
    by_value = {published_value(records[i]): k for i, k in hostile_at.items()}
    rows = [r for i, r in enumerate(records) if i not in hostile_at]  # what the oracle reads: no hostile line
    users = sorted({int(r["user_id"]) for r in generated if r["user_id"].strip().isdigit()})
    subs = generate_subscribers(users, seed=11, share=0.6)
    subscribers = {int(r.user_id): {"consent": bool(r.consent)} for r in subs.itertuples()}
    carts = expected([csv_row_to_wire(r) for r in rows], subscribers, gap=timedelta(minutes=30), cap_days=7,
                     control_share=0.0)
    mailed = sorted({c.user for c in carts if c.decision == "send"})
    assert len(mailed) >= 5, "the generated input should mail a few users"
    refused_user, invalid_user, erased_user = mailed[0], mailed[1], mailed[2]
    refused, invalid = f"refused.{refused_user}@nowhere.invalid", f"bad..dots.{invalid_user}@example.com"
    subs.loc[subs.user_id == refused_user, "email"] = refused  # the SMTP server answers 550 5.1.1 <address>
    subs.loc[subs.user_id == invalid_user, "email"] = invalid  # check_address refuses it before any send
    subs_csv = tmp_path / "subs.csv"
    write_subscribers_csv(subs, subs_csv)
    addresses = set(subs.email)
    out = tmp_path / "out"
    env = dict(os.environ, SHOP__RETARGET__CONTROL_SHARE="0", SHOP__SESSIONS__TRIGGER_SECONDS="2",
               SHOP__STREAMING__TRIGGER_SECONDS="1", SHOP__STREAMING__BRONZE_TRIGGER_SECONDS="2")
    proc = subprocess.run(["make", "--no-print-directory", "run-once", f"INPUT={csv}", f"SUBSCRIBERS={subs_csv}",
                           f"OUT={out}", "RUN_ONCE_ARGS=--timeout 600"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=1200, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Needles(addresses).in_text(proc.stdout + proc.stderr) == []  # run-once's own output
    # the file's newest rows are quarantined: the 2031 view and the hostile line a century ahead
    far_future = (hostile_now + timedelta(days=365 * 100)).replace(microsecond=0)
    assert f"the file's newest row ({far_future.isoformat()})" in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    lh = summary["lakehouse"]
    assert lh["read"] == len(records) == lh["valid"] + lh["quarantined"] + lh["duplicates"]

    # (4) the hostile lines: each quarantined once with exactly its reasons; nothing else of this input
    # quarantined but the generated file's own quirks and the 2031 row; every valid neighbour in silver
    # once; bronze holds every line's bytes as published
    lake = out / "lake"
    bronze = bronze_values(lake)
    own = Counter(published_value(r) for r in generated) + Counter([published_value(records[-1])])
    quarantine = delta_rows(lake / "quarantine" / "events", columns=["partition", "offset", "reasons"])
    result, hostile_seen = {}, []
    for p, o, reasons in zip(quarantine.column("partition").to_pylist(), quarantine.column("offset").to_pylist(),
                             quarantine.column("reasons").to_pylist(), strict=True):
        k = by_value.get(bronze[(p, o)])
        if k is None:
            assert own[bronze[(p, o)]], f"a quarantined record that is no line of the input: {bronze[(p, o)][:200]!r}"
            continue
        hostile_seen.append(k.name)
        result[k.name] = tuple(reasons)
    print("\n[hostile-csv] per kind:", json.dumps(result))
    assert result == {k.name: k.expected_csv for k in kinds}
    assert len(hostile_seen) == len(kinds), Counter(hostile_seen).most_common(3)  # each kind once
    silver_sessions = delta_rows(lake / "silver" / "events", columns=["user_session"]).column("user_session").to_pylist()
    neighbours = sorted(s for s in silver_sessions if s and s.startswith(NEIGHBOUR_SESSION_PREFIX))
    assert neighbours == sorted(f"{NEIGHBOUR_SESSION_PREFIX}{i:012d}" for i in range(2 * len(kinds)))
    published = Counter(bronze.values())
    assert all(published[published_value(records[i])] >= 1 for i in hostile_at), "bronze changed a hostile line"
    print(f"[hostile-csv] {len(kinds)} kinds quarantined with their reasons, {len(neighbours)} neighbours in silver")
    # exactly the sessions the independent oracle mails, each once — but for the two addresses no
    # server takes, which are decided `failed`
    bad = (refused_user, invalid_user)
    want = sorted(c.session for c in carts if c.decision == "send" and c.user not in bad)
    got = [str(m["X-Session-Id"]) for m in messages(out / "mail")]
    assert len(want) > 20, "the generated input should produce a fair number of emails"
    assert sorted(got) == want
    assert summary["outbox"] == len(carts)
    # every other user's session decided as the oracle decides it (per session, not only in total)
    oracle = {c.session: ("sent" if c.decision == "send" else c.decision) for c in carts if c.user not in bad}
    by_session = {d["user_session"]: d["decision"]
                  for d in delta_rows(out / "lake" / "retarget" / "decisions").to_pylist() if d["user_id"] not in bad}
    assert by_session == oracle
    n_send = len(want)
    assert summary["decisions"].get("sent") == n_send and summary["emails"] == n_send

    # the error paths ran, and what they recorded names the address by its pseudonym only
    decisions = delta_rows(lake / "retarget" / "decisions").to_pylist()
    failed = {d["user_id"]: d["detail"] for d in decisions if d["decision"] == "failed"}
    assert set(failed) == {refused_user, invalid_user}
    assert "550" in failed[refused_user] and pseudonym(refused) in failed[refused_user]
    assert "invalid email address" in failed[invalid_user] and pseudonym(invalid) in failed[invalid_user]
    errors = [a["error"] for a in delta_rows(lake / "retarget" / "attempts").to_pylist() if a["error"]]
    assert any(pseudonym(refused) in e for e in errors)
    assert "Recipient address rejected" in "\n".join(errors)

    # the scan: every file under OUT except the tables that must hold addresses and the Maildir
    needles = Needles(addresses)
    keep = [lake / "retarget" / "subscribers", lake / "retarget" / "unsubscribes", out / "mail"]
    assert {f.value for f in scan(lake / "retarget" / "subscribers", needles)} >= {refused, invalid.lower()}
    assert scan(out / "mail", needles), "the Maildir holds the recipients' addresses (the scanner sees them)"
    assert (out / "log" / "streaming.log").stat().st_size > 0 and (out / "log" / "smtp.log").exists()
    findings = scan(out, needles, exclude=keep)
    assert findings == [], "\n".join(map(str, findings[:20]))
    n_files = sum(len(files) for _, _, files in os.walk(out))
    print(f"[personal data] {len(addresses)} subscriber addresses, {n_files} files under OUT, "
          f"{len(findings)} found outside subscribers/unsubscribes/mail; decisions {summary['decisions']}")

    # the scanner finds a planted address: in a log line, and in a parquet file left in a table folder
    planted = sorted(addresses)[3]
    with (out / "log" / "streaming.log").open("a") as f:
        f.write(f"2026-11-30 00:00:00 shop.dispatcher oops: {planted.upper()}\n")
    pq.write_table(pa.table({"note": [f"to {invalid}"]}), lake / "retarget" / "decisions" / "part-planted.parquet")
    found = {(f.path.rsplit("/", 1)[-1], f.value) for f in scan(out, needles, exclude=keep)}
    assert found == {("streaming.log", planted.lower()), ("part-planted.parquet", invalid.lower())}
    (lake / "retarget" / "decisions" / "part-planted.parquet").unlink()
    print(f"[personal data] planted 2, found {len(found)}: {sorted(found)}")

    # erase one mailed user: rows gone, and nothing of them left in any file of retarget/*
    email = subs.loc[subs.user_id == erased_user, "email"].item()
    sessions = {d["user_session"] for d in decisions if d["user_id"] == erased_user}
    user = Needles([email], ints=[erased_user], strings=sessions)
    assert scan(lake / "retarget", user), "before the erasure the user is in retarget/*"
    erase_env = dict(os.environ, SHOP__LAKE__ROOT=str(lake), SHOP__PATHS__RUN_DIR=str(out / "run"))
    proc = subprocess.run(["make", "--no-print-directory", "erase-user", f"USER_ID={erased_user}"], cwd=PROJECT_ROOT,
                          env=erase_env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith(f"erased user {erased_user}: rows removed: subscribers 1,"), line
    assert f"decisions {len(sessions)}," in line and f"outbox {len(sessions)}," in line
    findings = scan(lake / "retarget", user)
    assert findings == [], "\n".join(map(str, findings[:20]))
    print(f"[personal data] {line}; then id/address/{len(sessions)} sessions found in retarget/*: {len(findings)}")
    # the other users are still there, and the tables still read
    after = delta_rows(lake / "retarget" / "decisions").to_pylist()
    assert len(after) == len(decisions) - len(sessions) and erased_user not in {d["user_id"] for d in after}
    assert delta_rows(lake / "retarget" / "subscribers").num_rows == len(subs) - 1
    # Spark (the sessions sink's MERGE, the uplift job) reads the cut logs and writes on
    outbox = str(lake / "retarget" / "outbox")
    assert spark.read.format("delta").load(outbox).count() == summary["outbox"] - len(sessions)
    from delta.tables import DeltaTable

    new = spark.read.format("delta").load(outbox).limit(1).selectExpr("'after-erasure' AS user_session",
                                                                      "* EXCEPT (user_session)")
    (DeltaTable.forPath(spark, outbox).alias("t").merge(new.alias("s"), "t.user_session = s.user_session")
     .whenNotMatchedInsertAll().execute())
    assert delta_rows(outbox).num_rows == summary["outbox"] - len(sessions) + 1


def test_run_once_stopped_with_sigterm_stops_what_it_started(tmp_path):
    """SIGTERM (a CI runner's or a supervisor's stop) is handled like Ctrl-C: the broker, the SMTP
    server and the streaming app it started are stopped, nothing is left running."""
    import signal
    import time

    from tests.checkout import processes_under

    csv = tmp_path / "events.csv"
    write_csv(csv, rows=500, seed=3, start="2019-10-03", days=0.1)
    subs_csv = tmp_path / "subs.csv"
    write_subscribers_csv(generate_subscribers([1, 2, 3], seed=3, share=1.0), subs_csv)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "tools.run_once", "--input", str(csv), "--subscribers", str(subs_csv),
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
