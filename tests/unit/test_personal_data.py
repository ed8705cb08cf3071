"""Personal data (issue #14): addresses redacted where errors and logs are made, retarget/* history
retention, and erasing one user (rows and history) — checked by scanning every file on disk."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from lib.config import PROJECT_ROOT
from lib.retarget import rules as R
from lib.retarget.dispatcher import Dispatcher
from lib.retarget.message import Branding, render
from lib.retarget.personal_data import TABLES, Needles, erase_user, prune_history, scan
from lib.retarget.redact import install, pseudonym, redact
from lib.retarget.senders import PermanentSendError, SendGridSender, SmtpSender
from lib.retarget.store import ATTEMPTS, DECISIONS, OFFERS, OUTBOX, SUBSCRIBERS, UNSUBSCRIBES, RetargetStore
from lib.schema import arrow_schema
from tests import helpers
from tests.helpers import add_outbox, delta_rows

KEY = b"test-signing-key-0123456789"
BRAND = Branding("https://shop.example", "http://127.0.0.1:8050/unsubscribe", "offers@shop.example",
                 "Cosmetics Shop", 7)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ITEMS = [{"product_id": 5809910, "qty": 1, "price": 5.0, "brand": "runail", "category_code": "appliances.nail.lamp",
          "category_id": 1}]
ERASED = 424242
SUBS = {1: "one@example.com", 4: "four@example.com", ERASED: "Erin.Erased@example.org",
        77: "refused.77@nowhere.invalid", 78: "bad..dots@example.com"}


def outbox_row(session: str, user: int, minutes: float) -> dict:
    return helpers.outbox_row(session, user, T0 + timedelta(minutes=minutes), items=ITEMS, cart_value=5.0, n_units=1)


def subscribers_table(subs: dict[int, str]) -> pa.Table:
    return pa.Table.from_pylist([{"user_id": u, "email": e, "consent": True, "first_name": "X", "locale": "en_US",
                                  "loaded_at": T0} for u, e in subs.items()], schema=arrow_schema(SUBSCRIBERS))


# --- redaction --------------------------------------------------------------------------------------------
def test_redact_replaces_every_address_with_a_stable_pseudonym_and_leaves_the_rest():
    p = pseudonym("Ann@Example.com")
    assert p == pseudonym("ann@example.com") and p.startswith("<email:") and len(p) == len("<email:12345678>")
    text = "recipient refused: {'ann@example.com': (550, b'5.1.1 <ANN@example.com>: Recipient address rejected')}"
    assert redact(text) == f"recipient refused: {{'{p}': (550, b'5.1.1 <{p}>: Recipient address rejected')}}"
    assert redact("SMTP 421 b'try later'") == "SMTP 421 b'try later'"
    # known addresses go exactly, also those no pattern would take whole (check_address's refusals)
    for odd in ["a b@example.com", "no-at-sign", "eve@example.com\r\nBcc: victim@example.org", "o'brien@example.com"]:
        out = redact(f"invalid email address {odd!r}", odd)
        assert odd not in out and "example" not in out.replace("<email:", "") or pseudonym(odd) in out, out
        assert Needles([odd] if "@" in odd else []).in_text(out) == []
    long_one = "x" * 90 + "@example.com"  # check_address quotes the first 80 characters
    assert redact(f"invalid email address {long_one[:80]!r}", long_one) == f"invalid email address '{pseudonym(long_one)}'"


def test_the_dispatcher_logger_redacts_messages_and_tracebacks(caplog):
    logger = install(logging.getLogger("shop.test-redaction"))
    with caplog.at_level(logging.INFO, logger="shop.test-redaction"):
        logger.info("decision %s: failed (%s)", "s1", "recipient refused: {'x@y.invalid': 550}")
        try:
            raise ValueError("bad address zoe@example.com")
        except ValueError:
            logger.exception("cycle failed for %s", "zoe@example.com")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    assert "x@y.invalid" not in text and "zoe@example.com" not in text
    assert pseudonym("x@y.invalid") in text and pseudonym("zoe@example.com") in text


def test_sendgrid_error_bodies_quoting_the_address_are_redacted(monkeypatch):
    from python_http_client.exceptions import HTTPError

    msg = render({**outbox_row("s1", 1, 0), "user_session": "s1"}, R.Subscriber(1, "ann@example.com", True, "Ann",
                                                                                  "en_US"), key=KEY, brand=BRAND, now=T0)
    sender = SendGridSender("SG.x", "http://127.0.0.1:9")

    def refuse(**_):
        raise HTTPError(400, "Bad Request", b'{"errors":[{"message":"ann@example.com bounced","field":"to"}]}', {})

    from types import SimpleNamespace

    monkeypatch.setattr(sender, "client", SimpleNamespace(client=SimpleNamespace(mail=SimpleNamespace(
        send=SimpleNamespace(post=refuse)))))
    with pytest.raises(PermanentSendError) as exc:
        sender.send(msg.email)
    assert "ann@example.com" not in str(exc.value) and pseudonym("ann@example.com") in str(exc.value)


def test_a_bad_subscriber_file_names_the_line_not_the_value(tmp_path):
    from lib.retarget.subscribers import SubscriberFileError, read_subscribers

    bad = tmp_path / "subs.csv"
    bad.write_text("user_id,email,consent,first_name,locale\n1,one@example.com,true,One,en_US\n"
                   "2,john smith@example.com,true,John,en_US\n")
    with pytest.raises(SubscriberFileError) as exc:
        read_subscribers(bad)
    assert "line 3: not an email address" in str(exc.value) and "smith" not in str(exc.value)


# --- the dispatcher's error paths -------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    s = RetargetStore(str(tmp_path / "lake"))
    s.append(SUBSCRIBERS, subscribers_table(SUBS))
    return s


def run_dispatcher(store, smtp) -> Dispatcher:
    d = Dispatcher(store, SmtpSender("127.0.0.1", smtp.port), R.Rules(control_share=0, cap_days=0), BRAND, KEY)
    d.run_once()
    return d


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_refused_and_invalid_recipients_leave_no_address_in_tables_or_logs(store, smtp, caplog, tmp_path):
    add_outbox(store, [outbox_row("ok", 1, 0), outbox_row("refused", 77, 1), outbox_row("invalid", 78, 2)])
    with caplog.at_level(logging.INFO, logger="shop.dispatcher"):
        run_dispatcher(store, smtp)
    got = {r["user_session"]: r for r in store.read(DECISIONS).to_pylist()}
    assert {k: v["decision"] for k, v in got.items()} == {"ok": "sent", "refused": "failed", "invalid": "failed"}
    assert got["refused"]["detail"].startswith("recipient refused") and "550" in got["refused"]["detail"]
    assert pseudonym(SUBS[77]) in got["refused"]["detail"] and pseudonym(SUBS[78]) in got["invalid"]["detail"]
    needles = Needles(SUBS.values())
    lake = tmp_path / "lake"
    assert scan(lake, needles, exclude=[lake / "retarget" / "subscribers"]) == []
    assert needles.in_text(caplog.text) == [] and pseudonym(SUBS[77]) in caplog.text
    smtp_log = smtp.maildir.parent / "log" / "smtp.log"
    assert needles.in_text(smtp_log.read_text()) == []
    assert [m["X-Session-Id"] for m in smtp.messages()] == ["ok"]


# --- retention --------------------------------------------------------------------------------------------
def test_history_retention_keeps_young_history_and_removes_old_files_and_log_entries(store):
    old = "old.list@example.net"
    store.overwrite(SUBSCRIBERS, subscribers_table({9: old}))
    store.overwrite(SUBSCRIBERS, subscribers_table({1: SUBS[1]}))  # the list replaced twice
    path = store.path(SUBSCRIBERS)
    assert scan(path, Needles([old]))  # the replaced list is still on disk (data file and log stats)
    kept = prune_history(store, 1)  # younger than an hour: time travel keeps working
    assert [p.files_deleted for p in kept if p.table == SUBSCRIBERS] == [0] and scan(path, Needles([old]))
    # an hour later: the log before the last checkpoint is cut; VACUUM (real clock) deletes files by then too
    later = prune_history(store, 1, now=time.time() + 3600 * 2)
    assert sum(p.log_files_deleted for p in later) > 0
    gone = prune_history(store, 0)  # what an hour would do to the data files
    assert sum(p.files_deleted for p in gone) >= 2
    assert scan(path, Needles([old])) == []
    assert store.read(SUBSCRIBERS).column("email").to_pylist() == [SUBS[1]]  # still a readable table


def test_maintain_prunes_the_retarget_tables_with_their_own_retention(store, tmp_path):
    from lib.batch.maintain import maintain_retarget
    from lib.config import load_config

    store.overwrite(SUBSCRIBERS, subscribers_table({1: SUBS[1]}))
    cfg = load_config("local", environ={"SHOP__LAKE__ROOT": str(tmp_path / "lake"),
                                        "SHOP__RETARGET__HISTORY_RETENTION_HOURS": "1"})
    assert cfg.retarget.history_retention_hours == 1
    results = maintain_retarget(cfg, now=time.time() + 7200)
    assert [r.table for r in results] == ["retarget.subscribers"]
    assert results[0].log_files_deleted >= 1 and results[0].files_after == 1


# --- erasure ----------------------------------------------------------------------------------------------
def populated(store, smtp):
    """A lake after a few days: two subscriber lists, unsubscribes, carts decided and mailed."""
    store.overwrite(SUBSCRIBERS, subscribers_table({ERASED: SUBS[ERASED], 5: "five@example.com"}))  # old list
    store.overwrite(SUBSCRIBERS, subscribers_table(SUBS))  # the current one
    add_outbox(store, [outbox_row("sess-erased-0001", ERASED, 0), outbox_row("sess-kept-0001", 1, 1),
                       outbox_row("sess-erased-0002", ERASED, 2)])
    run_dispatcher(store, smtp)
    add_outbox(store, [outbox_row("sess-erased-0003", ERASED, 3), outbox_row("sess-kept-0002", 1, 4)])
    run_dispatcher(store, smtp)
    # then they unsubscribed (the link of an email: by address)
    store.append(UNSUBSCRIBES, pa.Table.from_pylist([
        {"user_id": None, "email": SUBS[ERASED].upper(), "unsubscribed_at": T0, "source": "link"},
        {"user_id": 4, "email": SUBS[4], "unsubscribed_at": T0, "source": "link"}], schema=arrow_schema(UNSUBSCRIBES)))


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_erase_user_removes_rows_and_history_and_keeps_the_rest(store, smtp, tmp_path):
    populated(store, smtp)
    user = Needles([SUBS[ERASED]], ints=[ERASED], strings=[f"sess-erased-000{i}" for i in (1, 2, 3)])
    lake = tmp_path / "lake"
    before = scan(lake / "retarget", user)
    assert {f.kind for f in before} == {"address", "int", "string"}  # the scanner sees them, also in old files
    others = {t: store.read(t).num_rows for t in TABLES}
    env = dict(os.environ, SHOP__LAKE__ROOT=str(lake), SHOP__PATHS__RUN_DIR=str(tmp_path / "run"))
    proc = subprocess.run([sys.executable, "jobs/ops/erase_user.py", "--user-id", str(ERASED)], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.strip().splitlines()
    assert line.startswith(f"erased user {ERASED}: rows removed: subscribers 1, unsubscribes 1, outbox 3, "
                           "decisions 3, offers 3, attempts 6 (total 17); then vacuumed retarget/*: "), line
    found = scan(lake / "retarget", user)
    assert found == [], "\n".join(map(str, found))
    removed = {SUBSCRIBERS: 1, UNSUBSCRIBES: 1, OUTBOX: 3, DECISIONS: 3, OFFERS: 3, ATTEMPTS: 6}
    assert {t: store.read(t).num_rows for t in TABLES} == {t: n - removed[t] for t, n in others.items()}
    assert scan(lake / "retarget", Needles([SUBS[1], SUBS[4]], ints=[1, 4]))  # the others are still there
    # the dispatcher carries on on the erased tables
    add_outbox(store, [outbox_row("sess-kept-0003", 1, 9000)])
    run_dispatcher(store, smtp)
    assert delta_rows(lake / "retarget" / "decisions").num_rows == others[DECISIONS] - 3 + 1


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_erase_user_in_process_returns_counts_per_table(store, smtp):
    populated(store, smtp)
    removed, pruned = erase_user(store, 1, email=SUBS[4])  # by id, plus rows holding another address
    assert removed[SUBSCRIBERS] == 2 and removed[UNSUBSCRIBES] == 1 and removed[DECISIONS] == 2
    assert {p.table for p in pruned} == set(TABLES)


@pytest.mark.parametrize("args, message", [
    (["--user-id", "12a"], "USER_ID must be a positive integer"),
    (["--user-id", "-3"], "USER_ID must be a positive integer"),
    (["--user-id", "1", "--email", "x' OR '1'='1@example.com"], "EMAIL must be one plain address"),
    (["--user-id", "1", "--env", "nope"], ""),
])
def test_erase_user_refuses_a_bad_argument_with_one_line(args, message, tmp_path):
    env = dict(os.environ, SHOP__LAKE__ROOT=str(tmp_path / "lake"), SHOP__PATHS__RUN_DIR=str(tmp_path / "run"))
    proc = subprocess.run([sys.executable, "jobs/ops/erase_user.py", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_erase_user_refuses_while_the_streaming_app_runs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "streaming.pid").write_text(str(os.getpid()))  # a live process stands in for the app
    env = dict(os.environ, SHOP__LAKE__ROOT=str(tmp_path / "lake"), SHOP__PATHS__RUN_DIR=str(run))
    proc = subprocess.run([sys.executable, "jobs/ops/erase_user.py", "--user-id", "7"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "stop the writers of retarget/* first (streaming" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
