"""Email delivery under faults (issue #13): a real SIGKILL in the middle of a send batch, errors after the
provider accepted a message, a revoked API key, a stuck recipient, an append that fails after a send,
an offer that turns stale — against the project's real SMTP server (scripts/smtp_server.py: ``XHAS``,
slow mode, a mailbox-full domain) and the SendGrid fake (send + Email Activity API, checked as the
real API checks). Each test fails without the fix it names (docs/reliability.md, "Email")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from lib.retarget import rules as R
from lib.retarget.dispatcher import Dispatcher
from lib.retarget.mailbox import messages
from lib.retarget.message import Branding
from lib.retarget.senders import SendGridSender, SmtpSender
from lib.retarget.store import ATTEMPTS, DECISIONS, SENDER_HEALTH, SUBSCRIBERS, RetargetStore
from lib.schema import arrow_schema
from tests import helpers
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.helpers import add_outbox, wait_for
from tools.local_stack import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BRAND = Branding("https://shop.example", "https://shop.example/unsubscribe", "offers@shop.example", "Shop", 7)
KEY = b"k" * 32
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)  # carts that expired just now
ITEMS = [{"product_id": 1, "qty": 1, "price": 10.0, "brand": "b", "category_code": "c", "category_id": 1}]


def cart(session: str, user: int, minutes: float = 0) -> dict:
    return helpers.outbox_row(session, user, T0 + timedelta(minutes=minutes), items=ITEMS, cart_value=10.0, n_units=1)


def make_store(path: Path, users: dict[int, str]) -> RetargetStore:
    store = RetargetStore(str(path / "lake"))
    store.append(SUBSCRIBERS, pa.Table.from_pylist(
        [{"user_id": u, "email": e, "consent": True, "first_name": f"U{u}", "locale": "en_US", "loaded_at": T0}
         for u, e in users.items()], schema=arrow_schema(SUBSCRIBERS)))
    return store


def dispatcher(store, sender, **kw) -> Dispatcher:
    return Dispatcher(store, sender, R.Rules(control_share=0, cap_days=0), BRAND, KEY, retry_initial=0.01,
                      retry_max=0.05, **kw)


def decisions(store) -> dict[str, str]:
    return {r["user_session"]: r["decision"] for r in store.read(DECISIONS).to_pylist()}


def sessions_mailed(maildir) -> list[str]:
    return sorted(str(m["X-Session-Id"]) for m in messages(maildir))


class OwnSmtp:
    """A project SMTP server of this test's own (slow mode is per server: SIGUSR1)."""

    def __init__(self, work: Path, slow_seconds: float):
        self.port, self.maildir = free_port(), work / "mail"
        self.proc = subprocess.Popen(  # noqa: S603 — the project's own server, argv list
            [sys.executable, str(ROOT / "scripts" / "smtp_server.py"), "--port", str(self.port),
             "--maildir", str(self.maildir), "--slow-seconds", str(slow_seconds)],
            stdout=subprocess.PIPE, text=True)
        assert "listening" in self.proc.stdout.readline()

    def slow(self) -> None:
        self.proc.send_signal(signal.SIGUSR1)
        assert "slow mode on" in self.proc.stdout.readline()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def own_smtp(tmp_path):
    servers = []

    def start(slow_seconds: float) -> OwnSmtp:
        servers.append(OwnSmtp(tmp_path / f"smtp{len(servers)}", slow_seconds))
        return servers[-1]
    yield start
    for s in servers:
        s.stop()


CHILD = """
import sys
from lib.retarget import rules as R
from lib.retarget.dispatcher import Dispatcher
from lib.retarget.message import Branding
from lib.retarget.senders import SmtpSender
from lib.retarget.store import RetargetStore
print("sending", flush=True)
Dispatcher(RetargetStore(sys.argv[1]), SmtpSender("127.0.0.1", int(sys.argv[2])), R.Rules(control_share=0, cap_days=0),
           Branding("https://shop.example", "https://shop.example/unsubscribe", "offers@shop.example", "Shop", 7),
           b"k" * 32).run_once()
print("done", flush=True)
"""


def test_a_sigkill_in_the_middle_of_a_send_batch_leaves_every_cart_mailed_exactly_once(tmp_path, own_smtp):
    """The dispatcher process is SIGKILLed (its process group) while its batch of 20 goes out, one
    message every 0.25 s. The restarted dispatcher asks the server about every "started" send: the
    ones that arrived (also the one stored whose reply never came) are decided sent, the others sent
    now — 20 messages, 20 sessions, no "uncertain"."""
    server = own_smtp(0.25)
    server.slow()
    users = {u: f"user{u}@example.com" for u in range(1, 21)}
    store = make_store(tmp_path, users)
    add_outbox(store, [cart(f"s{u:02d}", u, u / 60) for u in users])
    child = subprocess.Popen([sys.executable, "-c", CHILD, store.root, str(server.port)], cwd=ROOT,  # noqa: S603
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: len(sessions_mailed(server.maildir)) >= 5, timeout=60, what="five messages out")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(10)
    before = sessions_mailed(server.maildir)
    assert 5 <= len(before) < 20, "the kill must land in the middle of the batch"
    assert decisions(store) == {}  # the dead process got no outcome row written
    d = dispatcher(store, SmtpSender("127.0.0.1", server.port))
    d.run_once()
    assert d.queue == {}
    mailed = sessions_mailed(server.maildir)
    assert mailed == sorted(f"s{u:02d}" for u in users)  # each exactly once
    assert set(decisions(store).values()) == {"sent"} and len(decisions(store)) == 20
    reconciled = [r for r in store.read(DECISIONS).to_pylist() if r["detail"].startswith("reconciled")]
    assert len(reconciled) >= len(before)  # those that arrived before the kill were not sent again


def test_smtp_reply_lost_after_the_server_stored_the_message_is_one_email(tmp_path, own_smtp):
    """The server stores the message and answers later than the client waits (a timeout after DATA):
    ambiguous — the dispatcher asks (XHAS) instead of sending again."""
    server = own_smtp(1.5)
    server.slow()
    store = make_store(tmp_path, {1: "one@example.com"})
    add_outbox(store, [cart("a", 1)])
    d = dispatcher(store, SmtpSender("127.0.0.1", server.port, timeout=0.5))
    d.run_once()
    [attempt] = [r for r in store.read(ATTEMPTS).to_pylist() if r["status"] != "started"]
    assert attempt["status"] == "ambiguous" and decisions(store) == {}
    d.next_try = 0
    wait_for(lambda: d.run_once() is not None and decisions(store) == {"a": "sent"}, timeout=10,
             what="the ambiguous send reconciled")
    assert sessions_mailed(server.maildir) == ["a"]


@pytest.mark.parametrize("fault", [500, 0], ids=["5xx-after-accept", "connection-dropped-after-accept"])
def test_sendgrid_error_after_acceptance_is_one_email(tmp_path, fault):
    store = make_store(tmp_path, {1: "one@example.com", 2: "two@example.com"})
    add_outbox(store, [cart("a", 1), cart("b", 2, 1)])
    with FakeSendGrid() as api:
        api.accept_then_fail = [fault]  # the first send is accepted, then the answer is an error / nothing
        api.activity_lag = 0.3  # the activity feed lists it a little later
        d = dispatcher(store, SendGridSender(api.api_key, api.url, timeout=2, activity_settle_seconds=30))
        d.run_once()
        assert decisions(store) == {"b": "sent"}
        d.next_try = 0
        d.run_once()  # asked too early: "unknown" (not listed yet, attempt younger than the settle time)
        assert decisions(store) == {"b": "sent"} and api.activity_requests >= 1
        time.sleep(0.4)
        wait_for(lambda: d.run_once() is not None and len(decisions(store)) == 2, timeout=10, what="reconciled")
        assert decisions(store) == {"a": "sent", "b": "sent"}
        assert len(api.accepted) == 2  # never a second send of "a"


def test_sendgrid_5xx_before_acceptance_is_proven_absent_and_sent_once(tmp_path):
    store = make_store(tmp_path, {1: "one@example.com"})
    add_outbox(store, [cart("a", 1)])
    with FakeSendGrid() as api:
        api.fail_next = [503]  # refused before anything was accepted — the client cannot know that
        d = dispatcher(store, SendGridSender(api.api_key, api.url, activity_settle_seconds=0))
        d.run_once()
        d.next_try = 0
        d.run_once()  # reconcile: not listed and old enough -> absent -> sent
        assert decisions(store) == {"a": "sent"} and len(api.accepted) == 1
        assert "absent" in {r["status"] for r in store.read(ATTEMPTS).to_pylist()}


def test_a_provider_that_cannot_tell_leaves_the_send_uncertain_and_reported(tmp_path, caplog):
    store = make_store(tmp_path, {1: "one@example.com"})
    add_outbox(store, [cart("a", 1)])
    with FakeSendGrid() as api:
        api.activity = False  # no Email Activity add-on: 403
        api.accept_then_fail = [500]
        d = dispatcher(store, SendGridSender(api.api_key, api.url))
        d.run_once()
        d.next_try = 0
        d.run_once()
        assert decisions(store) == {"a": "uncertain"} and len(api.accepted) == 1
    assert any("ALERT send a uncertain" in r.getMessage() for r in caplog.records)


def test_a_revoked_key_pauses_sending_and_a_rotated_one_resumes_it_without_a_restart(tmp_path, monkeypatch, caplog):
    """401 in the middle of a run: the circuit opens (ALERT line, ops row), the carts stay pending (no
    "failed"); a new key (as Secret Manager's latest version, here the environment) is read by the next
    probe and everything goes out once."""
    from lib.config import load_config
    from lib.retarget.senders import make_sender

    store = make_store(tmp_path, {u: f"u{u}@example.com" for u in range(1, 5)})
    add_outbox(store, [cart("a", 1)])
    clock = [0.0]
    with FakeSendGrid() as api:
        monkeypatch.setenv("SENDGRID_API_KEY", api.api_key)
        cfg = load_config("local", environ={"SHOP__RETARGET__SENDER": "sendgrid",
                                            "SHOP__RETARGET__SENDGRID_URL": api.url})
        d = dispatcher(store, make_sender(cfg), monotonic=lambda: clock[0], probe_seconds=30,
                       sender_factory=lambda: make_sender(cfg))
        d.run_once()
        assert decisions(store) == {"a": "sent"}
        api.api_key = "SG.rotated-key.0123456789"  # the old key is revoked
        add_outbox(store, [cart("b", 2, 1), cart("c", 3, 2), cart("d", 4, 3)])
        d.run_once()
        assert decisions(store) == {"a": "sent"} and len(d.queue) == 3 and d.circuit_reason
        assert any("ALERT email sending paused" in r.getMessage() for r in caplog.records)
        [opened] = store.read(SENDER_HEALTH).to_pylist()
        assert opened["state"] == "open" and "401" in opened["reason"] and opened["pending"] == 3
        clock[0] += 31
        d.run_once()  # a probe with the (still) old key: refused, still paused
        assert len(d.queue) == 3
        monkeypatch.setenv("SENDGRID_API_KEY", api.api_key)  # the operator rotates the key
        clock[0] += 10
        d.run_once()
        assert len(d.queue) == 3  # no probe before circuit_probe_seconds
        clock[0] += 21
        d.run_once()  # the probe: one message with the new key, the circuit closes
        d.run_once()
        assert decisions(store) == {s: "sent" for s in "abcd"} and len(api.accepted) == 4
        health = sorted(store.read(SENDER_HEALTH).to_pylist(), key=lambda r: r["at"])
        assert [r["state"] for r in health] == ["open", "closed"]


def test_a_stuck_recipient_never_holds_the_others_back(tmp_path, smtp):
    """A lasting 4xx for one address (mailbox full) backs off that session only."""
    store = make_store(tmp_path, {1: "full@mailbox-full.test", 2: "two@example.com", 3: "three@example.com"})
    add_outbox(store, [cart("stuck", 1), cart("b", 2, 1)])
    d = dispatcher(store, SmtpSender("127.0.0.1", smtp.port))
    d.run_once()
    assert decisions(store) == {"b": "sent"} and "stuck" in d.queue
    assert d.failures == 0 and d.next_try == 0  # nobody else waits
    add_outbox(store, [cart("c", 3, 2)])
    d.run_once()  # right away: the stuck one is backing off, the new one goes out
    assert decisions(store)["c"] == "sent" and sorted(m["X-Session-Id"] for m in smtp.messages()) == ["b", "c"]
    assert d.queue["stuck"].failures >= 1


def test_retry_after_is_honoured(tmp_path):
    store = make_store(tmp_path, {1: "one@example.com"})
    add_outbox(store, [cart("a", 1)])
    clock = [100.0]
    with FakeSendGrid() as api:
        api.fail_next, api.retry_after = [429], 20
        d = dispatcher(store, SendGridSender(api.api_key, api.url), monotonic=lambda: clock[0])
        d.run_once()
        assert d.next_try == pytest.approx(120, abs=1)  # not the 0.01 s backoff: what SendGrid asked
        clock[0] += 10
        d.run_once()
        assert api.requests == 1
        clock[0] += 11
        d.run_once()
        assert decisions(store) == {"a": "sent"} and api.requests == 2


def test_an_offer_that_could_not_go_out_for_a_day_is_decided_stale(tmp_path, smtp):
    store = make_store(tmp_path, {1: "one@example.com", 2: "two@example.com"})
    old = helpers.outbox_row("old", 1, datetime.now(UTC) - timedelta(hours=25), items=ITEMS, cart_value=10.0,
                             n_units=1)
    add_outbox(store, [old, cart("fresh", 2)])
    d = dispatcher(store, SmtpSender("127.0.0.1", smtp.port), stale_after=timedelta(hours=24))
    d.run_once()
    assert decisions(store) == {"old": "stale", "fresh": "sent"}
    assert [m["X-Session-Id"] for m in smtp.messages()] == ["fresh"]


class FlakyStore(RetargetStore):
    """Appends to the named tables fail ``failures`` times (disk full, object store down)."""

    def __init__(self, root: str, tables: set[str], failures: int):
        super().__init__(root)
        self.tables, self.failures = tables, failures

    def append(self, name, data):
        if name in self.tables and self.failures > 0 and data.num_rows:
            self.failures -= 1
            raise OSError(28, "No space left on device")
        super().append(name, data)


def test_an_append_that_fails_after_a_send_is_retried_never_a_second_send(tmp_path, smtp):
    """The outcome and decision appends fail after the email went out: nothing new is sent, the rows
    are appended by a later cycle, the decision is "sent" (not "capped"), the control is "control"."""
    make_store(tmp_path, {1: "one@example.com", 2: "two@example.com"})
    store = FlakyStore(str(tmp_path / "lake"), {ATTEMPTS, DECISIONS}, failures=0)
    add_outbox(store, [cart("a", 1)])
    d = Dispatcher(store, SmtpSender("127.0.0.1", smtp.port), R.Rules(control_share=0, cap_days=7), BRAND, KEY)
    store.tables = {DECISIONS}
    store.failures = 3
    d.run_once()  # sent; its decision append fails
    assert [m["X-Session-Id"] for m in smtp.messages()] == ["a"] and decisions(store) == {}
    d.run_once()
    d.run_once()  # still failing: nothing new, nothing again
    assert decisions(store) == {} and len(smtp.messages()) == 1
    d.run_once()
    assert decisions(store) == {"a": "sent"} and len(smtp.messages()) == 1
    # a control decision whose append fails stays control (not capped by its own in-memory offer)
    store.failures = 1
    add_outbox(store, [cart("ctl", 2, 1)])
    d.rules = R.Rules(control_share=1.0, cap_days=7)
    d.run_once()
    d.run_once()
    assert decisions(store) == {"a": "sent", "ctl": "control"}


def test_a_crash_with_the_outcome_rows_unwritten_is_reconciled_not_resent(tmp_path, smtp):
    make_store(tmp_path, {1: "one@example.com"})
    store = FlakyStore(str(tmp_path / "lake"), {ATTEMPTS, DECISIONS}, failures=0)
    add_outbox(store, [cart("a", 1)])
    d = dispatcher(store, SmtpSender("127.0.0.1", smtp.port))
    store.failures = 99
    store.tables = {DECISIONS}
    # the "started" row is committed (attempts still work), the outcome rows are not...
    original = store.append

    def fail_after_started(name, data):
        if name == ATTEMPTS and "accepted" in data.column("status").to_pylist():
            raise OSError(28, "No space left on device")
        original(name, data)
    store.append = fail_after_started
    d.run_once()
    assert len(smtp.messages()) == 1 and decisions(store) == {}
    # ... and the process dies: a new dispatcher on the same tables asks the server
    fresh = dispatcher(RetargetStore(store.root), SmtpSender("127.0.0.1", smtp.port))
    fresh.run_once()
    assert decisions(RetargetStore(store.root)) == {"a": "sent"} and len(smtp.messages()) == 1
