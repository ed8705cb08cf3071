"""The business rules of the cart-recovery email, one decision per abandoned cart.

Order (the first that applies wins): ``not_subscriber``, ``no_consent``, ``unsubscribed``,
``purchased_since``, ``capped``, ``control``, else ``send``. The frequency cap counts earlier
offers *and* control decisions, so both arms of the experiment see the same cap; it is measured in
event time (the carts' expiry times), so a replay decides exactly as the live run did.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

NOT_SUBSCRIBER = "not_subscriber"
NO_CONSENT = "no_consent"
UNSUBSCRIBED = "unsubscribed"
PURCHASED_SINCE = "purchased_since"
CAPPED = "capped"
CONTROL = "control"
SEND = "send"
# outcomes of a send
SENT = "sent"
FAILED = "failed"  # permanently rejected by the mail provider
# a send whose outcome was not seen, and the receiving side could not tell (``reconcile``): not retried
UNCERTAIN = "uncertain"
STALE = "stale"  # not sent within retarget.stale_after_hours of the cart's expiry (an outage): never sent
DECISIONS = (NOT_SUBSCRIBER, NO_CONSENT, UNSUBSCRIBED, PURCHASED_SINCE, CAPPED, CONTROL, SENT, FAILED, UNCERTAIN,
             STALE)
OFFERED = (SEND, SENT, CONTROL, UNCERTAIN, STALE)  # what counts for the frequency cap


@dataclass(frozen=True)
class Rules:
    require_consent: bool = True
    suppress_purchased: bool = True
    cap_days: float = 7.0
    control_share: float = 0.10
    control_salt: str = "control-v1"

    @classmethod
    def from_config(cls, rc) -> Rules:
        return cls(rc.require_consent, rc.suppress_purchased, rc.cap_days, rc.control_share, rc.control_salt)


@dataclass(frozen=True)
class Subscriber:
    user_id: int
    email: str
    consent: bool
    first_name: str | None
    locale: str | None


def in_control(user_id: int, share: float, salt: str) -> bool:
    """Deterministic per user: the same users are in the control group on every run and machine."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def decide(*, user_id: int, expired_at: datetime, last_cart_at: datetime | None,
           user_purchased_at: datetime | None, subscriber: Subscriber | None, unsubscribed: bool,
           last_offer_at: datetime | None, rules: Rules) -> str:
    if subscriber is None:
        return NOT_SUBSCRIBER
    if rules.require_consent and not subscriber.consent:
        return NO_CONSENT
    if unsubscribed:
        return UNSUBSCRIBED
    if (rules.suppress_purchased and user_purchased_at is not None
            and (last_cart_at is None or user_purchased_at >= last_cart_at)):
        return PURCHASED_SINCE
    if rules.cap_days > 0 and last_offer_at is not None and expired_at - last_offer_at < timedelta(days=rules.cap_days):
        return CAPPED
    if in_control(user_id, rules.control_share, rules.control_salt):
        return CONTROL
    return SEND
