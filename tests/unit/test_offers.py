"""Offer codes the shop can check: the dispatcher records every code an email may have carried in
``retarget/offers`` before the send (once per session, also across retries and crashes), and
``GET /api/offers/{code}`` answers valid / expired / unknown without anything personal.

The dispatcher runs here with an in-memory sender (no SMTP server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from lib.dashboard import create_app
from lib.dashboard.app import create_unsubscribe_app
from lib.dashboard.offers import RETARGET_OFFERS
from lib.retarget import rules as R
from lib.retarget.dispatcher import Dispatcher
from lib.retarget.message import Branding, offer_code
from lib.retarget.offers import normalize_code, offer_status
from lib.retarget.senders import TransientSendError
from lib.retarget.store import ATTEMPTS, DECISIONS, OFFERS, SUBSCRIBERS, UNSUBSCRIBES, RetargetStore
from lib.schema import arrow_schema
from tests import helpers
from tests.helpers import add_outbox

KEY = b"offers-test-key-0123456789"
BRAND = Branding("https://shop.example", "http://127.0.0.1:8050/unsubscribe", "offers@shop.example", "Shop", 7)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ITEMS = [{"product_id": 5809910, "qty": 2, "price": 5.25, "brand": "grattol", "category_code": None, "category_id": 1}]


class Crash(BaseException):
    """The process dies mid-send (not an Exception: nothing in the dispatcher catches it)."""


class MemorySender:
    """Keeps what it 'sends'; ``fail`` transient failures first; ``during_send`` runs inside each send."""

    name = "memory"

    def __init__(self, fail: int = 0, during_send=None):
        self.sent, self.fail, self.during_send = [], fail, during_send

    def send(self, msg) -> str:
        if self.during_send:
            self.during_send(msg)
        if self.fail:
            self.fail -= 1
            raise TransientSendError("mail server down")
        self.sent.append(msg)
        return msg.header("Message-ID")

    def close(self) -> None:
        pass


class Clock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def outbox_row(session: str, user: int, minutes: float) -> dict:
    return helpers.outbox_row(session, user, T0 + timedelta(minutes=minutes), items=ITEMS, cart_value=10.5, n_units=2)


@pytest.fixture
def store(tmp_path):
    s = RetargetStore(str(tmp_path / "lake"))
    subs = [(1, "one@example.com", True), (2, "two@example.com", False), (3, "three@example.com", True),
            (4, "four@example.com", True), (6, "bad address", True)]
    s.append(SUBSCRIBERS, pa.Table.from_pylist(
        [{"user_id": u, "email": e, "consent": c, "first_name": f"U{u}", "locale": "en_US", "loaded_at": T0}
         for u, e, c in subs], schema=arrow_schema(SUBSCRIBERS)))
    s.append(UNSUBSCRIBES, pa.Table.from_pylist([{"user_id": 3, "email": "three@example.com", "unsubscribed_at": T0,
                                                  "source": "link"}], schema=arrow_schema(UNSUBSCRIBES)))
    return s


def dispatcher(store, sender, clock=None, **rules) -> Dispatcher:
    return Dispatcher(store, sender, R.Rules(**({"control_share": 0} | rules)), BRAND, KEY, retry_initial=0.01,
                      retry_max=0.05, clock=clock or Clock(T0))


def offers(store) -> list[dict]:
    return sorted(store.read(OFFERS).to_pylist(), key=lambda r: (r["user_session"], r["issued_at"]))


def decisions(store) -> dict[str, dict]:
    return {r["user_session"]: r for r in store.read(DECISIONS).to_pylist()}


# --- the table: written by the dispatcher --------------------------------------------------------------------
def test_one_offer_per_mailed_cart_none_for_the_others(store):
    add_outbox(store, [outbox_row("a", 1, 0), outbox_row("b", 2, 1), outbox_row("c", 3, 2), outbox_row("d", 9, 3),
                       outbox_row("e", 4, 4), outbox_row("bad", 6, 5)])
    sender = MemorySender()
    dispatcher(store, sender).run_once()
    got = decisions(store)
    assert {s: d["decision"] for s, d in got.items()} == {
        "a": "sent", "b": "no_consent", "c": "unsubscribed", "d": "not_subscriber", "e": "sent", "bad": "failed"}
    rows = offers(store)
    # only the mailed carts; the invalid address was refused before any send, so it got no code
    assert [(r["user_session"], r["user_id"], r["status"]) for r in rows] == [("a", 1, "issued"), ("e", 4, "issued")]
    for r in rows:
        assert r["code"] == offer_code(KEY, r["user_session"]) == got[r["user_session"]]["offer_code"]
        assert r["issued_at"] == T0 and r["expires_at"] == T0 + timedelta(days=7)
        assert got[r["user_session"]]["offer_expires_at"] == r["expires_at"]
    mailed = {m.header("X-Session-Id"): m for m in sender.sent}
    assert rows[0]["code"] in mailed["a"].text and "08 March 2026" in mailed["a"].text
    # nothing new on the next cycle or after a restart
    dispatcher(store, sender).run_once()
    assert offers(store) == rows and len(sender.sent) == 2


def test_control_group_gets_no_offer(store):
    add_outbox(store, [outbox_row("a", 1, 0), outbox_row("e", 4, 1)])
    sender = MemorySender()
    dispatcher(store, sender, control_share=1.0).run_once()
    assert {s: d["decision"] for s, d in decisions(store).items()} == {"a": "control", "e": "control"}
    assert offers(store) == [] and sender.sent == []


def test_the_offer_row_is_committed_before_the_email_leaves(store):
    seen = []

    def check(msg):  # inside the send: the code in this email must already be in the lake
        sid = msg.header("X-Session-Id")
        committed = {r["user_session"]: r["code"] for r in store.read(OFFERS).to_pylist()}
        started = {r["user_session"] for r in store.read(ATTEMPTS).to_pylist() if r["status"] == "started"}
        seen.append((sid, committed.get(sid), sid in started))

    add_outbox(store, [outbox_row("a", 1, 0), outbox_row("e", 4, 1)])
    dispatcher(store, MemorySender(during_send=check)).run_once()
    assert seen == [("a", offer_code(KEY, "a"), True), ("e", offer_code(KEY, "e"), True)]


def test_a_crash_mid_send_leaves_the_code_known_and_uncertain(store):
    def die(_msg):
        raise Crash

    add_outbox(store, [outbox_row("a", 1, 0)])
    with pytest.raises(Crash):
        dispatcher(store, MemorySender(during_send=die)).run_once()
    [row] = offers(store)
    assert row["code"] == offer_code(KEY, "a")
    # restart: this sender cannot tell whether it arrived (no reconcile): never resent, and the decision
    # names the code the lost email may have carried
    sender = MemorySender()
    dispatcher(store, sender, Clock(T0 + timedelta(minutes=5))).run_once()
    d = decisions(store)["a"]
    assert d["decision"] == "uncertain" and d["offer_code"] == row["code"] and d["offer_expires_at"] == row["expires_at"]
    assert sender.sent == [] and offers(store) == [row]


def test_retries_keep_one_offer_with_its_first_expiry(store):
    clock = Clock(T0)
    sender = MemorySender(fail=2)
    add_outbox(store, [outbox_row("a", 1, 0)])
    d = dispatcher(store, sender, clock)
    for step in range(3):
        clock.t = T0 + timedelta(minutes=step)
        d.next_try = 0
        d.run_once()
    assert decisions(store)["a"]["decision"] == "sent" and len(sender.sent) == 1
    [row] = offers(store)
    assert row["issued_at"] == T0 and row["expires_at"] == T0 + timedelta(days=7)
    assert decisions(store)["a"]["offer_expires_at"] == row["expires_at"]
    assert "08 March 2026" in sender.sent[0].text


def test_a_crash_between_the_offer_and_the_attempt_resends_with_the_same_offer(store, monkeypatch):
    add_outbox(store, [outbox_row("a", 1, 0)])
    d = dispatcher(store, MemorySender())
    real_append = store.append

    def append(name, data):
        if name == ATTEMPTS:
            raise Crash
        real_append(name, data)

    monkeypatch.setattr(store, "append", append)
    with pytest.raises(Crash):
        d.run_once()
    monkeypatch.setattr(store, "append", real_append)
    assert store.read(ATTEMPTS).num_rows == 0 and len(offers(store)) == 1
    # restart a day later: no attempt started, so the email goes out — with the code and expiry already recorded
    sender = MemorySender()
    dispatcher(store, sender, Clock(T0 + timedelta(days=1))).run_once()
    assert decisions(store)["a"]["decision"] == "sent" and len(sender.sent) == 1
    [row] = offers(store)
    assert row["issued_at"] == T0 and decisions(store)["a"]["offer_expires_at"] == T0 + timedelta(days=7)
    assert "08 March 2026" in sender.sent[0].text


# --- the check ------------------------------------------------------------------------------------------------
CODE_A, CODE_B = offer_code(KEY, "sess-a"), offer_code(KEY, "sess-b")
NOW = T0 + timedelta(days=3)


def _offer(code: str, session: str, issued: datetime, *, days: int = 7, status: str = "issued", user: int = 4242):
    return {"code": code, "user_id": user, "user_session": session, "issued_at": issued,
            "expires_at": issued + timedelta(days=days), "status": status}


@pytest.fixture
def lake(tmp_path):
    store = RetargetStore(str(tmp_path / "lake"))
    store.append(OFFERS, pa.Table.from_pylist([_offer(CODE_A, "sess-a", T0)], schema=arrow_schema(OFFERS)))
    # a second commit (another file): expired by NOW; written twice, as a retried append may
    for _ in range(2):
        store.append(OFFERS, pa.Table.from_pylist([_offer(CODE_B, "sess-b", T0, days=1)], schema=arrow_schema(OFFERS)))
    return tmp_path / "lake"


def _apps(lake_root: str):
    clock = Clock(NOW)
    return {"dashboard": TestClient(create_app(lake_root, clock=clock)),
            "public": TestClient(create_unsubscribe_app(lambda _token: False, lake_root=lake_root, clock=clock))}


@pytest.mark.parametrize("app", ["dashboard", "public"])
def test_check_answers_valid_expired_unknown_and_nothing_personal(lake, app):
    client = _apps(str(lake))[app]
    valid = client.get(f"/api/offers/{CODE_A}")
    assert valid.status_code == 200 and valid.headers["cache-control"] == "no-store"
    assert valid.json() == {"code": CODE_A, "status": "valid", "expires_at": "2026-03-08T12:00:00Z"}
    assert client.get(f"/api/offers/{CODE_B}").json() == {"code": CODE_B, "status": "expired",
                                                          "expires_at": "2026-03-02T12:00:00Z"}
    unknown = offer_code(KEY, "never-mailed")
    assert client.get(f"/api/offers/{unknown}").json() == {"code": unknown, "status": "unknown", "expires_at": None}
    # what a customer types: blanks and lower case are fine
    assert client.get(f"/api/offers/%20{CODE_A.lower()}%20").json()["status"] == "valid"
    for code in (CODE_A, CODE_B):
        body = client.get(f"/api/offers/{code}").text
        assert "4242" not in body and "sess-" not in body and "user" not in body and "@" not in body


@pytest.mark.parametrize("app", ["dashboard", "public"])
@pytest.mark.parametrize("bad", ["FREESHIP-", "FREESHIP-AAAAAAAAAAAAAAA1", CODE_A + "A", "SHIP-AAAAAAAAAAAAAAAA",
                                 "' OR 1=1 --", "x" * 65, "FREESHIP-" + "A" * 5000])
def test_malformed_codes_are_refused_without_reading_the_lake(lake, app, bad):
    client = _apps(str(lake))[app]
    reader = client.app.state.reader
    r = client.get(f"/api/offers/{bad}")
    assert r.status_code == 422 and "detail" in r.json()
    assert reader.scans == 0 and reader.version(RETARGET_OFFERS) is not None  # there, and not read


@pytest.mark.parametrize("app", ["dashboard", "public"])
def test_no_offers_table_yet_means_unknown(tmp_path, app):
    client = _apps(str(tmp_path / "empty-lake"))[app]
    r = client.get(f"/api/offers/{CODE_A}")
    assert r.status_code == 200 and r.json() == {"code": CODE_A, "status": "unknown", "expires_at": None}


def test_the_check_is_in_the_dashboards_openapi_and_the_public_app_stays_small(lake):
    apps = _apps(str(lake))
    spec = apps["dashboard"].get("/openapi.json").json()
    op = spec["paths"]["/api/offers/{code}"]["get"]
    schema = spec["components"]["schemas"]["OfferCheck"]
    assert set(schema["properties"]) == {"code", "status", "expires_at"}
    assert set(op["responses"]) >= {"200", "422", "503"}
    public = apps["public"]
    assert public.get("/openapi.json").status_code == 404 and public.get("/api/health").status_code == 404
    assert public.post(f"/api/offers/{CODE_A}").status_code == 405  # read-only
    # without a lake the public app has no check at all (as before)
    bare = TestClient(create_unsubscribe_app(lambda _token: False))
    assert bare.get(f"/api/offers/{CODE_A}").status_code == 404


def test_withdrawn_codes_and_the_edges_of_validity():
    exp = T0 + timedelta(days=7)
    assert offer_status([], T0) == ("unknown", None)
    assert offer_status([{"expires_at": exp, "status": "issued"}], exp - timedelta(microseconds=1)) == ("valid", exp)
    assert offer_status([{"expires_at": exp, "status": "issued"}], exp) == ("expired", exp)
    assert offer_status([{"expires_at": exp, "status": "issued"}, {"expires_at": exp, "status": "withdrawn"}],
                        T0) == ("expired", exp)
    assert normalize_code(f"  {CODE_A.lower()}\t") == CODE_A and normalize_code(CODE_A[:-1]) is None
