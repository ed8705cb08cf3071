"""Cart-recovery emails: each dispatcher rule, template rendering (hostile names too), the SMTP sender
against the project's real SMTP server, the SendGrid sender against a v3-validating endpoint, and the
dispatcher's promises (decided once, sent once, retried while the mail server is down, crash-safe)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pyarrow as pa
import pytest

from lib.retarget import rules as R
from lib.retarget.catalogue import Product
from lib.retarget.dispatcher import Dispatcher
from lib.retarget.message import Branding, InvalidAddress, check_address, read_unsubscribe_token, render
from lib.retarget.senders import (
    AccountError,
    AmbiguousSendError,
    SendGridSender,
    SmtpSender,
    TransientSendError,
    sendgrid_payload,
)
from lib.retarget.store import ATTEMPTS, DECISIONS, SUBSCRIBERS, UNSUBSCRIBES, RetargetStore
from lib.schema import arrow_schema
from tests import helpers
from tests.fakes.sendgrid_api import FakeSendGrid
from tests.helpers import add_outbox

KEY = b"test-signing-key-0123456789"
BRAND = Branding("https://shop.example", "http://127.0.0.1:8050/unsubscribe", "offers@shop.example",
                 "Cosmetics Shop", 7)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SUB = R.Subscriber(7, "ann@example.com", True, "Ann", "en_US")


def decide(**kw):
    args = dict(user_id=7, expired_at=T0, last_cart_at=T0 - timedelta(minutes=40), user_purchased_at=None,
                subscriber=SUB, unsubscribed=False, last_offer_at=None, rules=R.Rules(control_share=0))
    args.update(kw)
    return R.decide(**args)


# --- rules --------------------------------------------------------------------------------------------------
def test_each_rule_in_order():
    assert decide() == R.SEND
    assert decide(subscriber=None) == R.NOT_SUBSCRIBER
    assert decide(subscriber=R.Subscriber(7, "a@example.com", False, "A", None)) == R.NO_CONSENT
    assert decide(subscriber=R.Subscriber(7, "a@example.com", False, "A", None),
                  rules=R.Rules(require_consent=False, control_share=0)) == R.SEND
    assert decide(unsubscribed=True) == R.UNSUBSCRIBED
    assert decide(user_purchased_at=T0 - timedelta(minutes=35)) == R.PURCHASED_SINCE
    assert decide(user_purchased_at=T0 - timedelta(minutes=45)) == R.SEND  # before the last add: still abandoned
    assert decide(user_purchased_at=T0 - timedelta(minutes=35),
                  rules=R.Rules(suppress_purchased=False, control_share=0)) == R.SEND
    assert decide(last_offer_at=T0 - timedelta(days=6, hours=23)) == R.CAPPED
    assert decide(last_offer_at=T0 - timedelta(days=7)) == R.SEND
    assert decide(last_offer_at=T0 - timedelta(days=1), rules=R.Rules(cap_days=0, control_share=0)) == R.SEND
    # unsubscribed wins over control, control only after the cap
    assert decide(unsubscribed=True, rules=R.Rules(control_share=1)) == R.UNSUBSCRIBED
    assert decide(rules=R.Rules(control_share=1)) == R.CONTROL
    assert decide(last_offer_at=T0 - timedelta(days=1), rules=R.Rules(control_share=1)) == R.CAPPED


def test_control_group_is_deterministic_and_close_to_its_share():
    users = range(20_000)
    picked = [u for u in users if R.in_control(u, 0.10, "control-v1")]
    assert 0.09 < len(picked) / 20_000 < 0.11
    assert picked == [u for u in users if R.in_control(u, 0.10, "control-v1")]
    assert picked != [u for u in users if R.in_control(u, 0.10, "other-salt")]
    assert not any(R.in_control(u, 0.0, "control-v1") for u in users)


# --- the message -------------------------------------------------------------------------------------------
CART = {"user_session": "sess-1", "user_id": 7, "cart_value": 23.5, "items": [
    {"product_id": 5809910, "qty": 2, "price": 5.25, "brand": "grattol", "category_code": "appliances.nail.lamp",
     "category_id": 1},
    {"product_id": 4321, "qty": 1, "price": 13.0, "brand": None, "category_code": None, "category_id": 2},
]}


# the shop's catalogue (gold/product_catalogue): the only source of what the email says about a product
CATALOGUE = {5809910: Product("grattol", "appliances.nail.lamp", 1, 5.25), 4321: Product(None, None, 2, 13.0)}


def parts(msg):
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_message_has_items_links_offer_and_a_working_unsubscribe_link():
    r = render(CART, SUB, key=KEY, brand=BRAND, now=T0, catalogue=CATALOGUE)
    msg = r.message
    text, html = parts(msg)
    assert msg["X-Session-Id"] == "sess-1"
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"
    assert msg["Subject"].startswith("Ann, your cart is waiting")
    for body in (text, html):
        assert "Ann" in body and "$23.50" in body and r.offer_code in body
        assert "https://shop.example/product/5809910?" in body and "https://shop.example/product/4321?" in body
        assert "grattol" in body and "appliances › nail › lamp" in body and "$5.25" in body
    assert r.offer_code.startswith("FREESHIP-") and r.offer_expires_at == T0 + timedelta(days=7)
    assert "08 March 2026" in text
    token = re.search(r"unsubscribe\?token=([\w.\-]+)", text).group(1)
    assert read_unsubscribe_token(KEY, token) == (7, "ann@example.com")
    assert read_unsubscribe_token(b"another-key-0123456789", token) is None
    assert read_unsubscribe_token(KEY, token[:-2] + "xx") is None
    assert msg["List-Unsubscribe"] == f"<http://127.0.0.1:8050/unsubscribe?token={token}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_offer_codes_are_unique_per_session_and_stable():
    a = render(CART, SUB, key=KEY, brand=BRAND, now=T0).offer_code
    b = render(dict(CART, user_session="sess-2"), SUB, key=KEY, brand=BRAND, now=T0).offer_code
    assert a != b and a == render(CART, SUB, key=KEY, brand=BRAND, now=T0 + timedelta(hours=1)).offer_code


@pytest.mark.parametrize("name", [
    "Eve\r\nBcc: victim@example.org",
    "<script>alert('x')</script>",
    "Zoë \"the\" O'Neil, Esq.; <b>",
    "\u2028Subject: hacked",
    "",
])
def test_hostile_names_cannot_inject_headers_or_markup(name):
    sub = R.Subscriber(7, "eve@example.com", True, name, None)
    wire = render(dict(CART, user_session="s\r\nX-Evil: 1"), sub, key=KEY, brand=BRAND, now=T0).email.data
    assert b"\r\nBcc:" not in wire and b"\r\nX-Evil" not in wire and b"\r\nSubject: hacked" not in wire
    again = message_from_bytes(wire, policy=default_policy)
    assert again["Bcc"] is None and again["X-Evil"] is None
    assert [a.addr_spec for a in again["To"].addresses] == ["eve@example.com"]
    assert "\n" not in again["Subject"] and "\n" not in again["X-Session-Id"]
    _, html = parts(again)
    assert "<script>" not in html and "<b>" not in html
    if "<" in name:
        assert "&lt;" in html  # shown, escaped
    if not name.strip():
        assert again["Subject"].startswith("there, ")


# --- senders ---------------------------------------------------------------------------------------------
@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_smtp_sender_delivers_to_the_real_server(smtp):
    sender = SmtpSender("127.0.0.1", smtp.port)
    r = render(CART, SUB, key=KEY, brand=BRAND, now=T0)
    assert sender.send(r.email) == r.message_id == r.message["Message-ID"]
    sender.close()
    [got] = smtp.messages()
    assert got["X-Session-Id"] == "sess-1" and got["X-Received-At"]


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_smtp_sender_reports_a_down_server_as_transient(smtp):
    smtp.stop()
    with pytest.raises(TransientSendError) as err:
        SmtpSender("127.0.0.1", smtp.port, timeout=2).send(render(CART, SUB, key=KEY, brand=BRAND, now=T0).email)
    assert not isinstance(err.value, AmbiguousSendError) and err.value.scope == "server"  # never connected


def test_sendgrid_payload_is_accepted_by_a_validating_endpoint():
    with FakeSendGrid() as api:
        sender = SendGridSender(api.api_key, api.url)
        msg = render(CART, SUB, key=KEY, brand=BRAND, now=T0).email
        assert sender.send(msg)
        [body] = api.accepted
        assert body["personalizations"][0]["to"] == [{"email": "ann@example.com", "name": "Ann"}]
        assert body["headers"]["X-Session-Id"] == "sess-1"
        assert body["personalizations"][0]["custom_args"] == {"session_id": "sess-1"}
        assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]


def test_sendgrid_errors_map_to_permanent_and_transient():
    msg = render(CART, SUB, key=KEY, brand=BRAND, now=T0).email
    with FakeSendGrid() as api:
        with pytest.raises(AccountError, match="401"):  # the account, not this message: the circuit opens
            SendGridSender("SG.wrong", api.url).send(msg)
        api.fail_next = [503]
        with pytest.raises(AmbiguousSendError, match="503"):  # may have been accepted: reconcile first
            SendGridSender(api.api_key, api.url).send(msg)
        api.fail_next, api.retry_after = [429], 7
        with pytest.raises(TransientSendError, match="429") as err:  # refused, nothing sent; wait as told
            SendGridSender(api.api_key, api.url).send(msg)
        assert not isinstance(err.value, AmbiguousSendError) and err.value.retry_after == 7
        bad = sendgrid_payload(msg)
        bad["headers"]["Subject"] = "x"
        bad["content"].reverse()
        from tests.fakes.sendgrid_api import validate
        assert {e["field"] for e in validate(bad)} == {"headers", "content"}
    with pytest.raises(TransientSendError) as err:
        SendGridSender("SG.x", "http://127.0.0.1:9").send(msg)  # nothing listens there: nothing was sent
    assert not isinstance(err.value, AmbiguousSendError)


# --- the dispatcher ---------------------------------------------------------------------------------------
def outbox_row(session: str, user: int, minutes: float, *, purchased: datetime | None = None) -> dict:
    return helpers.outbox_row(session, user, T0 + timedelta(minutes=minutes), items=CART["items"], cart_value=23.5,
                              n_units=3, purchased=purchased)


@pytest.fixture
def store(tmp_path):
    s = RetargetStore(str(tmp_path / "lake"))
    subs = [
        {"user_id": 1, "email": "one@example.com", "consent": True, "first_name": "One", "locale": "en_US"},
        {"user_id": 2, "email": "two@example.com", "consent": False, "first_name": "Two", "locale": "en_US"},
        {"user_id": 3, "email": "three@example.com", "consent": True, "first_name": "Three", "locale": "de_DE"},
        {"user_id": 4, "email": "four@example.com", "consent": True, "first_name": "Four", "locale": "en_US"},
        {"user_id": 5, "email": "five@example.com", "consent": True, "first_name": "Five", "locale": "en_US"},
    ]
    for r in subs:
        r["loaded_at"] = T0
    s.append(SUBSCRIBERS, pa.Table.from_pylist(subs, schema=arrow_schema(SUBSCRIBERS)))
    s.append(UNSUBSCRIBES, pa.Table.from_pylist([{"user_id": 3, "email": "three@example.com", "unsubscribed_at": T0,
                                                  "source": "link"}], schema=arrow_schema(UNSUBSCRIBES)))
    return s


def dispatcher(store, sender, **rules) -> Dispatcher:
    return Dispatcher(store, sender, R.Rules(**({"control_share": 0} | rules)), BRAND, KEY, retry_initial=0.01,
                      retry_max=0.05)


def decisions(store) -> dict[str, str]:
    return {r["user_session"]: r["decision"] for r in store.read(DECISIONS).to_pylist()}


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_dispatcher_decides_every_cart_once_and_mails_only_the_eligible(store, smtp):
    add_outbox(store, [
        outbox_row("a", 1, 0), outbox_row("b", 2, 1), outbox_row("c", 3, 2), outbox_row("d", 9, 3),
        outbox_row("e", 4, 4, purchased=T0 + timedelta(minutes=-20)),
        outbox_row("f", 1, 60 * 24),  # the same user a day later: capped
        outbox_row("g", 5, 5),
    ])
    d = dispatcher(store, SmtpSender("127.0.0.1", smtp.port))
    d.run_once()
    assert decisions(store) == {"a": "sent", "b": "no_consent", "c": "unsubscribed", "d": "not_subscriber",
                                "e": "purchased_since", "f": "capped", "g": "sent"}
    assert sorted(m["X-Session-Id"] for m in smtp.messages()) == ["a", "g"]
    sent = {r["user_session"]: r for r in store.read(DECISIONS).to_pylist() if r["decision"] == "sent"}
    assert sent["a"]["offer_code"].startswith("FREESHIP-") and sent["a"]["attempts"] == 1
    # nothing twice: again, and after a restart
    d.run_once()
    dispatcher(store, SmtpSender("127.0.0.1", smtp.port)).run_once()
    assert len(smtp.messages()) == 2 and len(store.read(DECISIONS)) == 7
    statuses = [(r["user_session"], r["status"]) for r in store.read(ATTEMPTS).to_pylist()]
    assert sorted(statuses) == [("a", "accepted"), ("a", "started"), ("g", "accepted"), ("g", "started")]


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_parallel_senders_mail_each_cart_once_over_several_connections(store, smtp):
    """A burst goes out over several SMTP connections; each message exactly once, each outcome logged."""
    rows = [outbox_row(f"s{i:02d}", u, i) for i, u in enumerate([1, 4, 5] * 7)]  # 21 carts, capped per user
    add_outbox(store, rows)
    d = Dispatcher(store, SmtpSender("127.0.0.1", smtp.port), R.Rules(control_share=0, cap_days=0), BRAND, KEY,
                   more_senders=(SmtpSender("127.0.0.1", smtp.port), SmtpSender("127.0.0.1", smtp.port)))
    d.run_once()
    assert sorted(m["X-Session-Id"] for m in smtp.messages()) == sorted(r["user_session"] for r in rows)
    assert set(decisions(store).values()) == {"sent"} and len(decisions(store)) == 21
    accepted = [r for r in store.read(ATTEMPTS).to_pylist() if r["status"] == "accepted"]
    assert len(accepted) == 21 and len({r["message_id"] for r in accepted}) == 21


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_control_group_is_recorded_not_mailed(store, smtp):
    add_outbox(store, [outbox_row("a", 1, 0), outbox_row("g", 5, 1)])
    dispatcher(store, SmtpSender("127.0.0.1", smtp.port), control_share=1.0).run_once()
    assert decisions(store) == {"a": "control", "g": "control"}
    assert smtp.messages() == []


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_mail_server_down_retries_with_backoff_then_sends_once(store, smtp):
    add_outbox(store, [outbox_row("a", 1, 0)])
    smtp.stop()
    d = dispatcher(store, SmtpSender("127.0.0.1", smtp.port, timeout=2))
    d.run_once()
    d.next_try = 0
    d.run_once()
    assert decisions(store) == {} and d.failures == 2
    failed = [r for r in store.read(ATTEMPTS).to_pylist() if r["status"] == "failed"]
    assert len(failed) == 2 and "cannot connect" in failed[0]["error"]
    smtp.start()
    d.next_try = 0
    d.run_once()
    assert decisions(store) == {"a": "sent"}
    assert [m["X-Session-Id"] for m in smtp.messages()] == ["a"]
    assert store.read(DECISIONS).to_pylist()[0]["attempts"] == 3


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_a_crash_while_sending_is_reconciled_with_the_mail_server(store, smtp):
    """A previous run committed "started" for three carts, then died: "g"'s outcome was written, "h"
    reached the server (its outcome row did not), "a" never left. After the restart the server is asked
    (XHAS): "h" is decided sent without a second email, "a" is sent now — each exactly once."""
    add_outbox(store, [outbox_row("a", 1, 0), outbox_row("g", 5, 1), outbox_row("h", 4, 2)])
    h = render(outbox_row("h", 4, 2), R.Subscriber(4, "four@example.com", True, "Four", "en_US"), key=KEY,
               brand=BRAND, now=T0)
    SmtpSender("127.0.0.1", smtp.port).send(h.email)  # what the dead run got out
    store.append(ATTEMPTS, pa.Table.from_pylist([
        {"user_session": "a", "attempt": 1, "status": "started", "at": T0, "sender": "smtp"},
        {"user_session": "g", "attempt": 1, "status": "started", "at": T0, "sender": "smtp"},
        {"user_session": "g", "attempt": 1, "status": "accepted", "at": T0, "sender": "smtp", "message_id": "<m>"},
        {"user_session": "h", "attempt": 1, "status": "started", "at": T0, "sender": "smtp",
         "message_id": h.message_id},
    ], schema=arrow_schema(ATTEMPTS)))
    d = dispatcher(store, SmtpSender("127.0.0.1", smtp.port), cap_days=0)
    res = d.run_once()
    assert res.reconciled == {"present": 1, "absent": 1}
    d.run_once()  # nothing left to do: no second email for anyone
    assert decisions(store) == {"a": "sent", "g": "sent", "h": "sent"}
    assert sorted(m["X-Session-Id"] for m in smtp.messages()) == ["a", "h"]
    statuses = sorted((r["user_session"], r["status"]) for r in store.read(ATTEMPTS).to_pylist())
    assert ("a", "absent") in statuses and ("h", "accepted") in statuses


def test_sendgrid_end_to_end_through_the_dispatcher(store):
    add_outbox(store, [outbox_row("a", 1, 0)])
    with FakeSendGrid() as api:
        api.fail_next = [429]
        d = dispatcher(store, SendGridSender(api.api_key, api.url))
        d.run_once()
        d.next_try = 0
        d.run_once()
        assert decisions(store) == {"a": "sent"} and len(api.accepted) == 1 and api.requests == 2


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
@pytest.mark.parametrize("email", ["eve@example.com\r\nBcc: victim@example.org", "no-at-sign", "a b@example.com",
                                   "zoë@example.com"])
def test_an_address_no_server_would_take_fails_that_cart_for_good_and_the_rest_go_out(store, smtp, email):
    store.append(SUBSCRIBERS, pa.Table.from_pylist([{"user_id": 6, "email": email, "consent": True, "first_name": "Six",
                                                     "locale": "en_US", "loaded_at": T0}],
                                                   schema=arrow_schema(SUBSCRIBERS)))
    add_outbox(store, [outbox_row("bad", 6, 0), outbox_row("good", 1, 1)])
    d = dispatcher(store, SmtpSender("127.0.0.1", smtp.port))
    d.run_once()
    assert decisions(store) == {"bad": "failed", "good": "sent"}
    assert [m["X-Session-Id"] for m in smtp.messages()] == ["good"]
    [bad] = [r for r in store.read(DECISIONS).to_pylist() if r["user_session"] == "bad"]
    assert "invalid email address" in bad["detail"]
    assert not d.queue  # not retried


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_dispatcher_reads_only_new_outbox_rows_and_misses_none_written_at_the_same_instant(store, smtp):
    d = dispatcher(store, SmtpSender("127.0.0.1", smtp.port), cap_days=0)
    add_outbox(store, [dict(outbox_row("a", 1, 0), written_at=T0), dict(outbox_row("b", 4, 1), written_at=T0)])
    d.run_once()
    # the sink's next writes: one at the very instant of the last read's newest row, one later
    add_outbox(store, [dict(outbox_row("c", 5, 2), written_at=T0)])
    add_outbox(store, [dict(outbox_row("e", 1, 3), written_at=T0 + timedelta(seconds=5))])
    d.run_once()
    d.run_once()
    assert decisions(store) == {"a": "sent", "b": "sent", "c": "sent", "e": "sent"}
    assert sorted(m["X-Session-Id"] for m in smtp.messages()) == ["a", "b", "c", "e"]
    assert d._outbox == [] and d._outbox_mark == T0 + timedelta(seconds=5)


def test_no_unsubscribe_url_no_email():
    """conf/gcp.yaml carries no placeholder link: without the deployed unsubscribe service's URL the
    dispatcher does not start (one line), instead of mailing dead links."""
    from lib.config import ConfigError, load_config
    from lib.retarget.message import Branding

    gcp = load_config("gcp", environ={})
    assert gcp.retarget.unsubscribe_url is None
    with pytest.raises(ConfigError, match="retarget.unsubscribe_url is not set"):
        Branding.from_config(gcp.retarget)
    deployed = load_config("gcp", environ={"SHOP__RETARGET__UNSUBSCRIBE_URL": "https://shop-dev-unsubscribe-x.a.run.app/unsubscribe"})
    assert Branding.from_config(deployed.retarget).unsubscribe_url.startswith("https://shop-dev-unsubscribe-")


@pytest.mark.integration  # the SMTP server (conftest's smtp fixture)
def test_a_session_abandoned_twice_in_one_batch_is_one_outbox_row_and_one_decision(store, smtp):
    """A session abandoned, resumed after the gap and abandoned again can expire twice in one
    micro-batch (a catch-up, seen in make chaos): one outbox row (the first expiry, as the MERGE keeps
    the first across batches) and, should two rows reach the table anyway, one decision and one email."""
    import json

    import pandas as pd

    from lib.retarget.outbox import outbox_rows
    from lib.retarget.store import OUTBOX

    first, second = outbox_row("twice", 1, 0), outbox_row("twice", 1, 50)
    pdf = pd.DataFrame([dict(second, outcome="abandoned", items_json=json.dumps(second["items"])),
                        dict(first, outcome="abandoned", items_json=json.dumps(first["items"]))])
    rows = outbox_rows(pdf, T0).to_pylist()
    assert [(r["user_session"], r["expired_at"]) for r in rows] == [("twice", first["expired_at"])]
    store.append(OUTBOX, pa.Table.from_pylist([second, first], schema=arrow_schema(OUTBOX)))  # both, by hand
    d = dispatcher(store, SmtpSender("127.0.0.1", smtp.port), cap_days=0)
    d.run_once()
    d.run_once()
    assert [r["user_session"] for r in store.read(DECISIONS).to_pylist()] == ["twice"]
    assert [m["X-Session-Id"] for m in smtp.messages()] == ["twice"]


@pytest.mark.parametrize("email", ["ann@example.com", "o'brien+tag@mail.example.org", "a@b", "refused.7@nowhere.invalid",
                                   "full@mailbox-full.test", "x" * 64 + "@example.com"])
def test_check_address_takes_what_a_server_decides_about(email):
    assert check_address(email) == email  # unchanged: .invalid/.test reach the server, which refuses or defers


@pytest.mark.parametrize("email", ["", "no-at-sign", "a b@example.com", "zoë@example.com", "a@zoë.example", "a..b@example.com",
                                   ".a@example.com", "a.@example.com", "a@-x.example", "a@" + "x" * 64 + ".example",
                                   '"q"@example.com', "a@[127.0.0.1]", "Ann <ann@example.com>", "a@localhost",
                                   "eve@example.com\r\nBcc: victim@example.org"])
def test_check_address_refuses_what_no_server_should_get(email):
    with pytest.raises(InvalidAddress, match="invalid email address"):
        check_address(email)
