"""Offer codes of the cart-recovery emails: the ``retarget/offers`` rows and what a check answers.

The dispatcher writes one row per code an email carries (``code``, ``user_id``, ``user_session``,
``issued_at``, ``expires_at``, ``status``) *before* the email's ``started`` attempt, so no code that
may have reached a customer is unknown to the shop. A code is the HMAC of the session id
(:func:`lib.retarget.message.offer_code`): a retry of the same session writes the same row again at
most (the reader takes them as one). ``lib/dashboard/offers.py`` serves the check
(``GET /api/offers/{code}``): ``valid`` / ``expired`` / ``unknown`` and the expiry, nothing personal.

Statuses: the dispatcher writes ``issued`` only. Redemption is not tracked (a purchase event does
not say which code was used); a row with any other status (e.g. appended by hand to withdraw a code)
makes the code not valid any more.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from lib.retarget.message import offer_code

ISSUED = "issued"
VALID, EXPIRED, UNKNOWN = "valid", "expired", "unknown"
CODE_PREFIX = "FREESHIP-"
# "FREESHIP-" + base32 of 10 HMAC bytes (80 bits): 16 characters of A-Z and 2-7, no padding
CODE_PATTERN = re.compile(r"FREESHIP-[A-Z2-7]{16}")
CODE_MAX_LENGTH = 64  # longer inputs are refused before anything else happens


def normalize_code(text: str) -> str | None:
    """The code as the emails print it (surrounding blanks dropped, upper case), or None when it
    cannot be an offer code at all (then no table needs to be read)."""
    if len(text) > CODE_MAX_LENGTH:
        return None
    code = text.strip().upper()
    return code if CODE_PATTERN.fullmatch(code) else None


def new_offer(key: bytes, cart: dict, now: datetime, valid_days: int) -> dict:
    """The ``retarget/offers`` row of the email for ``cart`` (an outbox row), issued at ``now``."""
    return {"code": offer_code(key, cart["user_session"]), "user_id": cart["user_id"],
            "user_session": cart["user_session"], "issued_at": now,
            "expires_at": now + timedelta(days=valid_days), "status": ISSUED}


def offer_status(rows: list[dict], now: datetime) -> tuple[str, datetime | None]:
    """(``valid`` | ``expired`` | ``unknown``, expiry) of one code from its rows (``expires_at``,
    ``status``; several when a retry wrote the row again). Valid until ``expires_at`` (exclusive)."""
    if not rows:
        return UNKNOWN, None
    expires = min(r["expires_at"] for r in rows)
    if now < expires and all(r["status"] == ISSUED for r in rows):
        return VALID, expires
    return EXPIRED, expires
