"""Unsubscribe links of the cart-recovery emails: the dashboard app verifies the signed token and
records the unsubscribe in ``retarget/unsubscribes`` (the dispatcher honours it from its next cycle).

Tokens are verified with every link-signing key (:func:`lib.retarget.secrets.signing_keys`: the newest
signs, all verify), so a key rotation does not break the links already mailed; a token that no key
verifies makes the handler re-read the keys (at most once a minute) before it says no, so the public
service learns a key added after it started. A token is good for ``retarget.unsubscribe_valid_days``
(180) from its issue time. The same token twice unsubscribes once (one row).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pyarrow as pa

from lib.retarget.message import EXPIRED, INVALID, VALID, check_unsubscribe_token
from lib.retarget.secrets import signing_keys
from lib.retarget.store import UNSUBSCRIBES, RetargetStore
from lib.schema import arrow_schema


class Outcome:
    """What the handler answers: true for a genuine, current token (the person is unsubscribed, now
    or already), false otherwise — ``status`` says why: ``valid``, ``expired`` (genuine but older than
    the validity: nothing recorded) or ``invalid`` (forged, tampered, unknown key, malformed). A page
    may show ``message`` for the false cases."""

    MESSAGES = {
        VALID: "You will not receive cart reminders or offers from us any more.",
        EXPIRED: "This unsubscribe link has expired. Please use the link in our latest email, or reply to it "
                 "and we will unsubscribe you.",
        INVALID: "This unsubscribe link is not valid. Please use the link in our email.",
    }

    __slots__ = ("status",)

    def __init__(self, status: str):
        self.status = status

    def __bool__(self) -> bool:
        return self.status == VALID

    @property
    def message(self) -> str:
        return self.MESSAGES[self.status]

    def __repr__(self) -> str:
        return f"Outcome({self.status!r})"


class KeyRing:
    """The verifying keys, re-read from ``load`` on demand (at most every ``min_interval`` seconds)."""

    def __init__(self, load: Callable[[], Sequence[bytes]], min_interval: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic):
        self._load, self.min_interval, self._monotonic = load, min_interval, monotonic
        self.keys = list(load())
        self._loaded = monotonic()
        self._lock = threading.Lock()

    def reload(self) -> bool:
        """Re-read the keys unless that happened less than ``min_interval`` ago; True when the list changed."""
        with self._lock:
            if self._monotonic() - self._loaded < self.min_interval:
                return False
            self._loaded = self._monotonic()
            try:
                keys = list(self._load())
            except Exception as exc:  # noqa: BLE001 — keep the keys we have; say why (no key material)
                print(f"[unsubscribe] could not re-read the signing keys: {type(exc).__name__}", file=sys.stderr)
                return False
            changed = keys != self.keys
            self.keys = keys
            return changed


def make_handler(store: RetargetStore, key: bytes | Sequence[bytes] | KeyRing, clock=lambda: datetime.now(UTC),
                 valid_days: float | None = None) -> Callable[[str], Outcome]:
    """``handler(token) -> Outcome`` (truthy when the token is genuine and current: the user is
    unsubscribed, now or already; falsy for an expired, forged or malformed token). ``key``: one key,
    the list (any verifies), or a :class:`KeyRing` (re-read when no key verifies a token).
    ``valid_days``: how long a token works from its issue time (None: no expiry; the services pass
    ``retarget.unsubscribe_valid_days``, :func:`handler_from_config`)."""
    ring = key if isinstance(key, KeyRing) else None
    # the fixed keys (unused with a ring)
    keys: list[bytes] = [] if isinstance(key, KeyRing) else [key] if isinstance(key, bytes) else list(key)
    lock = threading.Lock()  # one process: the same token twice at once still makes one row

    def handle(token: str) -> Outcome:
        check = check_unsubscribe_token(ring.keys if ring else keys, token, now=clock(), valid_days=valid_days)
        if check.status == INVALID and ring is not None and ring.reload():
            check = check_unsubscribe_token(ring.keys, token, now=clock(), valid_days=valid_days)
        if check.status != VALID:
            return Outcome(check.status)
        with lock:
            known = store.read(UNSUBSCRIBES, ["user_id"]).column(0).to_pylist()
            if check.user_id not in known:
                store.append(UNSUBSCRIBES, pa.Table.from_pylist(
                    [{"user_id": check.user_id, "email": check.email, "unsubscribed_at": clock(),
                      "source": "email_link"}], schema=arrow_schema(UNSUBSCRIBES)))
        return Outcome(VALID)

    return handle


def handler_from_config(cfg) -> Callable[[str], Outcome]:
    return make_handler(RetargetStore(cfg.lake.root), KeyRing(lambda: signing_keys(cfg)),
                        valid_days=cfg.retarget.unsubscribe_valid_days)
