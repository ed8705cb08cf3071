"""The cart-recovery email: HTML + plain text from templates, offer code, signed unsubscribe link.

Hostile input is harmless: the HTML template autoescapes; names are stripped of control characters
and length-limited before they reach a header (where ``email.headerregistry`` quotes/encodes them and
the SMTP policy refuses CR/LF), so no header can be injected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from lib.retarget.rules import Subscriber

TEMPLATES = Path(__file__).resolve().parent / "templates"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
UNSUBSCRIBE_SALT = "unsubscribe-v1"


def clean_text(value: str | None, limit: int = 60) -> str:
    """Control characters (CR/LF included) out, whitespace collapsed, length-limited."""
    text = " ".join(_CONTROL.sub(" ", value or "").split())
    return text[:limit]


def offer_code(key: bytes, session_id: str) -> str:
    """A unique, unguessable free-shipping code per abandoned session (HMAC of the session id)."""
    digest = hmac.new(key, f"offer:{session_id}".encode(), hashlib.sha256).digest()
    return "FREESHIP-" + base64.b32encode(digest[:10]).decode().rstrip("=")


def unsubscribe_token(key: bytes, user_id: int, email: str) -> str:
    return URLSafeSerializer(key, salt=UNSUBSCRIBE_SALT).dumps({"u": int(user_id), "e": email})


def read_unsubscribe_token(key: bytes, token: str) -> tuple[int, str] | None:
    """(user_id, email) of a valid token, None if forged or malformed."""
    try:
        data = URLSafeSerializer(key, salt=UNSUBSCRIBE_SALT).loads(token)
        return int(data["u"]), str(data["e"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return None


def message_id(session_id: str, domain: str) -> str:
    """Deterministic per abandonment: a resend (which we never do) would carry the same id."""
    h = hashlib.sha256(session_id.encode()).hexdigest()[:32]
    return f"<cart-{h}@{domain}>"


@dataclass(frozen=True)
class Branding:
    shop_url: str
    unsubscribe_url: str
    from_address: str
    from_name: str
    offer_valid_days: int

    @classmethod
    def from_config(cls, rc) -> Branding:
        return cls(rc.shop_url, rc.unsubscribe_url, rc.from_address, rc.from_name, rc.offer_valid_days)


@dataclass(frozen=True)
class Rendered:
    message: EmailMessage
    offer_code: str
    offer_expires_at: datetime
    message_id: str


_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2.html"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_text_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=False, undefined=StrictUndefined,
                        trim_blocks=True, lstrip_blocks=True)


def product_url(shop_url: str, product_id: int) -> str:
    query = urlencode({"utm_source": "email", "utm_medium": "cart_recovery", "utm_campaign": "free_shipping"})
    return f"{shop_url}/product/{quote(str(int(product_id)))}?{query}"


def _category(code: str | None) -> str:
    return clean_text(code.replace(".", " › ").replace("_", " "), 80) if code else "Beauty"


def render(cart: dict, subscriber: Subscriber, *, key: bytes, brand: Branding, now: datetime) -> Rendered:
    """``cart``: an outbox row (``user_session``, ``items``, ``cart_value``, ...) as a dict."""
    sid = cart["user_session"]
    first_name = clean_text(subscriber.first_name) or "there"
    code = offer_code(key, sid)
    expires = now + timedelta(days=brand.offer_valid_days)
    token = unsubscribe_token(key, subscriber.user_id, subscriber.email)
    unsubscribe = f"{brand.unsubscribe_url}?{urlencode({'token': token})}"
    items = [{
        "name": clean_text(it.get("brand") or "", 40).title() or "Our pick",
        "brand": clean_text(it.get("brand") or "", 40) or "—",
        "category": _category(it.get("category_code")),
        "price": f"${it['price']:.2f}", "qty": int(it["qty"]),
        "url": product_url(brand.shop_url, it["product_id"]), "product_id": int(it["product_id"]),
    } for it in cart["items"]]
    ctx = {"first_name": first_name, "items": items, "cart_value": f"${cart['cart_value']:.2f}",
           "offer_code": code, "offer_expires": expires.strftime("%d %B %Y"), "unsubscribe_url": unsubscribe,
           "shop_url": brand.shop_url, "shop_name": clean_text(brand.from_name, 60)}
    domain = brand.from_address.rpartition("@")[2]
    mid = message_id(sid, domain)
    msg = EmailMessage()
    msg["From"] = Address(display_name=clean_text(brand.from_name), addr_spec=brand.from_address)
    msg["To"] = Address(display_name=clean_text(subscriber.first_name), addr_spec=subscriber.email)
    msg["Subject"] = f"{first_name}, your cart is waiting — shipping is on us"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = mid
    msg["X-Session-Id"] = clean_text(sid, 200)
    msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(_text_env.get_template("cart_recovery.txt").render(ctx))
    msg.add_alternative(_env.get_template("cart_recovery.html").render(ctx), subtype="html")
    return Rendered(msg, code, expires, mid)
