"""The cart-recovery email: HTML + plain text from templates, offer code, signed unsubscribe link.

What it says about a product (brand, category, price, and so the cart value) comes from the shop's
catalogue (``gold/product_catalogue``, :mod:`lib.retarget.catalogue`), never from the client events
that filled the cart; a product the catalogue does not know is a generic line. Unsubscribe tokens
carry their issue time and are signed with the newest of a list of keys; every key verifies.

Hostile input is harmless: the HTML template autoescapes; every header value is stripped of control
characters (CR/LF included) and length-limited, display names are quoted or RFC 2047-encoded
(``email.utils.formataddr``) and addresses are checked before they reach a header, so no header can be
injected.

An :class:`Email` is built once and serialised once (``Email.data``, CRLF wire form) with the
standard library's MIME classes (``email.mime``); the senders take it as is. (The policy-based
``EmailMessage`` API re-parses every header on assignment: ~6 ms a message against ~1 ms, which
mattered when a busy hour's last sessions expire together.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import format_datetime, formataddr
from functools import cached_property
from pathlib import Path
from urllib.parse import quote, urlencode

import email_validator
from email_validator import EmailNotValidError, validate_email
from itsdangerous import BadSignature, URLSafeSerializer
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from lib.config import ConfigError
from lib.retarget.catalogue import Catalogue
from lib.retarget.rules import Subscriber

TEMPLATES = Path(__file__).resolve().parent / "templates"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
UNSUBSCRIBE_SALT = "unsubscribe-v2"  # {"u": user id, "e": email, "t": issue time}
LEGACY_UNSUBSCRIBE_SALT = "unsubscribe-v1"  # {"u", "e"}: links mailed before keys rotated


def clean_text(value: str | None, limit: int = 60) -> str:
    """Control characters (CR/LF included) out, whitespace collapsed, length-limited."""
    text = " ".join(_CONTROL.sub(" ", value or "").split())
    return text[:limit]


Keys = bytes | Sequence[bytes]
"""A link-signing key, or the list of them (oldest first; the last signs, all verify:
:func:`lib.retarget.secrets.signing_keys`)."""


def _key_list(keys: Keys) -> list[bytes]:
    return [keys] if isinstance(keys, bytes | str) else list(keys)


def offer_code(key: Keys, session_id: str) -> str:
    """A unique, unguessable free-shipping code per abandoned session (HMAC of the session id with
    the newest key). Codes are checked against ``retarget/offers``, not re-derived, so codes issued
    under an older key stay valid after a rotation."""
    digest = hmac.new(_key_list(key)[-1], f"offer:{session_id}".encode(), hashlib.sha256).digest()
    return "FREESHIP-" + base64.b32encode(digest[:10]).decode().rstrip("=")


TOKEN_MAX_LENGTH = 1024  # longer input is not a token of ours (refused before any signature work)


def unsubscribe_token(key: Keys, user_id: int, email: str, issued_at: datetime | None = None) -> str:
    """The signed token of an unsubscribe link (newest key): user id, email and the issue time (whole
    seconds, UTC), so a link can expire (``retarget.unsubscribe_valid_days``)."""
    t = int((issued_at or datetime.now(UTC)).timestamp())
    return URLSafeSerializer(_key_list(key), salt=UNSUBSCRIBE_SALT).dumps({"u": int(user_id), "e": email, "t": t})


VALID, EXPIRED, INVALID = "valid", "expired", "invalid"


@dataclass(frozen=True)
class TokenCheck:
    """What an unsubscribe token says: ``status`` valid / expired / invalid (forged, tampered, signed
    with a key we do not have, malformed), and for a genuine one who and when (None: a token of the
    first format, which carried no issue time)."""

    status: str
    user_id: int | None = None
    email: str | None = None
    issued_at: datetime | None = None


def check_unsubscribe_token(keys: Keys, token: str, *, now: datetime | None = None,
                            valid_days: float | None = None) -> TokenCheck:
    """Verify ``token`` with every key; with ``now`` and ``valid_days``, a token issued more than
    ``valid_days`` before ``now`` is ``expired``. Tokens of the first format (``unsubscribe-v1``, no
    issue time, mailed before keys could rotate) stay valid while their key is in the list."""
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX_LENGTH:
        return TokenCheck(INVALID)
    keys = _key_list(keys)
    try:
        data = URLSafeSerializer(keys, salt=UNSUBSCRIBE_SALT).loads(token)
        issued = datetime.fromtimestamp(int(data["t"]), UTC)
    except BadSignature:
        try:
            data = URLSafeSerializer(keys, salt=LEGACY_UNSUBSCRIBE_SALT).loads(token)
        except BadSignature:
            return TokenCheck(INVALID)
        issued = None
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return TokenCheck(INVALID)
    try:
        user_id, email = int(data["u"]), str(data["e"])
    except (KeyError, TypeError, ValueError):
        return TokenCheck(INVALID)
    if issued is not None and now is not None and valid_days is not None \
            and now - issued > timedelta(days=valid_days):
        return TokenCheck(EXPIRED, user_id, email, issued)
    return TokenCheck(VALID, user_id, email, issued)


def read_unsubscribe_token(key: Keys, token: str) -> tuple[int, str] | None:
    """(user_id, email) of a genuine token (any key of the list; no expiry check), None if forged or
    malformed."""
    c = check_unsubscribe_token(key, token)
    return (c.user_id, c.email) if c.status == VALID and c.user_id is not None and c.email is not None else None


def message_id(session_id: str, domain: str) -> str:
    """Deterministic per abandonment: every attempt of a session carries the same id, so one question to
    the mail server (``reconcile``) covers them all, and a receiving side can drop a duplicate."""
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
        if not rc.unsubscribe_url:  # a marketing email without a working unsubscribe link may not be sent
            raise ConfigError("config error: retarget.unsubscribe_url is not set: every email links to it (on Google "
                              "Cloud: terraform output unsubscribe_url, passed by scripts/submit.sh --from-terraform)")
        return cls(rc.shop_url, rc.unsubscribe_url, rc.from_address, rc.from_name, rc.offer_valid_days)


# The local SMTP server refuses *.invalid on purpose (scripts/smtp_server.py: the 550 path of the fault tests and
# `make chaos`); to the dispatcher such an address is well-formed and the mail server decides, as before
# email-validator. Removing a name from this list is the library's documented way to accept a special-use domain.
if "invalid" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("invalid")
_WIRE = compat32.clone(linesep="\r\n", max_line_length=998)  # RFC 5322 limit; values stay on one line


class InvalidAddress(ValueError):
    """An address no mail server would accept (the dispatcher records the cart as ``failed``)."""


def check_address(addr: str) -> str:
    """``addr`` unchanged if it is one plain ASCII address (email-validator's syntax rules, no DNS: no quoted
    local part, no domain literal, no display name; a domain without a dot and ``*.test`` pass); else
    :class:`InvalidAddress`. ASCII only: neither sender announces SMTPUTF8 or encodes IDNA domains."""
    try:
        if not (addr or "").isascii():
            raise EmailNotValidError("not ASCII")
        validate_email(addr or "", check_deliverability=False, allow_smtputf8=False, globally_deliverable=False,
                       test_environment=True)
    except EmailNotValidError:
        raise InvalidAddress(f"invalid email address {(addr or '')[:80]!r}") from None
    return addr


def _header(value: str) -> str | Header:
    """A header value: ASCII as is (folded by the generator), anything else RFC 2047-encoded."""
    return value if value.isascii() else Header(value, "utf-8")


@dataclass(frozen=True)
class Email:
    """One message, ready for any sender: envelope, headers, both bodies and the wire bytes."""

    from_name: str
    from_addr: str
    to_name: str
    to_addr: str
    subject: str
    headers: tuple[tuple[str, str], ...]  # further headers, in order (Date, Message-ID, X-Session-Id, ...)
    text: str
    html: str

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @cached_property
    def data(self) -> bytes:
        """The RFC 5322 message (multipart/alternative: text, then HTML), CRLF line ends."""
        m = MIMEMultipart("alternative")
        m["From"] = formataddr((self.from_name, self.from_addr))
        m["To"] = formataddr((self.to_name, self.to_addr))
        # typeshed types MIMEMultipart's values as str; email.message takes Header objects too
        m["Subject"] = _header(self.subject)  # type: ignore[assignment]
        for k, v in self.headers:
            m[k] = _header(v)  # type: ignore[assignment]
        m.attach(MIMEText(self.text, "plain", "utf-8"))
        m.attach(MIMEText(self.html, "html", "utf-8"))
        return m.as_bytes(policy=_WIRE)

    def parsed(self) -> EmailMessage:
        """The message as a mail client reads it (tests, previews)."""
        return message_from_bytes(self.data, policy=default_policy)


@dataclass(frozen=True)
class Rendered:
    email: Email
    offer_code: str
    offer_expires_at: datetime
    message_id: str

    @property
    def message(self) -> EmailMessage:
        return self.email.parsed()


_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2.html"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
# plain-text bodies; HTML escaping would put &amp; etc. into the text part (the HTML part uses _env)
_text_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=False,  # noqa: S701 — text/plain only
                        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def product_url(shop_url: str, product_id: int) -> str:
    query = urlencode({"utm_source": "email", "utm_medium": "cart_recovery", "utm_campaign": "free_shipping"})
    return f"{shop_url}/product/{quote(str(int(product_id)))}?{query}"


def _category(code: str | None) -> str:
    return clean_text(code.replace(".", " › ").replace("_", " "), 80) if code else "Beauty"


GENERIC_ITEM = "An item from your cart"


def _items(cart: dict, catalogue: Catalogue | None, shop_url: str) -> tuple[list[dict], str | None]:
    """The lines of the email and the cart value, from the catalogue only: the cart gives the product
    id (a number) and the quantity; brand, category and price come from ``catalogue``. A product it
    does not know is a generic line without brand, category or price, and then no cart value is shown
    (the event's text and prices are never shown)."""
    items, total, complete = [], 0.0, True
    for it in cart["items"]:
        pid, qty = int(it["product_id"]), int(it["qty"])
        p = (catalogue or {}).get(pid)
        line = {"product_id": pid, "qty": qty, "url": product_url(shop_url, pid), "known": p is not None}
        if p is None:
            complete = False
            line.update(name=GENERIC_ITEM, brand=GENERIC_ITEM, category="", price="")
        else:
            total += p.price * qty
            line.update(name=clean_text(p.brand or "", 40).title() or "Our pick",
                        brand=clean_text(p.brand or "", 40) or "—", category=_category(p.category_code),
                        price=f"${p.price:.2f}")
        items.append(line)
    return items, (f"${total:.2f}" if complete and items else None)


def render(cart: dict, subscriber: Subscriber, *, key: Keys, brand: Branding, now: datetime,
           offer_expires_at: datetime | None = None, catalogue: Catalogue | None = None,
           code: str | None = None) -> Rendered:
    """``cart``: an outbox row (``user_session``, ``items``, ...) as a dict. ``key``: the link-signing
    key, or the list (the newest signs). ``catalogue``: product id -> :class:`lib.retarget.catalogue.Product`
    (``gold/product_catalogue``), the only source of what the email says about a product; without it
    every item is a generic line. ``code`` / ``offer_expires_at``: the code and expiry recorded for
    this session (``retarget/offers``; a retry keeps them, even after a key rotation); default a code
    derived with the newest key and ``now`` + ``offer_valid_days``."""
    sid = cart["user_session"]
    first_name = clean_text(subscriber.first_name) or "there"
    code = code or offer_code(key, sid)
    expires = offer_expires_at or now + timedelta(days=brand.offer_valid_days)
    token = unsubscribe_token(key, subscriber.user_id, subscriber.email, issued_at=now)
    unsubscribe = f"{brand.unsubscribe_url}?{urlencode({'token': token})}"
    items, cart_value = _items(cart, catalogue, brand.shop_url)
    ctx = {"first_name": first_name, "items": items, "cart_value": cart_value,
           "offer_code": code, "offer_expires": expires.strftime("%d %B %Y"), "unsubscribe_url": unsubscribe,
           "shop_url": brand.shop_url, "shop_name": clean_text(brand.from_name, 60)}
    domain = brand.from_address.rpartition("@")[2]
    mid = message_id(sid, domain)
    email = Email(
        from_name=clean_text(brand.from_name), from_addr=check_address(brand.from_address),
        to_name=clean_text(subscriber.first_name), to_addr=check_address(subscriber.email),
        subject=f"{first_name}, your cart is waiting — shipping is on us",
        headers=(("Date", format_datetime(now)), ("Message-ID", mid), ("X-Session-Id", clean_text(sid, 200)),
                 ("List-Unsubscribe", f"<{unsubscribe}>"), ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")),
        text=_text_env.get_template("cart_recovery.txt").render(ctx),
        html=_env.get_template("cart_recovery.html").render(ctx),
    )
    email.data  # noqa: B018 — serialise once, here (the send threads only write bytes)
    return Rendered(email, code, expires, mid)
