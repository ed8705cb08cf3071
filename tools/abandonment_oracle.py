"""The batch oracle for abandoned-cart emails: which sessions must get an email, computed from the
published events alone, written independently of lib.sessions / lib.retarget (plain Python, no Spark).

Semantics (DESIGN.md decision 3, issue "Abandoned-cart retargeting"):
* an event counts when it passes the rule table (re-stated here for CSV/wire values);
* a session's events, in time order, split where two consecutive events are more than the gap apart;
  each part with a cart action ends at its last event + gap (the expiry);
* a part is abandoned when its cart (cart +1, remove -1 not below 0, purchase clears the product;
  exact duplicate events once; ties ordered add < remove < purchase) is not empty and no purchase in
  it happened at/after its last add; per session id only the first abandoned part is mailed about;
* rules in order of expiry: subscriber, consent, purchase by the user after the last add and up to the
  expiry, at most one offer (or control) per user per cap window (by expiry time), control group
  (sha256("<salt>:<user_id>")[:8] / 2**64 < share), else send.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

TYPES = {"view", "cart", "remove_from_cart", "purchase"}
RANK = {"cart": 0, "remove_from_cart": 1, "purchase": 2}


def _int(v) -> int | None:
    try:
        if v is None or isinstance(v, bool) or (isinstance(v, str) and not v.strip()):
            return None
        f = float(v)
        return int(f) if f.is_integer() else None
    except (TypeError, ValueError):
        return None


def _time(v) -> datetime | None:
    if not isinstance(v, str) or not v.strip():
        return None
    s = v.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S UTC",):
        try:
            return datetime.strptime(s, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    except ValueError:
        return None


def clean_event(e: dict) -> dict | None:
    """A published event (wire JSON dict) -> a typed event, or None when a rule rejects it."""
    if set(e) - {"event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
                 "user_id", "user_session"}:
        return None
    t = _time(e.get("event_time"))
    if t is None or t < datetime(2000, 1, 1, tzinfo=UTC) or e.get("event_type") not in TYPES:
        return None
    product, user = _int(e.get("product_id")), _int(e.get("user_id"))
    if product is None or product <= 0 or user is None or user <= 0:
        return None
    if e.get("category_id") not in (None, "") and _int(e.get("category_id")) is None:
        return None
    session = e.get("user_session")
    if session is None or not str(session).strip():
        return None
    raw_price = e.get("price")
    if raw_price is None:  # float(None) would raise TypeError: rejected the same way
        return None
    try:
        price = round(float(raw_price), 2)
    except (TypeError, ValueError):
        return None
    if math.isnan(price) or price <= 0:
        return None
    brand = e.get("brand") or None
    code = e.get("category_code") or None
    return {"t": t, "type": e["event_type"], "product": product, "price": price, "user": user,
            "session": str(session).strip(), "brand": brand, "code": code, "cat": _int(e.get("category_id"))}


@dataclass
class Abandoned:
    session: str
    user: int
    expiry: datetime
    last_cart: datetime
    items: dict[int, int]
    value: float
    decision: str = ""


def abandoned_sessions(events: list[dict], gap: timedelta) -> tuple[list[Abandoned], dict[int, list[datetime]]]:
    by_session: dict[str, list[dict]] = defaultdict(list)
    purchases: dict[int, list[datetime]] = defaultdict(list)
    for e in events:
        by_session[e["session"]].append(e)
        if e["type"] == "purchase":
            purchases[e["user"]].append(e["t"])
    out = []
    for sid, evs in by_session.items():
        evs.sort(key=lambda e: (e["t"], RANK.get(e["type"], -1)))
        parts, cur, last_t = [], [], None
        for e in evs:
            if last_t is not None and e["t"] > last_t + gap:
                parts.append(cur)
                cur = []
            cur.append(e)
            last_t = e["t"] if last_t is None else max(last_t, e["t"])
        parts.append(cur)
        for part in parts:
            carts = [e for e in part if e["type"] in RANK]
            if not carts:
                continue
            seen, price = set(), {}
            qty: defaultdict[int, int] = defaultdict(int)
            last_add = last_buy = None
            for e in carts:
                key = (e["t"], e["type"], e["product"], e["price"], e["brand"], e["code"], e["cat"])
                if key in seen:
                    continue
                seen.add(key)
                if e["type"] == "cart":
                    qty[e["product"]] += 1
                    price[e["product"]] = e["price"]
                    last_add = e["t"]
                elif e["type"] == "remove_from_cart":
                    qty[e["product"]] = max(0, qty[e["product"]] - 1)
                else:
                    qty[e["product"]] = 0
                    last_buy = e["t"]
            items = {p: q for p, q in qty.items() if q > 0}
            # last_add is never None here: a product in the cart means an add was seen
            if not items or last_add is None or (last_buy is not None and last_buy >= last_add):
                continue
            expiry = max(e["t"] for e in part) + gap
            out.append(Abandoned(sid, part[0]["user"], expiry, last_add, items,
                                 round(sum(price[p] * q for p, q in items.items()), 2)))
            break  # the outbox keeps one abandonment per session id
    return out, purchases


def in_control(user: int, share: float, salt: str) -> bool:
    if share <= 0:
        return False
    return int.from_bytes(hashlib.sha256(f"{salt}:{user}".encode()).digest()[:8], "big") / 2**64 < share


def decide_all(carts: list[Abandoned], purchases: dict[int, list[datetime]], subscribers: dict[int, dict], *,
               cap_days: float = 7, control_share: float = 0.0, salt: str = "control-v1",
               require_consent: bool = True) -> list[Abandoned]:
    last_offer: dict[int, datetime] = {}
    for c in sorted(carts, key=lambda c: (c.expiry, c.session)):
        sub = subscribers.get(c.user)
        if sub is None:
            c.decision = "not_subscriber"
        elif require_consent and not sub["consent"]:
            c.decision = "no_consent"
        elif any(c.last_cart < p <= c.expiry for p in purchases.get(c.user, ())):
            c.decision = "purchased_since"
        elif cap_days > 0 and c.user in last_offer and c.expiry - last_offer[c.user] < timedelta(days=cap_days):
            c.decision = "capped"
        elif in_control(c.user, control_share, salt):
            c.decision = "control"
        else:
            c.decision = "send"
        if c.decision in ("send", "control"):
            last_offer[c.user] = c.expiry
    return carts


def expected(published: list[dict], subscribers: dict[int, dict], *, gap: timedelta, **rules) -> list[Abandoned]:
    """Every abandoned session with its decision, from the published wire events."""
    events = [c for c in (clean_event(e) for e in published) if c is not None]
    carts, purchases = abandoned_sessions(events, gap)
    return decide_all(carts, purchases, subscribers, **rules)
