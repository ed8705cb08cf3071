"""Issue #14.3: link-signing keys rotate without breaking the links already mailed. The newest key
signs, every key of the list verifies; tokens carry their issue time and expire after
``retarget.unsubscribe_valid_days``; forged, tampered and unknown-key tokens are refused; the same
token twice unsubscribes once; offer codes mailed under an older key stay valid; the keys come from
the environment, the local key file or a Secret Manager version holding the list."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeSerializer

from jobs.ops.signing_keys import main as rotate_cli
from lib.config import ConfigError, load_config
from lib.retarget import rules as R
from lib.retarget import secrets as S
from lib.retarget.dispatcher import Dispatcher
from lib.retarget.message import (
    EXPIRED,
    INVALID,
    LEGACY_UNSUBSCRIBE_SALT,
    VALID,
    Branding,
    check_unsubscribe_token,
    offer_code,
    render,
    unsubscribe_token,
)
from lib.retarget.offers import VALID as OFFER_VALID
from lib.retarget.offers import offer_status
from lib.retarget.store import ATTEMPTS, DECISIONS, OFFERS, SUBSCRIBERS, UNSUBSCRIBES, RetargetStore
from lib.retarget.unsubscribe import KeyRing, handler_from_config, make_handler
from lib.schema import arrow_schema
from tests import helpers
from tests.fakes.secret_manager_api import FakeSecretManager

K1, K2, K3 = b"first-key-0123456789abcdef", b"second-key-0123456789abcdef", b"third-key-0123456789abcdef"
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BRAND = Branding("https://shop.example", "http://testserver/unsubscribe", "offers@shop.example", "Shop", 7)
SUB = R.Subscriber(42, "kim@example.com", True, "Kim", None)
CART = {"user_session": "sess-a", "user_id": 42, "cart_value": 5.0,
        "items": [{"product_id": 1, "qty": 1, "price": 5.0, "brand": "x", "category_code": None, "category_id": 1}]}


def token_of(rendered) -> str:
    return re.search(r"token=([\w.\-]+)>", rendered.message["List-Unsubscribe"]).group(1)


def rows(store) -> list[tuple[int, str]]:
    return [(r["user_id"], r["email"]) for r in store.read(UNSUBSCRIBES).to_pylist()]


# --- rotation --------------------------------------------------------------------------------------------
def test_old_links_still_work_after_a_rotation_and_new_ones_are_signed_with_the_new_key(tmp_path):
    old = token_of(render(CART, SUB, key=[K1], brand=BRAND, now=T0))  # mailed before the rotation
    new = token_of(render(CART, SUB, key=[K1, K2], brand=BRAND, now=T0))  # after it: K2 signs
    assert check_unsubscribe_token([K2], new).status == VALID and check_unsubscribe_token([K1], new).status == INVALID
    assert check_unsubscribe_token([K1], old).status == VALID and check_unsubscribe_token([K2], old).status == INVALID
    store = RetargetStore(str(tmp_path))
    handle = make_handler(store, [K1, K2], clock=lambda: T0 + timedelta(days=1), valid_days=180)
    assert handle(old) and handle(new)
    assert rows(store) == [(42, "kim@example.com")]
    # K1 retired (its Secret Manager version disabled): its links stop working, the new ones do not
    retired = make_handler(RetargetStore(str(tmp_path / "other")), [K2], clock=lambda: T0, valid_days=180)
    assert not retired(old) and retired(new)


def test_the_public_service_learns_a_key_added_after_it_started(tmp_path):
    keys, loads, now = [[K1]], [], [0.0]

    def load():
        loads.append(1)
        return keys[0]

    ring = KeyRing(load, min_interval=60, monotonic=lambda: now[0])
    handle = make_handler(RetargetStore(str(tmp_path)), ring, clock=lambda: T0, valid_days=180)
    keys[0] = [K1, K2]  # rotation: the dispatcher restarted with K2 first
    new = unsubscribe_token([K1, K2], 42, "kim@example.com", T0)
    now[0] = 61.0
    assert handle(new) and ring.keys == [K1, K2] and len(loads) == 2
    # forged tokens do not make it re-read the keys more than once a minute
    for _ in range(20):
        assert not handle(unsubscribe_token([K3], 42, "kim@example.com", T0))
    assert len(loads) == 2
    now[0] = 130.0
    assert not handle(unsubscribe_token([K3], 42, "kim@example.com", T0)) and len(loads) == 3


# --- expiry -------------------------------------------------------------------------------------------
def test_links_expire_after_their_validity_with_a_clear_answer(tmp_path):
    store = RetargetStore(str(tmp_path))
    token = unsubscribe_token([K1], 42, "kim@example.com", T0)
    late = make_handler(store, [K1], clock=lambda: T0 + timedelta(days=180, seconds=1), valid_days=180)
    outcome = late(token)
    assert not outcome and outcome.status == EXPIRED and "expired" in outcome.message
    assert rows(store) == []  # nothing recorded for an expired link
    in_time = make_handler(store, [K1], clock=lambda: T0 + timedelta(days=179, hours=23), valid_days=180)
    assert in_time(token) and rows(store) == [(42, "kim@example.com")]
    assert check_unsubscribe_token([K1], token, now=T0 + timedelta(days=400), valid_days=180).status == EXPIRED
    assert check_unsubscribe_token([K1], token, now=T0 + timedelta(days=400)).status == VALID  # no validity given


def test_an_expired_link_is_a_400_page_not_a_server_error(tmp_path):
    from lib.dashboard.app import create_unsubscribe_app

    handle = make_handler(RetargetStore(str(tmp_path)), [K1], clock=lambda: T0 + timedelta(days=365), valid_days=180)
    client = TestClient(create_unsubscribe_app(handle, lake_root=str(tmp_path)))
    r = client.post("/unsubscribe", data={"token": unsubscribe_token([K1], 42, "kim@example.com", T0)})
    # the page says what happened (expired, not forged), and nothing 5xx
    assert r.status_code == 400 and "Link expired" in r.text and "has expired" in r.text


def test_a_failing_unsubscribe_store_logs_no_address(tmp_path, caplog):
    from lib.dashboard.app import create_unsubscribe_app

    def broken(token):
        raise OSError("cannot append row for kim.lee@example.com: disk full")

    client = TestClient(create_unsubscribe_app(broken, lake_root=str(tmp_path)))
    with caplog.at_level("WARNING", logger="lib.dashboard.app"):
        r = client.post("/unsubscribe", data={"token": "x" * 40})
    assert r.status_code == 503
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "disk full" in logged and "kim.lee@example.com" not in logged and "<email:" in logged


def test_config_validity_is_at_least_30_days_and_defaults_to_180():
    cfg = load_config("local", environ={})
    assert cfg.retarget.unsubscribe_valid_days == 180
    with pytest.raises(ConfigError):
        load_config("local", environ={"SHOP__RETARGET__UNSUBSCRIBE_VALID_DAYS": "7"})


# --- forgery -------------------------------------------------------------------------------------------
def test_forged_tampered_and_unknown_key_tokens_are_refused(tmp_path):
    store = RetargetStore(str(tmp_path))
    handle = make_handler(store, [K1, K2], clock=lambda: T0, valid_days=180)
    good = unsubscribe_token([K1, K2], 42, "kim@example.com", T0)
    payload, _, sig = good.rpartition(".")
    other_user = URLSafeSerializer([K3], salt="unsubscribe-v2").dumps({"u": 7, "e": "x@example.com", "t": 0})
    for bad in (
        good[:-2] + ("aa" if not good.endswith("aa") else "bb"),  # tampered signature
        other_user.rpartition(".")[0] + "." + sig,  # another payload with a genuine signature
        unsubscribe_token([K3], 42, "kim@example.com", T0),  # signed with a key we do not have
        URLSafeSerializer([K1], salt="something-else").dumps({"u": 42, "e": "kim@example.com"}),  # other purpose
        "forged.token", "", "x" * 5000, "<script>",
    ):
        outcome = handle(bad)
        assert not outcome and outcome.status == INVALID, bad[:60]
    assert rows(store) == []


def test_links_mailed_before_tokens_carried_a_time_still_work_while_their_key_is_listed(tmp_path):
    legacy = URLSafeSerializer(K1, salt=LEGACY_UNSUBSCRIBE_SALT).dumps({"u": 42, "e": "kim@example.com"})
    store = RetargetStore(str(tmp_path))
    assert make_handler(store, [K1, K2], clock=lambda: T0 + timedelta(days=3650), valid_days=180)(legacy)
    assert rows(store) == [(42, "kim@example.com")]
    assert not make_handler(store, [K2], clock=lambda: T0, valid_days=180)(legacy)


# --- replay -------------------------------------------------------------------------------------------
def test_the_same_token_twice_unsubscribes_once(tmp_path):
    store = RetargetStore(str(tmp_path))
    handle = make_handler(store, [K1], clock=lambda: T0, valid_days=180)
    token = unsubscribe_token([K1], 42, "kim@example.com", T0)
    assert handle(token) and handle(token) and handle(token)
    assert rows(store) == [(42, "kim@example.com")]


# --- offer codes ---------------------------------------------------------------------------------------
def test_offer_codes_mailed_under_an_old_key_stay_valid_and_a_retry_after_rotation_keeps_its_code(tmp_path):
    from lib.dashboard.app import create_app

    store = RetargetStore(str(tmp_path))
    store.append(SUBSCRIBERS, pa.Table.from_pylist([{"user_id": 42, "email": "kim@example.com", "consent": True,
                                                     "first_name": "Kim", "locale": None, "loaded_at": T0}],
                                                   schema=arrow_schema(SUBSCRIBERS)))
    helpers.add_outbox(store, [helpers.outbox_row("sess-a", 42, T0, items=CART["items"], cart_value=5.0, n_units=1)])
    # a crash after the offer row was committed under K1 and before the send ("started" not written)
    old_code = offer_code(K1, "sess-a")
    store.append(OFFERS, pa.Table.from_pylist([{"code": old_code, "user_id": 42, "user_session": "sess-a",
                                                "issued_at": T0, "expires_at": T0 + timedelta(days=7),
                                                "status": "issued"}], schema=arrow_schema(OFFERS)))
    assert store.read(ATTEMPTS).num_rows == 0
    sender = helpers.CapturingSender()
    Dispatcher(store, sender, R.Rules(control_share=0), BRAND, K2, clock=lambda: T0 + timedelta(minutes=1)).run_once()
    [msg] = sender.sent
    assert old_code in msg.text and offer_code(K2, "sess-a") not in msg.text
    [d] = store.read(DECISIONS).to_pylist()
    assert d["decision"] == "sent" and d["offer_code"] == old_code
    assert offer_status(store.read(OFFERS).to_pylist(), T0 + timedelta(days=1))[0] == OFFER_VALID
    # the checkout's check after the rotation: a table lookup, no key involved
    client = TestClient(create_app(str(tmp_path)))
    assert client.get(f"/api/offers/{old_code}").json()["status"] in ("valid", "expired")


# --- where the keys come from ------------------------------------------------------------------------------
def _cfg(tmp_path, env="local"):
    return load_config(env, environ={"SHOP__PATHS__RUN_DIR": str(tmp_path / "run"),
                                     "SHOP__LAKE__ROOT": str(tmp_path / "lake")})


def test_keys_from_the_environment_newest_last(tmp_path):
    cfg = _cfg(tmp_path)
    env = {"UNSUBSCRIBE_SIGNING_KEY": f"{K1.decode()},{K2.decode()}"}
    assert S.signing_keys(cfg, env) == [K1, K2] and S.signing_key(cfg, env) == K2
    assert S.signing_keys(cfg, {"UNSUBSCRIBE_SIGNING_KEY": K1.decode()}) == [K1]
    assert S.signing_keys(cfg, {"UNSUBSCRIBE_SIGNING_KEY": json.dumps([K2.decode(), K3.decode()])}) == [K2, K3]
    with pytest.raises(ConfigError, match="at least 16"):
        S.signing_keys(cfg, {"UNSUBSCRIBE_SIGNING_KEY": f"{K1.decode()},short"})


def test_local_key_file_rotates_and_keeps_the_old_key(tmp_path):
    cfg = _cfg(tmp_path)
    first = S.signing_keys(cfg, {})
    assert len(first) == 1
    (tmp_path / "run" / "signing.key").write_text(first[0].decode())  # a file of the one-key era (no newline)
    S.rotate_local_key(cfg)
    keys = S.signing_keys(cfg, {})
    assert len(keys) == 2 and keys[0] == first[0] and S.signing_key(cfg, {}) == keys[1] != first[0]
    assert (tmp_path / "run" / "signing.key").stat().st_mode & 0o777 == 0o600


def test_rotate_cli_appends_to_the_configured_key_file(tmp_path, monkeypatch, capsys):
    for k in ("UNSUBSCRIBE_SIGNING_KEY", "UNSUBSCRIBE_SIGNING_KEY_SECRET", "SHOP_ENV"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SHOP__PATHS__RUN_DIR", str(tmp_path / "run"))
    assert rotate_cli(["rotate"]) == 0 and rotate_cli(["rotate"]) == 0
    assert len((tmp_path / "run" / "signing.key").read_text().split()) == 3 and "3 keys" in capsys.readouterr().out
    monkeypatch.setenv("UNSUBSCRIBE_SIGNING_KEY", K1.decode())
    assert rotate_cli(["rotate"]) == 2  # keys from the environment are not the file's to change


@pytest.fixture
def secret_manager():
    """Secret Manager's REST API for project p (tests/fakes/secret_manager_api.py), and a real client of it."""
    with FakeSecretManager("p", s=[], fresh=[]) as fake:
        yield fake, S.secret_manager_client(fake.url)


def test_keys_from_a_secret_manager_version_holding_the_list(tmp_path, secret_manager):
    sm, client = secret_manager
    cfg = _cfg(tmp_path, "gcp")
    env = {"UNSUBSCRIBE_SIGNING_KEY_SECRET": "projects/p/secrets/s/versions/latest"}
    sm.secrets["s"].append(K1)  # the one-key payload of the first deployments
    assert S.signing_keys(cfg, env, client=client) == [K1]
    sm.secrets["s"].append(json.dumps([K1.decode(), K2.decode()]).encode())
    assert S.signing_keys(cfg, env, client=client) == [K1, K2]
    with pytest.raises(ConfigError, match="UNSUBSCRIBE_SIGNING_KEY"):
        S.signing_keys(cfg, {})  # on Google Cloud there is no local fallback
    sm.secrets["s"].append(b'["unterminated')
    with pytest.raises(ConfigError, match="JSON"):
        S.signing_keys(cfg, env, client=client)
    with pytest.raises(ConfigError, match=r"cannot read secret projects/p/secrets/s/versions/9: HTTP 404"):
        S.signing_keys(cfg, {"UNSUBSCRIBE_SIGNING_KEY_SECRET": "projects/p/secrets/s/versions/9"}, client=client)


def test_rotating_the_secret_adds_a_version_with_the_old_keys_and_a_new_one(tmp_path, secret_manager):
    sm, client = secret_manager
    cfg = _cfg(tmp_path, "gcp")
    env = {"UNSUBSCRIBE_SIGNING_KEY_SECRET": "projects/p/secrets/s/versions/latest"}
    sm.secrets["s"].append(K1)
    assert S.rotate_secret("projects/p/secrets/s", limit=3, client=client) == "projects/p/secrets/s/versions/2"
    keys = S.signing_keys(cfg, env, client=client)
    assert keys[0] == K1 and len(keys) == 2 and keys[-1] != K1  # the new key signs, K1 still verifies
    old_link = unsubscribe_token([K1], 42, "kim@example.com", T0)
    assert check_unsubscribe_token(keys, old_link).status == VALID
    for _ in range(3):
        S.rotate_secret("projects/p/secrets/s", limit=3, client=client)
    assert len(json.loads(sm.versions("s")[-1])) == 3 and K1.decode() not in sm.versions("s")[-1]  # the oldest dropped
    S.rotate_secret("projects/p/secrets/s", limit=3, only_new=True, client=client)  # after a leak
    assert len(json.loads(sm.versions("s")[-1])) == 1
    with pytest.raises(ConfigError):
        S.rotate_secret("not/a/secret", limit=3, client=client)
    # a secret Terraform just created: no version yet
    assert S.rotate_secret("projects/p/secrets/fresh", limit=3, client=client) == "projects/p/secrets/fresh/versions/1"
    assert len(json.loads(sm.versions("fresh")[0])) == 1
    with pytest.raises(ConfigError, match=r"cannot add a version to projects/q/secrets/s: HTTP 403"):
        S.rotate_secret("projects/q/secrets/s", limit=3, only_new=True, client=client)  # another project


def test_handler_from_config_verifies_with_every_configured_key_and_expires(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSUBSCRIBE_SIGNING_KEY", f"{K1.decode()},{K2.decode()}")
    cfg = _cfg(tmp_path)
    handle = handler_from_config(cfg)
    now = datetime.now(UTC)
    assert handle(unsubscribe_token([K1], 42, "kim@example.com", now))
    assert handle(unsubscribe_token([K2], 43, "lee@example.com", now))
    assert handle(unsubscribe_token([K1], 44, "old@example.com", now - timedelta(days=181))).status == EXPIRED
    assert sorted(rows(RetargetStore(cfg.lake.root))) == [(42, "kim@example.com"), (43, "lee@example.com")]
